"""Placement against a stub broker (SQLite, fakeredis): its broker calls, the submit and the
lookup by client order id after a lost answer, spend the request budget at placement
priority, ahead of monitors and sweeps."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from brokers.errors import AnswerLost, OrderNotFound
from core.enums import (
    BrokerKind,
    Intent,
    OrderOrigin,
    OrderStatus,
    OrderType,
    ReportSource,
    Side,
    TimeInForce,
)
from core.reports import OrderReport, PlaceOrderRequest
from models.orders import Order
from models.repository import apply_to_order
from tests.models.factories import fill
from tests.worker.conftest import T0, UnitWorker
from worker.args import InvalidTaskArguments, PlaceOrderArgs
from worker.budget import Priority, current_priority
from worker.placement import place_order


class StubBroker:
    """Accepts every order; loses the first ``lose`` answers. Records each call's priority."""

    refuses_reused_client_ids = True  # as Alpaca: a second send is refused

    def __init__(self, lose: int = 0) -> None:
        self.lose = lose
        self.orders: dict[str, OrderReport] = {}
        self.calls: list[tuple[str, Priority]] = []

    def place(self, request: PlaceOrderRequest) -> OrderReport:
        self.calls.append(("place", current_priority()))
        report = OrderReport(
            broker_order_id=f"b-{request.client_order_id}",
            client_order_id=request.client_order_id, symbol=request.symbol, side=request.side,
            order_type=request.order_type, time_in_force=request.time_in_force,
            quantity=request.quantity, status=OrderStatus.NEW, raw_status="new",
            filled_quantity=Decimal(0), average_fill_price=None,
            created_at=datetime.now(UTC), updated_at=datetime.now(UTC),
        )  # fmt: skip
        self.orders[request.client_order_id] = report
        if len(self.calls) <= self.lose:
            raise AnswerLost("504 gateway timeout", client_order_id=request.client_order_id)
        return report

    def get_order_by_client_id(self, client_order_id: str, **_: Any) -> OrderReport:
        self.calls.append(("lookup", current_priority()))
        return self.orders[client_order_id]


def args(client_order_id: str) -> PlaceOrderArgs:
    return PlaceOrderArgs(account="a", symbol="AAPL", side=Side.BUY, quantity="2",
                          order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY,
                          client_order_id=client_order_id)  # fmt: skip


def test_the_submit_runs_at_placement_priority(unit: UnitWorker) -> None:
    unit.adapter = broker = StubBroker()
    result = place_order(unit.ctx, args("p-1"), task_id="t-1")
    assert broker.calls == [("place", Priority.PLACEMENT)]
    assert unit.order(result.order_id).broker_order_id == "b-p-1"
    assert current_priority() is Priority.MONITOR  # only inside the placement


def test_the_lookup_after_a_lost_answer_runs_at_placement_priority(unit: UnitWorker) -> None:
    unit.adapter = broker = StubBroker(lose=1)
    result = place_order(unit.ctx, args("p-2"), task_id="t-2")
    assert broker.calls == [("place", Priority.PLACEMENT), ("lookup", Priority.PLACEMENT)]
    assert unit.order(result.order_id).status is OrderStatus.NEW


def test_a_redelivered_placement_is_sent_again_at_placement_priority(unit: UnitWorker) -> None:
    """The broker refuses a second order with the same client order id, so sending again
    is safe (test_placement_deadline.py has a broker that does refuse it)."""
    unit.adapter = broker = StubBroker(lose=1)
    first = place_order(unit.ctx, args("p-3"), task_id="t-3")
    broker.calls.clear()
    broker.lose = 0
    # The row exists but, as if the first worker died before storing the answer, no id.
    with unit.ctx.sessions.begin() as session:
        order = session.get(Order, first.order_id)
        assert order is not None
        order.broker_order_id, order.status = None, OrderStatus.PENDING_NEW
    again = place_order(unit.ctx, args("p-3"), task_id="t-3")
    assert again.order_id == first.order_id
    assert broker.calls == [("place", Priority.PLACEMENT)]


class ReusingBroker(StubBroker):
    """Takes a client order id again once its order has closed, as Binance does."""

    refuses_reused_client_ids = False

    def get_order_by_client_id(self, client_order_id: str, **_: Any) -> OrderReport:
        self.calls.append(("lookup", current_priority()))
        if client_order_id not in self.orders:
            raise OrderNotFound(client_order_id)
        return self.orders[client_order_id]


def _redelivered_unanswered(unit: UnitWorker, broker: ReusingBroker, cid: str) -> str:
    """A placement sent once, its row left as if the worker died before the answer."""
    first = place_order(unit.ctx, args(cid), task_id=f"t-{cid}")
    with unit.ctx.sessions.begin() as session:
        order = session.get(Order, first.order_id)
        assert order is not None
        order.broker_order_id, order.status = None, OrderStatus.PENDING_NEW
    broker.calls.clear()
    return first.order_id


def test_a_resend_to_a_broker_that_takes_a_used_id_again_is_looked_up_first(
    unit: UnitWorker,
) -> None:
    """The earlier send made the order (it may have filled and closed by now): sending
    again would make a second one at a broker that takes the id again. It is found."""
    unit.adapter = broker = ReusingBroker()
    order_id = _redelivered_unanswered(unit, broker, "p-4")
    again = place_order(unit.ctx, args("p-4"), task_id="t-p-4")
    assert again.order_id == order_id
    assert broker.calls == [("lookup", Priority.PLACEMENT)]  # found: nothing sent again
    assert unit.order(order_id).broker_order_id == "b-p-4"


def test_a_resend_is_made_once_that_broker_says_it_has_no_such_order(unit: UnitWorker) -> None:
    unit.adapter = broker = ReusingBroker()
    order_id = _redelivered_unanswered(unit, broker, "p-5")
    broker.orders.clear()  # the earlier send never got there
    place_order(unit.ctx, args("p-5"), task_id="t-p-5")
    assert broker.calls == [("lookup", Priority.PLACEMENT), ("place", Priority.PLACEMENT)]
    assert unit.order(order_id).broker_order_id == "b-p-5"


# --- an EXIT may close no more than its trade has open -----------------------------------


def open_trade(unit: UnitWorker, quantity: str = "10", trade_id: str = "t-1") -> None:
    """An entry filled ``quantity`` AAPL through the repository: the trade is open."""
    with unit.ctx.sessions.begin() as session:
        entry = Order(
            account_id=unit.account_id, broker=BrokerKind.ALPACA,
            client_order_id=f"entry-{trade_id}", broker_order_id=f"b-entry-{trade_id}",
            origin=OrderOrigin.PLACED, symbol="AAPL", side=Side.BUY, intent=Intent.ENTRY,
            trade_id=trade_id, order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY,
            quantity=Decimal(quantity), status=OrderStatus.NEW, created_at=T0, updated_at=T0,
        )  # fmt: skip
        session.add(entry)
        session.flush()
        apply_to_order(session, entry, fill(f"e-{trade_id}", quantity, "10",
                                            broker_order_id=f"b-entry-{trade_id}"),
                       now=T0, source=ReportSource.MONITOR)  # fmt: skip


def exit_args(quantity: str, client_order_id: str, *, trade_id: str = "t-1",
              side: Side = Side.SELL, symbol: str = "AAPL") -> PlaceOrderArgs:  # fmt: skip
    return PlaceOrderArgs(account="a", symbol=symbol, side=side, quantity=quantity,
                          intent=Intent.EXIT, trade_id=trade_id,
                          client_order_id=client_order_id)  # fmt: skip


def fill_exit(unit: UnitWorker, order_id: str, quantity: str) -> None:
    with unit.ctx.sessions.begin() as session:
        order = session.get(Order, order_id)
        assert order is not None
        assert order.broker_order_id is not None
        apply_to_order(session, order, fill(f"x-{order_id}", quantity, "11",
                                            broker_order_id=order.broker_order_id),
                       now=T0, source=ReportSource.MONITOR)  # fmt: skip


def orders_of(unit: UnitWorker) -> list[str]:
    with unit.ctx.sessions() as session:
        return sorted(session.scalars(select(Order.client_order_id)))


def test_an_exit_larger_than_its_trade_is_refused_clearly_and_nothing_is_written(
    unit: UnitWorker,
) -> None:
    unit.adapter = broker = StubBroker()
    open_trade(unit, "10")
    with pytest.raises(InvalidTaskArguments) as refused:
        place_order(unit.ctx, exit_args("11", "x-1"), task_id="t-x1")
    assert str(refused.value) == (
        "ordersync.place_order: exit refused: 11 AAPL exceeds what trade 't-1' has open: "
        "10 open, 10 available"
    )
    assert broker.calls == []
    assert orders_of(unit) == ["entry-t-1"]


def test_working_exits_hold_what_they_may_still_close(unit: UnitWorker) -> None:
    unit.adapter = StubBroker()
    open_trade(unit, "10")
    first = place_order(unit.ctx, exit_args("6", "x-1"), task_id="t-x1")
    fill_exit(unit, first.order_id, "2")  # 4 of it still working
    with pytest.raises(InvalidTaskArguments, match=(
        r"exceeds what trade 't-1' has open: 8 open, 4 held by working exits "
        rf"\['{first.order_id}'\], 4 available"
    )):  # fmt: skip
        place_order(unit.ctx, exit_args("5", "x-2"), task_id="t-x2")
    place_order(unit.ctx, exit_args("4", "x-3"), task_id="t-x3")
    assert orders_of(unit) == ["entry-t-1", "x-1", "x-3"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"trade_id": "nope"}, "no trade 'nope' in this account"),
        ({"side": Side.BUY}, "trade 't-1' is long AAPL: its exit must sell, not buy"),
        ({"symbol": "MSFT"}, "trade 't-1' is in AAPL, not MSFT"),
    ],
)
def test_an_exit_its_trade_cannot_take_is_refused(
    unit: UnitWorker, change: dict[str, Any], reason: str
) -> None:
    unit.adapter = StubBroker()
    open_trade(unit, "10")
    with pytest.raises(InvalidTaskArguments, match=f"exit refused: {reason}"):
        place_order(unit.ctx, exit_args("1", "x-1", **change), task_id="t-x1")
    assert orders_of(unit) == ["entry-t-1"]


def test_an_exit_of_a_closed_trade_is_refused_but_a_redelivery_is_answered(
    unit: UnitWorker,
) -> None:
    unit.adapter = StubBroker()
    open_trade(unit, "10")
    placed = place_order(unit.ctx, exit_args("10", "x-1"), task_id="t-x1")
    fill_exit(unit, placed.order_id, "10")  # the trade is closed
    again = place_order(unit.ctx, exit_args("10", "x-1"), task_id="t-x1")
    assert again.order_id == placed.order_id
    with pytest.raises(InvalidTaskArguments, match="exit refused: trade 't-1' is closed"):
        place_order(unit.ctx, exit_args("1", "x-2"), task_id="t-x2")


def test_a_crypto_order_naming_no_time_in_force_is_good_till_canceled(unit: UnitWorker) -> None:
    unit.adapter = broker = StubBroker()
    call = PlaceOrderArgs(account="a", symbol="BTC/USD", side=Side.BUY, quantity="0.0125",
                          client_order_id="btc-1")  # fmt: skip

    order_id = place_order(unit.ctx, call, task_id="t-btc").order_id

    assert broker.orders["btc-1"].time_in_force is TimeInForce.GTC
    with unit.ctx.sessions() as session:
        row = session.get(Order, order_id)
        assert row is not None
        assert (row.symbol, row.time_in_force) == ("BTC/USD", TimeInForce.GTC)


def test_a_crypto_day_order_is_refused_before_anything_is_written(unit: UnitWorker) -> None:
    unit.adapter = broker = StubBroker()
    call = PlaceOrderArgs(account="a", symbol="BTC/USD", side=Side.BUY, quantity="1",
                          time_in_force=TimeInForce.DAY, client_order_id="btc-2")  # fmt: skip

    with pytest.raises(InvalidTaskArguments, match="BTC/USD is crypto: time_in_force must be "
                       "gtc or ioc, not day"):  # fmt: skip
        place_order(unit.ctx, call, task_id="t-btc2")

    assert broker.calls == []
    with unit.ctx.sessions() as session:
        assert session.scalars(select(Order)).all() == []
