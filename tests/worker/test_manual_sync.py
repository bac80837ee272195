"""Sync now: the broker's view of one order applied under the order's lock, recorded as a
manual report, its missing fills fetched; a busy order or a broker that cannot be asked is
said so, and changes nothing. SQLite, fakeredis, a stub broker."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from brokers.errors import OrderNotFound, RateLimited
from core.enums import OrderStatus, OrderType, ReportSource, Side, TimeInForce
from core.reports import FillReport, OrderReport, Page
from models.orders import Fill, OrderEvent
from tests.worker.conftest import UnitWorker
from worker.locks import HeldLock, order_lock_name
from worker.manual_sync import BrokerNotAsked, NoSuchOrder, OrderBusy, sync_order


class Broker:
    """The order as the broker sees it: ``status`` and ``filled`` of 5, in one fill."""

    refuses_reused_client_ids = True  # as Alpaca: a second send is refused

    lists_fills = True
    lists_by_symbol = False

    def __init__(self, unit: UnitWorker, status: OrderStatus, filled: str = "0") -> None:
        self.now = unit.clock[0]
        self.status = status
        self.filled = Decimal(filled)
        self.error: Exception | None = None
        self.lookups: list[str] = []

    def get_order(self, broker_order_id: str) -> OrderReport:
        self.lookups.append(broker_order_id)
        if self.error is not None:
            raise self.error
        return OrderReport(
            broker_order_id=broker_order_id, client_order_id="c-1", symbol="AAPL",
            side=Side.BUY, order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC,
            quantity=Decimal(5), status=self.status, raw_status=self.status.value.lower(),
            filled_quantity=self.filled, average_fill_price=Decimal(10) if self.filled else None,
            created_at=self.now - timedelta(seconds=5), updated_at=self.now,
            limit_price=Decimal(10),
        )  # fmt: skip

    def list_fills(self, **_: Any) -> Page[FillReport]:
        if not self.filled:
            return Page(())
        fill = FillReport("fill-1", "b-1", "AAPL", Side.BUY, self.filled, Decimal(10), self.now)
        return Page((fill,))

    def fill_cursor(self, fill: FillReport) -> str:
        return fill.broker_fill_id


def test_the_brokers_view_is_applied_and_its_fills_recorded(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    unit.adapter = Broker(unit, OrderStatus.FILLED, filled="5")

    result = sync_order(unit.ctx, order_id, wait_s=0.1)

    assert (result.old_status, result.new_status) == (OrderStatus.NEW, OrderStatus.FILLED)
    assert result.outcome == "applied"
    with unit.ctx.sessions() as session:
        fills = session.scalars(select(Fill).where(Fill.order_id == order_id)).all()
        sources = set(session.scalars(select(OrderEvent.source)
                                      .where(OrderEvent.order_id == order_id)))  # fmt: skip
    assert [(f.broker_fill_id, f.quantity) for f in fills] == [("fill-1", Decimal(5))]
    assert ReportSource.MANUAL in sources
    assert unit.ctx.redis.get(order_lock_name(order_id)) is None  # the lock is given back


def test_a_terminal_order_is_still_asked_the_broker_is_the_truth(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.CANCELED)
    unit.adapter = broker = Broker(unit, OrderStatus.CANCELED)

    result = sync_order(unit.ctx, order_id, wait_s=0.1)

    assert broker.lookups == ["b-1"]
    assert (result.old_status, result.new_status) == (OrderStatus.CANCELED, OrderStatus.CANCELED)


def test_an_order_held_by_a_worker_is_busy_and_not_touched(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    unit.adapter = broker = Broker(unit, OrderStatus.FILLED, filled="5")
    waits: list[float] = []
    with HeldLock(unit.ctx.redis, order_lock_name(order_id), 30) as held:
        assert held
        with pytest.raises(OrderBusy) as raised:
            sync_order(unit.ctx, order_id, wait_s=0.2, sleep=waits.append)
    assert raised.value.order_id == order_id
    assert broker.lookups == []
    assert waits  # it waited for the holder before giving up
    assert unit.order(order_id).status is OrderStatus.NEW


def test_a_broker_that_cannot_be_asked_changes_nothing(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    unit.adapter = broker = Broker(unit, OrderStatus.FILLED, filled="5")
    broker.error = RateLimited("429 from the broker")

    with pytest.raises(BrokerNotAsked, match="could not be asked"):
        sync_order(unit.ctx, order_id, wait_s=0.1)

    assert unit.order(order_id).status is OrderStatus.NEW
    assert unit.ctx.redis.get(order_lock_name(order_id)) is None


def test_an_order_the_broker_does_not_show_is_reported_so(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    unit.adapter = broker = Broker(unit, OrderStatus.NEW)
    broker.error = OrderNotFound("b-1")

    result = sync_order(unit.ctx, order_id, wait_s=0.1)

    assert result.outcome == "not found at the broker"
    assert result.new_status is OrderStatus.NEW


def test_an_unknown_order(unit: UnitWorker) -> None:
    with pytest.raises(NoSuchOrder):
        sync_order(unit.ctx, "00000000-0000-0000-0000-000000000000", wait_s=0.1)
