"""Exit legs (SQLite, fakeredis, a stub broker): a bracket is sent with its legs, and the
legs the broker makes are registered once each as orders of their own, linked to their
parent and closing the parent's trade; the parent's monitor watches them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from core.enums import (
    Intent,
    OrderClass,
    OrderStatus,
    OrderType,
    ReportSource,
    Side,
    TimeInForce,
)
from core.reports import OrderReport, PlaceOrderRequest
from models.ledger import default_trade_id
from models.orders import Order, OrderEvent
from tests.worker.conftest import UnitWorker
from worker.args import PlaceOrderArgs, TrackOrderArgs
from worker.legs import register_legs
from worker.monitoring import open_legs
from worker.placement import place_order
from worker.tracking import track_order


def _report(broker_id: str, client_id: str, *, side: Side = Side.BUY,
            order_type: OrderType = OrderType.MARKET, limit: Decimal | None = None,
            stop: Decimal | None = None, raw_status: str = "new",
            order_class: OrderClass = OrderClass.BRACKET,
            legs: tuple[OrderReport, ...] = ()) -> OrderReport:  # fmt: skip
    now = datetime.now(UTC)
    return OrderReport(
        broker_order_id=broker_id, client_order_id=client_id, symbol="AAPL", side=side,
        order_type=order_type, time_in_force=TimeInForce.GTC, quantity=Decimal(10),
        status=OrderStatus.NEW, raw_status=raw_status, filled_quantity=Decimal(0),
        average_fill_price=None, created_at=now, updated_at=now, limit_price=limit,
        stop_price=stop, order_class=order_class, legs=legs,
    )  # fmt: skip


class BracketBroker:
    """Answers a placement with the order and the two legs Alpaca would make for it."""

    refuses_reused_client_ids = True  # as Alpaca: a second send is refused

    def __init__(self) -> None:
        self.requests: list[PlaceOrderRequest] = []

    def place(self, request: PlaceOrderRequest) -> OrderReport:
        self.requests.append(request)
        legs = (
            _report("b-tp", "venue-tp", side=Side.SELL, order_type=OrderType.LIMIT,
                    limit=request.take_profit_limit_price, raw_status="held"),
            _report("b-sl", "venue-sl", side=Side.SELL, order_type=OrderType.STOP,
                    stop=request.stop_loss_stop_price, raw_status="held"),
        )  # fmt: skip
        if request.order_class is OrderClass.SIMPLE:
            legs = ()
        return _report(f"b-{request.client_order_id}", request.client_order_id, legs=legs,
                       order_class=request.order_class)  # fmt: skip


def bracket(unit: UnitWorker, **terms: Any) -> str:
    fields: dict[str, Any] = {
        "account": "a", "symbol": "AAPL", "side": "buy", "quantity": "10",
        "client_order_id": "entry-1", "intent": Intent.ENTRY, "decision_id": "d-1",
        "order_class": "bracket", "take_profit": {"limit_price": "120"},
        "stop_loss": {"stop_price": "90", "limit_price": "89.5"},
    } | terms  # fmt: skip
    return place_order(unit.ctx, PlaceOrderArgs(**fields), task_id="t-1").order_id


def legs_of(unit: UnitWorker, parent_id: str) -> list[Order]:
    with unit.ctx.sessions() as session:
        return list(session.scalars(
            select(Order).where(Order.parent_id == parent_id).order_by(Order.broker_order_id)
        ))  # fmt: skip


def test_a_bracket_is_sent_with_its_legs_and_the_legs_are_tracked_as_exits(
    unit: UnitWorker,
) -> None:
    unit.adapter = broker = BracketBroker()
    parent_id = bracket(unit)

    request = broker.requests[0]
    assert request.order_class is OrderClass.BRACKET
    prices = (request.take_profit_limit_price, request.stop_loss_stop_price,
              request.stop_loss_limit_price)  # fmt: skip
    assert prices == (Decimal(120), Decimal(90), Decimal("89.5"))
    parent = unit.order(parent_id)
    assert parent.order_class is OrderClass.BRACKET
    stop, take = legs_of(unit, parent_id)
    assert (take.broker_order_id, take.client_order_id, take.order_type, take.limit_price) == (
        "b-tp", "venue-tp", OrderType.LIMIT, Decimal(120))  # fmt: skip
    assert (stop.broker_order_id, stop.order_type, stop.stop_price) == (
        "b-sl", OrderType.STOP, Decimal(90))  # fmt: skip
    for leg in (take, stop):
        assert (leg.intent, leg.trade_id, leg.decision_id) == (
            Intent.EXIT, default_trade_id(parent), "d-1")  # fmt: skip
        assert (leg.side, leg.status, leg.raw_status) == (Side.SELL, OrderStatus.NEW, "held")
        assert leg.origin is parent.origin
    assert set(open_legs(unit.ctx, parent_id)) == {take.id, stop.id}


def test_legs_are_registered_once_whichever_path_sees_them_again(unit: UnitWorker) -> None:
    unit.adapter = broker = BracketBroker()
    parent_id = bracket(unit)
    report = broker.place(broker.requests[0])

    again = register_legs(unit.ctx, parent_id, report, ReportSource.MONITOR)

    assert again == []
    assert len(legs_of(unit, parent_id)) == 2
    with unit.ctx.sessions() as session:
        created = session.scalars(select(OrderEvent.detail).where(
            OrderEvent.kind == "created", OrderEvent.order_id.in_(
                [leg.id for leg in legs_of(unit, parent_id)]))).all()  # fmt: skip
    assert sorted(created) == [
        f"limit leg of order {parent_id} (broker order b-entry-1, bracket), made by the broker",
        f"stop leg of order {parent_id} (broker order b-entry-1, bracket), made by the broker",
    ]


def test_a_leg_the_broker_adds_later_is_registered_from_the_parents_report(
    unit: UnitWorker,
) -> None:
    unit.adapter = broker = BracketBroker()
    parent_id = bracket(unit)
    report = broker.place(broker.requests[0])
    third = _report("b-x", "venue-x", side=Side.SELL, order_type=OrderType.LIMIT,
                    limit=Decimal(130), raw_status="held")  # fmt: skip

    added = register_legs(unit.ctx, parent_id, dataclasses.replace(
        report, legs=(*report.legs, third)), ReportSource.SWEEP)  # fmt: skip

    assert len(added) == 1
    assert unit.order(added[0]).broker_order_id == "b-x"


def test_an_oco_pairs_leg_carries_the_pairs_own_context(unit: UnitWorker) -> None:
    """An OCO is itself an exit pair: its leg closes what it closes, nothing more."""
    unit.adapter = BracketBroker()
    parent_id = bracket(unit, client_order_id="oco-1", side="sell", order_type="limit",
                        limit_price="120", order_class="oco", intent=None,
                        decision_id="d-oco")  # fmt: skip
    assert unit.order(parent_id).order_class is OrderClass.OCO
    for leg in legs_of(unit, parent_id):
        assert (leg.intent, leg.trade_id, leg.decision_id) == (None, None, "d-oco")


def test_a_simple_order_has_no_legs(unit: UnitWorker) -> None:
    unit.adapter = BracketBroker()
    parent_id = bracket(unit, order_class="simple", take_profit=None, stop_loss=None)
    assert legs_of(unit, parent_id) == []
    assert open_legs(unit.ctx, parent_id) == ()


def test_a_leg_adopted_as_a_stranger_first_is_claimed_by_its_parent(unit: UnitWorker) -> None:
    """A sweep saw the take-profit before the parent's answer named it: the row takes the
    parent's link and trade instead of staying a stranger."""
    unit.adapter = BracketBroker()
    stranger = unit.add_order("venue-tp", broker_order_id="b-tp", status=OrderStatus.NEW)
    assert unit.order(stranger).intent is None

    parent_id = bracket(unit)

    stop, take = legs_of(unit, parent_id)
    assert take.id == stranger
    parent = unit.order(parent_id)
    for leg in (take, stop):
        assert (leg.parent_id, leg.intent, leg.trade_id) == (
            parent_id, Intent.EXIT, default_trade_id(parent))  # fmt: skip
    with unit.ctx.sessions() as session:
        kinds = session.scalars(select(OrderEvent.kind).where(OrderEvent.order_id == stranger))
        assert "leg_of" in list(kinds)


def test_an_intent_told_later_reaches_the_legs(unit: UnitWorker) -> None:
    """A bracket placed without an intent, then tracked as an ENTRY: its legs become the
    exits of its trade (not left without one, where a fill would close nothing)."""
    unit.adapter = BracketBroker()
    parent_id = bracket(unit, intent=None, decision_id=None)
    assert {leg.intent for leg in legs_of(unit, parent_id)} == {None}

    track_order(unit.ctx, TrackOrderArgs(account="a", client_order_id="entry-1",
                                         intent=Intent.ENTRY, decision_id="d-late"))  # fmt: skip

    parent = unit.order(parent_id)
    assert (parent.intent, parent.decision_id) == (Intent.ENTRY, "d-late")
    for leg in legs_of(unit, parent_id):
        assert (leg.intent, leg.decision_id, leg.trade_id) == (
            Intent.EXIT, "d-late", default_trade_id(parent))  # fmt: skip
