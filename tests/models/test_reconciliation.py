"""Matching broker reports to local orders, and what a miss means (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from brokers.base import OrderReport
from models.enums import OrderStatus, OrderType, Side, TimeInForce
from models.reconciliation import LocalRef, MissAction, judge_miss, match

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
