"""The transition table and the apply functions, case by case."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from itertools import product

import pytest

from core.enums import OPEN_STATUSES, TERMINAL_STATUSES
from core.enums import OrderStatus as S
from models.state_machine import (
    TRANSITIONS,
    HistoryKind,
    OrderState,
    Verdict,
    apply_fill,
    apply_report,
    local_transition,
)
from tests.models.factories import BROKER_ID, T0, at, fill, report

# design.md, "Order states", written out independently of the module under test; plus
# PARTIALLY_FILLED -> REJECTED (the broker refuses the rest: no open order is stuck by a
# terminal report from the broker).
DESIGN_TABLE = {
    S.PENDING_NEW: {S.NEW, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELED, S.EXPIRED},
    S.NEW: {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.REPLACED,
            S.REJECTED},
    S.PARTIALLY_FILLED: {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED,
                         S.REPLACED, S.REJECTED},
    S.PENDING_CANCEL: {S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.NEW, S.EXPIRED, S.REJECTED,
                       S.REPLACED},
    S.FILLED: set(), S.CANCELED: set(), S.REJECTED: set(), S.EXPIRED: set(), S.REPLACED: set(),
}  # fmt: skip
ALLOWED = {(a, b) for a, targets in DESIGN_TABLE.items() for b in targets}
QTY = Decimal(10)


def test_table_is_the_design_table() -> None:
    assert {a: set(b) for a, b in TRANSITIONS.items()} == DESIGN_TABLE


def _filled_in(status: S) -> Decimal:
    return {S.PARTIALLY_FILLED: Decimal(4), S.FILLED: QTY}.get(status, Decimal(0))


def _state(status: S, notional: Decimal | None = None) -> OrderState:
    """An order in ``status`` as the broker last reported it (a notional order's FILLED
    quantity is whatever the broker bought: ``QTY`` here too)."""
    filled = _filled_in(status)
    return OrderState(
        status=status,
        quantity=QTY if notional is None else None,
        notional=notional,
        broker_filled_quantity=filled,
        broker_order_id=None if status is S.PENDING_NEW else BROKER_ID,
        raw_status=None if status is S.PENDING_NEW else status.value.lower(),
        broker_updated_at=None if status is S.PENDING_NEW else T0,
    )


def _expected(current: S, target: S) -> str:
    if (current, target) in ALLOWED:
        return "applied"
    if target is S.PENDING_NEW and current is not S.PENDING_NEW:
        return "stale"  # an echo from before the acknowledgement
    if current is S.PENDING_NEW and (S.NEW, target) in ALLOWED:
        return "applied"  # the acknowledgement was missed, the later state is real
    if current is S.CANCELED and target in (S.PARTIALLY_FILLED, S.FILLED):
        return "late_fill"
    return "anomaly"


PAIRS = [(a, b) for a, b in product(S, S) if a is not b]


@pytest.mark.parametrize("notional", [None, "500"], ids=["quantity", "notional"])
@pytest.mark.parametrize(("current", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_every_pair_of_statuses(current: S, target: S, notional: str | None) -> None:
    state = _state(current, None if notional is None else Decimal(notional))
    target_filled = {S.PARTIALLY_FILLED: Decimal(6), S.FILLED: QTY}.get(target, Decimal(0))
    filled = max(state.broker_filled_quantity, target_filled)
    result = apply_report(state, report(target, filled, updated=2, notional=notional),
                          now=at(3))  # fmt: skip

    expected = _expected(current, target)
    if expected == "applied":
        assert result.verdict is Verdict.APPLIED
        assert result.state.status is target
        assert result.history[-1].kind is HistoryKind.TRANSITION
        assert (result.history[-1].from_status, result.history[-1].to_status) == (current, target)
    elif expected == "late_fill":
        assert result.state.status is S.CANCELED
        assert result.state.broker_filled_quantity == filled
        assert result.history[-1].kind is HistoryKind.LATE_FILL
    elif expected == "stale":
        assert result.verdict is Verdict.STALE
        assert result.state == state
        assert result.history == ()
    else:
        assert result.verdict is Verdict.ANOMALY
        assert result.state.status is current
        anomaly = result.anomalies[0]
        assert "illegal transition" in (anomaly.detail or "")
        assert json.loads(anomaly.report or "{}")["status"] == target.value


ENDINGS = [(a, b) for a, b in product(sorted(OPEN_STATUSES), sorted(TERMINAL_STATUSES))]


@pytest.mark.parametrize(("current", "ended"), ENDINGS, ids=[f"{a}->{b}" for a, b in ENDINGS])
def test_a_terminal_report_from_the_broker_always_ends_an_open_order(current: S, ended: S) -> None:
    state = _state(current)
    filled = QTY if ended is S.FILLED else state.broker_filled_quantity
    result = apply_report(state, report(ended, filled, updated=2), now=at(3))
    assert result.verdict is Verdict.APPLIED
    assert result.anomalies == ()
    assert result.state.status is ended
    assert result.state.closed_at == at(3)


def test_a_cancel_raced_by_expiry_ends_expired_and_says_so() -> None:
    result = apply_report(_state(S.PENDING_CANCEL), report(S.EXPIRED, updated=2), now=at(3))
    assert result.state.status is S.EXPIRED
    assert "before acting on the cancel" in (result.history[-1].detail or "")


@pytest.mark.parametrize(
    ("by", "named"), [("b-2", "broker order b-2"), (None, "an order the broker did not name")]
)
def test_a_replaced_order_names_its_replacement_in_its_history(by: str | None,
                                                               named: str) -> None:  # fmt: skip
    replaced = dataclasses.replace(report(S.REPLACED, updated=2), replaced_by=by)
    result = apply_report(_state(S.NEW), replaced, now=at(3))
    assert result.state.status is S.REPLACED
    assert result.history[-1].detail == f"replaced by {named}"


def test_a_rejection_after_fills_keeps_the_fills_and_takes_the_rest_late() -> None:
    """The broker's REJECTED after fills: the executions are facts (a position), the
    unfilled rest will never fill; fills the broker reported are still recorded later."""
    state = apply_fill(_state(S.NEW), fill("f1", "2"), now=at(2)).state
    result = apply_report(state, report(S.REJECTED, "4", updated=3), now=at(4))
    assert result.state.status is S.REJECTED
    assert result.state.filled_quantity == Decimal(2)
    detail = result.history[-1].detail or ""
    assert "rejected after 4 of 10 filled" in detail
    assert "fills stand" in detail
    late = apply_fill(result.state, fill("f2", "2"), now=at(5))
    assert late.verdict is Verdict.APPLIED
    assert (late.state.status, late.state.filled_quantity) == (S.REJECTED, Decimal(4))
    beyond = apply_fill(late.state, fill("f3", "1"), now=at(6))
    assert beyond.verdict is Verdict.ANOMALY
    assert "fill for a rejected order" in (beyond.anomalies[0].detail or "")


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_terminal_statuses_are_closed_with_a_time(status: S) -> None:
    state = OrderState(status=S.NEW, quantity=QTY, broker_order_id=BROKER_ID)
    filled = QTY if status is S.FILLED else Decimal(0)
    result = apply_report(state, report(status, filled), now=at(5))
    assert result.state.status is status
    assert result.state.closed_at == at(5)


def test_same_report_twice_is_a_duplicate() -> None:
    state = OrderState(status=S.PENDING_NEW, quantity=QTY)
    first = apply_report(state, report(S.NEW), now=at(2))
    second = apply_report(first.state, report(S.NEW), now=at(3))
    assert first.verdict is Verdict.APPLIED
    assert first.state.accepted_at == at(2)
    assert first.state.broker_order_id == BROKER_ID
    assert second.verdict is Verdict.DUPLICATE
    assert second.state == first.state
    assert second.history == ()


def test_report_older_than_the_last_one_is_stale() -> None:
    state = OrderState(status=S.PENDING_NEW, quantity=QTY)
    newer = apply_report(state, report(S.CANCELED, updated=5), now=at(6)).state
    older = apply_report(newer, report(S.NEW, updated=4), now=at(7))
    assert older.verdict is Verdict.STALE
    assert older.state == newer


def test_report_with_less_filled_is_stale() -> None:
    state = _state(S.PARTIALLY_FILLED)
    result = apply_report(state, report(S.PARTIALLY_FILLED, "3", updated=9), now=at(9))
    assert result.verdict is Verdict.STALE
    assert result.state.broker_filled_quantity == Decimal(4)


def test_overfill_report_is_an_anomaly_and_not_applied() -> None:
    state = _state(S.NEW)
    result = apply_report(state, report(S.FILLED, "11"), now=at(2))
    assert result.verdict is Verdict.ANOMALY
    assert result.state == state
    assert "overfill" in (result.anomalies[0].detail or "")


def test_report_for_another_broker_order_is_an_anomaly() -> None:
    state = _state(S.NEW)
    result = apply_report(state, report(S.FILLED, "10", broker_order_id="b-2"), now=at(2))
    assert result.verdict is Verdict.ANOMALY
    assert result.state == state


def test_quantity_mismatch_is_an_anomaly() -> None:
    result = apply_report(_state(S.NEW), report(S.NEW, quantity="12"), now=at(2))
    assert result.verdict is Verdict.ANOMALY


def test_fills_are_recorded_once_and_average_is_weighted() -> None:
    state = _state(S.NEW)
    fills = (fill("f1", "4", "100"), fill("f2", "6", "101.5", fee="0.25"))
    result = apply_report(state, report(S.FILLED, "10", fills=fills), now=at(2))
    assert result.state.status is S.FILLED
    assert result.state.filled_quantity == QTY
    assert result.state.average_fill_price == Decimal("100.9")
    assert result.state.fees == Decimal("0.25")
    assert [f.broker_fill_id for f in result.new_fills] == ["f1", "f2"]
    again = apply_report(result.state, report(S.FILLED, "10", fills=fills), now=at(3))
    assert again.verdict is Verdict.DUPLICATE
    assert again.new_fills == ()


def test_fill_gap_is_visible_until_the_fills_arrive() -> None:
    state = apply_report(_state(S.NEW), report(S.FILLED, "10"), now=at(2)).state
    assert state.status is S.FILLED
    assert (state.broker_filled_quantity, state.filled_quantity) == (QTY, Decimal(0))
    state = apply_fill(state, fill("f1", "10"), now=at(3)).state
    assert state.filled_quantity == QTY
    assert state.status is S.FILLED


def test_partial_fill_moves_a_new_order_to_partially_filled() -> None:
    result = apply_fill(_state(S.NEW), fill("f1", "3"), now=at(2))
    assert result.state.status is S.PARTIALLY_FILLED
    assert result.history[0].kind is HistoryKind.TRANSITION


def test_a_status_moved_by_fills_leaves_no_stale_broker_status() -> None:
    """The broker said "new"; our fills made the order FILLED: "new" no longer describes it,
    and a fill-settled order may never be reported again."""
    accepted = apply_report(_state(S.PENDING_NEW), report(S.NEW, "0"), now=at(1)).state
    assert accepted.raw_status is not None
    filled = apply_fill(accepted, fill("f1", "10"), now=at(2)).state
    assert (filled.status, filled.raw_status) == (S.FILLED, None)
    reported = apply_report(filled, report(S.FILLED, "10"), now=at(3)).state
    assert reported.raw_status == report(S.FILLED, "10").raw_status


def test_late_fill_on_a_canceled_order_adds_quantity_but_keeps_status() -> None:
    canceled = apply_report(_state(S.NEW), report(S.CANCELED, "0"), now=at(2)).state
    result = apply_fill(canceled, fill("late", "2"), now=at(3))
    assert result.verdict is Verdict.APPLIED
    assert result.state.status is S.CANCELED
    assert result.state.filled_quantity == Decimal(2)


@pytest.mark.parametrize(
    ("bad_fill", "reason"),
    [
        (fill("x", "0"), "not positive"),
        (fill("x", "-1"), "not positive"),
        (fill("x", "NaN"), "not positive"),
        (fill("x", "1", "0"), "price"),
        (fill("x", "11"), "overfill"),
        (fill("x", "1", broker_order_id="other"), "broker order"),
    ],
)
def test_bad_fills_are_anomalies_never_exceptions(bad_fill: object, reason: str) -> None:
    state = _state(S.NEW)
    result = apply_fill(state, bad_fill, now=at(2))  # type: ignore[arg-type]
    assert result.verdict is Verdict.ANOMALY
    assert result.state == state
    assert reason in (result.anomalies[0].detail or "")


def test_fill_for_a_rejected_order_is_an_anomaly() -> None:
    rejected = apply_report(_state(S.NEW), report(S.REJECTED), now=at(2)).state
    result = apply_fill(rejected, fill("f", "1"), now=at(3))
    assert result.verdict is Verdict.ANOMALY


def test_garbage_numbers_in_a_report_do_not_raise() -> None:
    result = apply_report(_state(S.NEW), report(S.NEW, "NaN"), now=at(2))
    assert result.verdict is Verdict.ANOMALY


def test_cancel_refused_returns_to_new() -> None:
    state = _state(S.PENDING_CANCEL)
    result = apply_report(state, report(S.NEW, updated=2), now=at(2))
    assert result.state.status is S.NEW


def test_a_fill_the_database_cannot_hold_exactly_is_an_anomaly() -> None:
    result = apply_fill(_state(S.NEW), fill("x", "1", "1.0000000000000000001"), now=at(2))
    assert result.verdict is Verdict.ANOMALY
    assert "cannot be stored exactly" in (result.anomalies[0].detail or "")


# --- a REJECTED we concluded ourselves gives way to the broker ------------------------------


def _rejected_by_us(status: S = S.PENDING_NEW) -> OrderState:
    """A write-ahead row we rejected (never reached the broker, past its deadline)."""
    state = OrderState(status=status, quantity=QTY)
    return local_transition(state, S.REJECTED, now=at(1), detail="never reached the broker").state


def test_our_own_rejection_is_known_as_ours() -> None:
    acknowledged = dataclasses.replace(_state(S.PENDING_NEW), raw_status="accepted",
                                       broker_order_id=BROKER_ID)  # fmt: skip
    ours = local_transition(acknowledged, S.REJECTED, now=at(1), detail="deadline passed").state
    assert (ours.status, ours.raw_status, ours.concluded_locally) == (S.REJECTED, None, True)
    broker_said = apply_report(_state(S.NEW), report(S.REJECTED), now=at(2)).state
    assert broker_said.status is S.REJECTED
    assert not broker_said.concluded_locally


REPORTED = sorted(set(S) - {S.REJECTED})


@pytest.mark.parametrize("status", REPORTED)
def test_the_broker_showing_an_order_we_rejected_overturns_our_conclusion(status: S) -> None:
    filled = {S.PARTIALLY_FILLED: Decimal(4), S.FILLED: QTY}.get(status, Decimal(0))
    result = apply_report(_rejected_by_us(), report(status, filled, updated=2), now=at(3))

    assert result.verdict is Verdict.APPLIED
    assert result.anomalies == ()
    assert result.state.status is status
    assert result.state.broker_order_id == BROKER_ID
    assert result.state.broker_filled_quantity == filled
    assert result.state.closed_at == (at(3) if status.is_terminal else None)
    overturn = result.history[0]
    assert (overturn.kind, overturn.from_status, overturn.to_status) == (
        HistoryKind.TRANSITION, S.REJECTED, S.PENDING_NEW,
    )  # fmt: skip
    assert overturn.overturns
    assert "local conclusion overturned" in (overturn.detail or "")
    assert f"as {status.value.lower()!r}" in (overturn.detail or "")
    if status is not S.PENDING_NEW:
        assert (result.history[-1].from_status, result.history[-1].to_status) == (
            S.PENDING_NEW, status,
        )  # fmt: skip


def test_the_broker_filling_an_order_we_rejected_records_its_fills() -> None:
    fills = (fill("f1", "4", "100"), fill("f2", "6", "101"))
    result = apply_report(_rejected_by_us(), report(S.FILLED, "10", fills=fills), now=at(3))
    assert result.state.status is S.FILLED
    assert result.state.filled_quantity == QTY
    assert result.state.average_fill_price == Decimal("100.6")
    assert [f.broker_fill_id for f in result.new_fills] == ["f1", "f2"]
    assert result.anomalies == ()
    again = apply_report(result.state, report(S.FILLED, "10", fills=fills), now=at(4))
    assert again.verdict is Verdict.DUPLICATE


def test_a_fill_alone_overturns_our_rejection() -> None:
    result = apply_fill(_rejected_by_us(), fill("f1", "3"), now=at(3))
    assert result.verdict is Verdict.APPLIED
    assert (result.state.status, result.state.filled_quantity) == (
        S.PARTIALLY_FILLED, Decimal(3),
    )  # fmt: skip
    assert result.history[0].overturns
    assert "fill 'f1'" in (result.history[0].detail or "")
    assert result.history[-1].to_status is S.PARTIALLY_FILLED


def test_the_broker_confirming_our_rejection_makes_it_final() -> None:
    confirmed = apply_report(_rejected_by_us(), report(S.REJECTED), now=at(2))
    assert confirmed.verdict is Verdict.APPLIED
    assert confirmed.history == ()  # nothing to announce: it was REJECTED already
    assert confirmed.state.status is S.REJECTED
    assert not confirmed.state.concluded_locally
    later = apply_report(confirmed.state, report(S.NEW, updated=3), now=at(3))
    assert later.verdict is Verdict.ANOMALY
    assert later.state.status is S.REJECTED


def test_a_rejection_the_broker_reported_stays_final() -> None:
    rejected = _state(S.REJECTED)
    result = apply_report(rejected, report(S.FILLED, "10", updated=2), now=at(3))
    assert result.verdict is Verdict.ANOMALY
    assert result.state == rejected
    assert apply_fill(rejected, fill("f1", "1"), now=at(3)).verdict is Verdict.ANOMALY


def test_an_older_report_does_not_overturn_our_rejection() -> None:
    seen = dataclasses.replace(_state(S.PENDING_NEW), raw_status="accepted",
                               broker_order_id=BROKER_ID, broker_updated_at=at(5))  # fmt: skip
    ours = local_transition(seen, S.REJECTED, now=at(6), detail="deadline passed").state
    result = apply_report(ours, report(S.NEW, updated=4), now=at(7))
    assert result.verdict is Verdict.STALE
    assert result.state == ours


def test_a_report_of_another_order_does_not_overturn_our_rejection() -> None:
    ours = _rejected_by_us()
    result = apply_report(ours, report(S.NEW, quantity="12"), now=at(2))
    assert result.verdict is Verdict.ANOMALY
    assert result.state == ours


def test_one_execution_under_two_ids_is_recorded_once_by_its_cumulative_quantity() -> None:
    """A listing's activity id and a stream's execution id for one fill: the order's filled
    quantity with it is what both carry."""
    listed = dataclasses.replace(fill("activity-1", "3"), cum_quantity=Decimal("3"))
    streamed = dataclasses.replace(fill("execution-9", "3"), cum_quantity=Decimal("3.000"))
    first = apply_fill(_state(S.NEW), listed, now=at(2))
    again = apply_fill(first.state, streamed, now=at(3))
    assert again.verdict is Verdict.DUPLICATE
    assert again.state.filled_quantity == Decimal(3)
    nxt = dataclasses.replace(fill("execution-10", "2"), cum_quantity=Decimal("5"))
    assert apply_fill(again.state, nxt, now=at(4)).state.filled_quantity == Decimal(5)


def test_fills_without_a_cumulative_quantity_are_told_apart_by_id_alone() -> None:
    first = apply_fill(_state(S.NEW), fill("f-1", "3"), now=at(2))
    second = apply_fill(first.state, fill("f-2", "3"), now=at(3))
    assert second.verdict is Verdict.APPLIED
    assert second.state.filled_quantity == Decimal(6)
