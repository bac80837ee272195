"""Properties of the state machine over any sequence of reports and fills (hypothesis)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from hypothesis import given
from hypothesis import strategies as st

from core.enums import OrderStatus as S
from core.reports import FillReport, OrderReport
from models.state_machine import (
    AVERAGE_PRICE_QUANTUM,
    OrderState,
    Verdict,
    apply_fill,
    apply_report,
    local_transition,
)
from tests.models.factories import at, fill, report

QTY = Decimal(10)
quantities = st.sampled_from(["0", "1", "2.5", "3", "4", "6", "7.25", "10", "11"])
prices = st.sampled_from(["99.5", "100", "100.01", "101.333"])
fill_ids = st.sampled_from([f"f{i}" for i in range(6)])
broker_ids = st.sampled_from(["b-1", "b-1", "b-1", "b-2"])

fills = st.builds(
    lambda fid, q, p, bid, t: fill(fid, q, p, broker_order_id=bid, seconds=t),
    fill_ids, st.sampled_from(["0.5", "1", "2", "3", "4.5"]), prices, broker_ids,
    st.integers(0, 20),
)  # fmt: skip
reports = st.builds(
    lambda status, filled, updated, fs, bid: report(
        status, filled, updated=updated, fills=tuple(fs), broker_order_id=bid
    ),
    st.sampled_from(list(S)), quantities, st.one_of(st.none(), st.integers(0, 20)),
    st.lists(fills, max_size=3), broker_ids,
)  # fmt: skip
steps = st.lists(st.one_of(reports, fills), min_size=1, max_size=25)
WRITE_AHEAD = OrderState(status=S.PENDING_NEW, quantity=QTY)
# A write-ahead row we rejected ourselves (never reached the broker): the broker may overturn it.
REJECTED_BY_US = local_transition(WRITE_AHEAD, S.REJECTED, now=at(0), detail="never sent").state


def _apply(state: OrderState, item: OrderReport | FillReport, step: int):  # type: ignore[no-untyped-def]
    if isinstance(item, OrderReport):
        return apply_report(state, item, now=at(100 + step))
    return apply_fill(state, item, now=at(100 + step))


@given(st.sampled_from([WRITE_AHEAD, REJECTED_BY_US]), steps)
def test_invariants_hold_for_any_sequence(
    start: OrderState, sequence: list[OrderReport | FillReport]
) -> None:
    state = start
    recorded: dict[str, FillReport] = {}
    for step, item in enumerate(sequence):
        before = state
        result = _apply(state, item, step)
        state = result.state

        # Filled quantity never decreases and never exceeds the order quantity.
        assert state.filled_quantity >= before.filled_quantity
        assert state.broker_filled_quantity >= before.broker_filled_quantity
        assert state.filled_quantity <= QTY
        assert state.broker_filled_quantity <= QTY
        # Terminal states never regress, but for a REJECTED of ours, which gives way to the
        # broker; what the broker reports is never again taken for our own conclusion.
        if before.status.is_terminal and not before.concluded_locally:
            assert state.status is before.status
        if state.concluded_locally:
            assert state == start
        # Fills are recorded once each; their sum is the filled quantity.
        for new in result.new_fills:
            assert new.broker_fill_id not in recorded
            recorded[new.broker_fill_id] = new
        assert sum((f.quantity for f in recorded.values()), Decimal(0)) == state.filled_quantity
        assert set(recorded) == state.fill_ids
        # The average is the quantity-weighted mean of the fills.
        if recorded:
            notional = sum(f.quantity * f.price for f in recorded.values())
            expected = (notional / state.filled_quantity).quantize(
                AVERAGE_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN
            )
            assert state.average_fill_price == expected
        # Nothing changes without a reason being recorded.
        if result.verdict in (Verdict.DUPLICATE, Verdict.STALE):
            assert state == before or result.new_fills


@given(OrderState_status=st.sampled_from(list(S)), sequence=steps)
def test_applying_a_report_twice_equals_once(
    OrderState_status: S,
    sequence: list[OrderReport | FillReport],
) -> None:
    state = OrderState(status=OrderState_status, quantity=QTY)
    for step, item in enumerate(sequence):
        once = _apply(state, item, step)
        twice = _apply(once.state, item, step)
        assert twice.state == once.state
        assert twice.new_fills == ()
        assert twice.verdict in (Verdict.DUPLICATE, Verdict.STALE, Verdict.ANOMALY)
        state = once.state


@given(steps)
def test_never_raises(sequence: list[OrderReport | FillReport]) -> None:
    state = OrderState(status=S.NEW, quantity=QTY, broker_order_id="b-1")
    for step, item in enumerate(sequence):
        state = _apply(state, item, step).state
