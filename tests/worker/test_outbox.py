"""Events are written with their change, in the same transaction, and the relay publishes
them to the stream in order, at least once, keeping them while Redis refuses (SQLite and
fakeredis; the real worker and Redis are in test_outbox_system.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
from sqlalchemy import select

from core.enums import OrderStatus, OrderType, ReportSource, Side, TimeInForce
from core.reports import FillReport, OrderReport
from models.outbox import OutboxEvent
from tests.worker.conftest import UnitWorker
from worker import outbox
from worker.purge import purge_closed_orders
from worker.reports import apply_in_new_session


def report(unit: UnitWorker, status: OrderStatus, filled: str = "0") -> OrderReport:
    return OrderReport(
        broker_order_id="b1", client_order_id="c1", symbol="AAPL", side=Side.BUY,
        order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, quantity=Decimal(5),
        status=status, raw_status=status.value.lower(), filled_quantity=Decimal(filled),
        average_fill_price=Decimal(10) if filled != "0" else None,
        created_at=unit.clock[0] - timedelta(seconds=1), updated_at=unit.clock[0],
        limit_price=Decimal(10),
    )  # fmt: skip


def events(unit: UnitWorker) -> list[OutboxEvent]:
    with unit.ctx.sessions() as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


def test_each_change_writes_its_event_and_a_repeat_writes_none(unit: UnitWorker) -> None:
    order_id = unit.add_order("c1", broker_order_id="b1")
    apply_in_new_session(unit.ctx, order_id, report(unit, OrderStatus.NEW), ReportSource.MONITOR)
    apply_in_new_session(unit.ctx, order_id, report(unit, OrderStatus.NEW), ReportSource.MONITOR)
    fill = FillReport("f1", "b1", "AAPL", Side.BUY, Decimal(5), Decimal(10), unit.clock[0])
    unit.clock[0] += timedelta(seconds=1)
    apply_in_new_session(unit.ctx, order_id, report(unit, OrderStatus.FILLED, "5"),
                         ReportSource.MONITOR)  # fmt: skip
    apply_in_new_session(unit.ctx, order_id, fill, ReportSource.MONITOR)
    apply_in_new_session(unit.ctx, order_id, fill, ReportSource.SWEEP)  # the same fill again

    written = events(unit)
    assert [e.kind for e in written] == ["ORDER_ACCEPTED", "ORDER_FILLED"]
    filled = json.loads(written[1].payload)
    assert (filled["order_id"], filled["status"], filled["client_order_id"]) == (
        order_id, "FILLED", "c1"
    )  # fmt: skip
    assert all(e.order_id == order_id and e.published_at is None for e in written)
    assert len({e.event_id for e in written}) == 2


def test_a_change_retried_after_a_concurrent_writer_writes_its_event_once(
    unit: UnitWorker,
) -> None:
    order_id = unit.add_order("c1", broker_order_id="b1")
    other = unit.concurrent_writer(order_id)
    apply_in_new_session(unit.ctx, order_id, report(unit, OrderStatus.NEW), ReportSource.MONITOR)
    assert len(other) == 1  # the first attempt lost the race and was rolled back
    assert [e.kind for e in events(unit)] == ["ORDER_ACCEPTED"]


def test_the_relay_publishes_in_order_and_marks_what_redis_took(unit: UnitWorker) -> None:
    order_id = unit.add_order("c1", broker_order_id="b1")
    for status in (OrderStatus.NEW, OrderStatus.PENDING_CANCEL, OrderStatus.CANCELED):
        unit.clock[0] += timedelta(seconds=1)
        apply_in_new_session(unit.ctx, order_id, report(unit, status), ReportSource.MONITOR)
    unit.ctx.settings = unit.ctx.settings.model_copy(update={"outbox_batch_size": 1})

    result = outbox.relay_events(unit.ctx)

    assert (result.published, result.batches, result.error) == (2, 2, None)
    entries = unit.ctx.redis.xrange(outbox.STREAM)
    assert [fields["kind"] for _, fields in entries] == ["ORDER_ACCEPTED", "ORDER_CANCELLED"]
    written = events(unit)
    assert [fields["event_id"] for _, fields in entries] == [e.event_id for e in written]
    assert all(e.published_at == unit.clock[0] for e in written)
    assert outbox.waiting_events(unit.ctx) == 0
    assert outbox.relay_events(unit.ctx).published == 0  # nothing twice


class RefusingPipeline:
    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def execute(self) -> Any:
        raise redis.ConnectionError("Redis is down")


def test_while_redis_refuses_events_wait_and_then_go_out_once(
    unit: UnitWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id = unit.add_order("c1", broker_order_id="b1")
    apply_in_new_session(unit.ctx, order_id, report(unit, OrderStatus.NEW), ReportSource.MONITOR)
    real_pipeline = unit.ctx.redis.pipeline
    monkeypatch.setattr(unit.ctx.redis, "pipeline",
                        lambda **kw: RefusingPipeline(real_pipeline(**kw)))  # fmt: skip

    down = outbox.relay_events(unit.ctx)

    assert (down.published, down.error) == (0, "Redis is down")
    assert outbox.waiting_events(unit.ctx) == 1
    monkeypatch.undo()
    assert outbox.relay_events(unit.ctx).published == 1
    assert len(unit.ctx.redis.xrange(outbox.STREAM)) == 1


def test_a_second_relay_skips_while_one_runs(unit: UnitWorker) -> None:
    unit.ctx.redis.set(outbox.LOCK, "someone else")
    assert outbox.relay_events(unit.ctx).ran is False


def test_published_events_past_retention_are_purged_and_waiting_ones_never(
    unit: UnitWorker,
) -> None:
    order_id = unit.add_order("c1", broker_order_id="b1")
    for status in (OrderStatus.NEW, OrderStatus.CANCELED):
        unit.clock[0] += timedelta(seconds=1)
        apply_in_new_session(unit.ctx, order_id, report(unit, status), ReportSource.MONITOR)
    with unit.ctx.sessions.begin() as session:  # the first published long ago, the second not
        first = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).first()
        assert first is not None
        first.published_at = unit.clock[0] - timedelta(days=40)

    result = purge_closed_orders(unit.ctx)

    assert result.outbox_events == 1
    assert [e.kind for e in events(unit)] == ["ORDER_CANCELLED"]  # still waiting: kept
