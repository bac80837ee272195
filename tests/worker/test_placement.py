"""Placement against a stub broker (SQLite, fakeredis): its broker calls, the submit and the
lookup by client order id after a lost answer, spend the request budget at placement
priority, ahead of monitors and sweeps."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from brokers.base import OrderReport, PlaceOrderRequest
from brokers.errors import AnswerLost
from models.enums import OrderStatus, OrderType, Side, TimeInForce
from models.orders import Order
from tests.worker.conftest import UnitWorker
from worker.args import PlaceOrderArgs
from worker.budget import Priority, current_priority
from worker.placement import place_order


class StubBroker:
    """Accepts every order; loses the first ``lose`` answers. Records each call's priority."""

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

    def get_order_by_client_id(self, client_order_id: str) -> OrderReport:
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


def test_a_redelivered_placement_looks_first_at_placement_priority(unit: UnitWorker) -> None:
    unit.adapter = broker = StubBroker(lose=1)
    first = place_order(unit.ctx, args("p-3"), task_id="t-3")
    broker.calls.clear()
    # The row exists but, as if the first worker died before storing the answer, no id.
    with unit.ctx.sessions.begin() as session:
        order = session.get(Order, first.order_id)
        assert order is not None
        order.broker_order_id, order.status = None, OrderStatus.PENDING_NEW
    again = place_order(unit.ctx, args("p-3"), task_id="t-3")
    assert again.order_id == first.order_id
    assert broker.calls == [("lookup", Priority.PLACEMENT)]
