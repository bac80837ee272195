"""Matching broker reports to local orders, and what a miss means (no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import OrderReport
from models.reconciliation import LocalRef, MissAction, derived_fill, judge_miss, match
from models.state_machine import OrderState

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def report(broker_id: str, client_id: str | None) -> OrderReport:
    return OrderReport(
        broker_order_id=broker_id, client_order_id=client_id, symbol="AAPL", side=Side.BUY,
        order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, quantity=Decimal(1),
        status=OrderStatus.NEW, raw_status="new", filled_quantity=Decimal(0),
        average_fill_price=None, created_at=T0, updated_at=T0,
    )  # fmt: skip


def ref(order_id: str, broker_id: str | None, client_id: str, **kw: object) -> LocalRef:
    fields: dict[str, object] = {"status": OrderStatus.NEW, "created_at": T0, **kw}
    return LocalRef(order_id, broker_id, client_id, **fields)  # type: ignore[arg-type]


def test_match_pairs_by_broker_id_then_client_id_and_reports_the_rest() -> None:
    local = [ref("1", "b1", "c1"), ref("2", None, "c2"), ref("3", "b3", "c3")]
    result = match(local, [report("b1", "c1"), report("b2", "c2"), report("b9", "c9")])
    assert [(r.id, rep.broker_order_id) for r, rep in result.pairs] == [("1", "b1"), ("2", "b2")]
    assert [rep.broker_order_id for rep in result.unknown] == ["b9"]
    assert [r.id for r in result.unlisted] == ["3"]


def test_a_report_listed_twice_is_paired_once() -> None:
    result = match([ref("1", "b1", "c1")], [report("b1", "c1"), report("b1", "c1")])
    assert len(result.pairs) == 1
    assert result.unknown == []


@pytest.mark.parametrize(
    ("misses_before", "age_s", "expected"),
    [
        (0, 10_000, MissAction.WAIT),  # one miss is never enough
        (1, 10_000, MissAction.WAIT),
        (2, 10_000, MissAction.DECLARE_LOST),  # the third
        (5, 10_000, MissAction.DECLARE_LOST),
    ],
)
def test_an_order_is_declared_lost_only_after_repeated_misses(
    misses_before: int, age_s: float, expected: MissAction
) -> None:
    order = ref("1", "b1", "c1", miss_count=misses_before, created_at=T0 - timedelta(seconds=age_s))
    verdict = judge_miss(order, now=T0, lost_after_misses=3, pending_new_grace_s=120)
    assert verdict.action is expected
    assert verdict.misses == misses_before + 1


def test_an_order_already_declared_lost_is_not_declared_again() -> None:
    order = ref("1", "b1", "c1", miss_count=7, lost=True)
    verdict = judge_miss(order, now=T0, lost_after_misses=3, pending_new_grace_s=120)
    assert verdict.action is MissAction.WAIT


@pytest.mark.parametrize(
    ("misses_before", "age_s", "expected"),
    [
        (5, 60, MissAction.WAIT),  # enough misses, but within the grace period
        (1, 1000, MissAction.WAIT),  # old enough, not enough misses
        (2, 120, MissAction.REJECT),
    ],
)
def test_a_write_ahead_row_the_broker_never_received_is_rejected_after_grace(
    misses_before: int, age_s: float, expected: MissAction
) -> None:
    order = ref("1", None, "c1", status=OrderStatus.PENDING_NEW, miss_count=misses_before,
                created_at=T0 - timedelta(seconds=age_s))  # fmt: skip
    verdict = judge_miss(order, now=T0, lost_after_misses=3, pending_new_grace_s=120)
    assert verdict.action is expected
    if expected is MissAction.REJECT:
        assert "c1" in verdict.reason
        assert "never reached the broker" in verdict.reason


# -- fills derived for a broker without a fill listing ---------------------------------------


def filled_report(filled: str, average: str | None, fees: str | None = None) -> OrderReport:
    return replace(
        report("b1", "c1"), quantity=Decimal(5), status=OrderStatus.PARTIALLY_FILLED,
        filled_quantity=Decimal(filled), average_fill_price=None if average is None
        else Decimal(average), fees=None if fees is None else Decimal(fees),
    )  # fmt: skip


def test_a_derived_fill_carries_what_the_cumulative_figures_add() -> None:
    state = OrderState(OrderStatus.PARTIALLY_FILLED, Decimal(5), filled_quantity=Decimal(1),
                       fill_notional=Decimal(10), fees=Decimal("0.5"))  # fmt: skip
    fill = derived_fill(state, filled_report("3", "10.5", fees="0.8"), now=T0)
    assert fill is not None
    assert (fill.quantity, fill.price, fill.fee) == (Decimal(2), Decimal("10.75"), Decimal("0.3"))
    assert fill.broker_fill_id == "derived-b1-3"
    assert fill.filled_at == T0  # the report's update time
    # recorded with the first, the two give the broker's average exactly
    assert (Decimal(10) + fill.quantity * fill.price) / 3 == Decimal("10.5")


def test_a_derived_price_without_a_finite_decimal_misses_the_cash_by_under_5e_11_a_share() -> None:
    # 1 recorded at 190.00, then the broker says 4 at an average of 190.01: the 3 new shares
    # cost 570.04, 190.01333... each, which is rounded to 10 places.
    state = OrderState(OrderStatus.PARTIALLY_FILLED, Decimal(5), filled_quantity=Decimal(1),
                       fill_notional=Decimal("190.00"))  # fmt: skip
    fill = derived_fill(state, filled_report("4", "190.01"), now=T0)
    assert fill is not None
    assert fill.price == Decimal("190.0133333333")
    missed = abs(fill.quantity * fill.price - Decimal("570.04"))
    assert Decimal(0) < missed <= fill.quantity * Decimal("5e-11")


@pytest.mark.parametrize("filled", ["3", "3.0", "3.000"])
def test_a_replayed_report_derives_the_same_id(filled: str) -> None:
    fill = derived_fill(OrderState(OrderStatus.NEW, Decimal(5)), filled_report(filled, "10"),
                        now=T0)  # fmt: skip
    assert fill is not None
    assert fill.broker_fill_id == "derived-b1-3"


@pytest.mark.parametrize(
    ("recorded", "filled", "average"),
    [("3", "3", "10"), ("3", "2", "10"), ("0", "2", None), ("0", "2", "0")],
)
def test_nothing_is_derived_without_a_gap_or_a_price(
    recorded: str, filled: str, average: str | None
) -> None:
    state = OrderState(OrderStatus.PARTIALLY_FILLED, Decimal(5), filled_quantity=Decimal(recorded),
                       fill_notional=Decimal(recorded) * 10)  # fmt: skip
    assert derived_fill(state, filled_report(filled, average), now=T0) is None


def test_recorded_fills_above_the_brokers_average_fall_back_to_it() -> None:
    state = OrderState(OrderStatus.PARTIALLY_FILLED, Decimal(5), filled_quantity=Decimal(1),
                       fill_notional=Decimal(100))  # fmt: skip
    fill = derived_fill(state, filled_report("2", "10"), now=T0)
    assert fill is not None
    assert fill.price == Decimal(10)


def test_a_row_we_rejected_as_never_placed_is_paired_by_its_client_id() -> None:
    """The broker shows it after all: the pair is what lets its report overturn ours."""
    ours = ref("1", None, "c1", status=OrderStatus.REJECTED)
    result = match([ours], [report("b1", "c1")])
    assert [(r.id, rep.broker_order_id) for r, rep in result.pairs] == [("1", "b1")]
    assert result.unknown == []
