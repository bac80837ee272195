"""``track_order`` for an order deep reconciliation adopted first (its fills recorded without
an intent): naming its intent replays those fills into the trade, once, in the annotating
transaction, and never into the position again (SQLite, fakeredis, a worker context)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from brokers.errors import OrderNotFound
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
from models.ledger import Position, Trade, TradeOutcome
from models.orders import Order
from models.outbox import OutboxEvent
from models.repository import apply_to_order
from models.trades import PositionState, TradeStatus
from tests.models.factories import fill, report
from tests.worker.conftest import T0, UnitWorker
from worker import tracking
from worker.args import InvalidTaskArguments, TrackOrderArgs

D = Decimal


def adopt(unit: UnitWorker, ref: str, side: Side, quantity: str, price: str) -> str:
    """An order found at the broker, filled, recorded as deep reconciliation records it."""
    with unit.ctx.sessions.begin() as session:
        order = Order(
            account_id=unit.account_id, broker=BrokerKind.ALPACA, client_order_id=f"svc-{ref}",
            broker_order_id=f"b-{ref}", origin=OrderOrigin.ADOPTED, symbol="AAPL", side=side,
            order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY,
            quantity=D(quantity), status=OrderStatus.PENDING_NEW, created_at=T0,
            updated_at=T0,
        )  # fmt: skip
        session.add(order)
        session.flush()
        seen = report(OrderStatus.FILLED, quantity, quantity=quantity, broker_order_id=f"b-{ref}",
                      fills=(fill(f"f-{ref}", quantity, price, fee="0.5",
                                  broker_order_id=f"b-{ref}"),))  # fmt: skip
        apply_to_order(session, order, seen, now=unit.clock[0], source=ReportSource.DEEP)
        return order.id


def track(unit: UnitWorker, ref: str, **named: Any) -> str | None:
    return tracking.track_order(unit.ctx, TrackOrderArgs(account="a", client_order_id=f"svc-{ref}",
                                                         **named)).order_id  # fmt: skip


def position(unit: UnitWorker) -> PositionState:
    with unit.ctx.sessions() as session:
        return session.scalars(select(Position)).one().state()


def trades(unit: UnitWorker) -> list[tuple[str, TradeStatus, Decimal, Decimal]]:
    with unit.ctx.sessions() as session:
        rows = session.scalars(select(Trade).order_by(Trade.id))
        return [(t.id, t.status, t.entry_quantity, t.exit_quantity) for t in rows]


def trade_events(unit: UnitWorker) -> list[str]:
    with unit.ctx.sessions() as session:
        query = select(OutboxEvent.kind).where(OutboxEvent.kind.like("TRADE_%"))
        return list(session.scalars(query.order_by(OutboxEvent.id)))


def test_tracking_an_adopted_entry_then_its_exit_opens_and_closes_the_trade(
    unit: UnitWorker,
) -> None:
    entry_id = adopt(unit, "entry", Side.BUY, "10", "100")
    assert (trades(unit), position(unit).quantity) == ([], D(10))

    assert track(unit, "entry", intent="ENTRY", decision_id="d-1", requested_price="99") == entry_id
    assert trades(unit) == [("d-1", TradeStatus.OPEN, D(10), D(0))]
    assert position(unit) == PositionState(D(10), D(1000), D("-0.5"), D("0.5"))  # unchanged
    assert unit.order(entry_id).trade_id == "d-1"

    exit_id = adopt(unit, "exit", Side.SELL, "10", "103")
    flat = position(unit)
    assert (flat.quantity, flat.realized_pnl) == (0, D(29))
    track(unit, "exit", intent="EXIT", trade_id="d-1")
    track(unit, "exit", intent="EXIT", trade_id="d-1")  # redelivered: nothing more
    assert trades(unit) == [("d-1", TradeStatus.CLOSED, D(10), D(10))]
    with unit.ctx.sessions() as session:
        outcome = session.scalars(select(TradeOutcome)).one()
        assert (outcome.quantity, outcome.realized_pnl, outcome.fees) == (D(10), D(29), D(1))
        assert outcome.entry_slippage == D(1)  # paid 100 against the requested 99
        assert session.scalar(select(func.count()).select_from(TradeOutcome)) == 1
    assert position(unit) == flat
    assert trade_events(unit) == ["TRADE_OPENED", "TRADE_CLOSED"]
    assert unit.order(exit_id).intent is Intent.EXIT


def test_tracking_an_adopted_order_without_an_intent_changes_no_trade(unit: UnitWorker) -> None:
    order_id = adopt(unit, "plain", Side.BUY, "10", "100")
    track(unit, "plain", decision_id="d-9")
    assert unit.order(order_id).decision_id == "d-9"
    assert trades(unit) == []
    assert trade_events(unit) == []


class _PerSymbolBroker:
    """A broker that finds an order by client id only within its symbol (as Binance)."""

    lists_by_symbol = True

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []

    def get_order_by_client_id(self, client_order_id: str, *, symbol: str | None = None) -> Any:
        self.asked.append((client_order_id, symbol))
        raise OrderNotFound(client_order_id)


def test_tracking_by_client_id_on_a_per_symbol_broker_without_a_symbol_is_refused(
    unit: UnitWorker,
) -> None:
    unit.adapter = broker = _PerSymbolBroker()
    with pytest.raises(InvalidTaskArguments, match="give symbol"):
        track(unit, "new")
    assert broker.asked == []  # refused before anything was asked
    assert track(unit, "new", symbol="BTCUSDT") is None  # with it: looked up (not found yet)
    assert broker.asked == [("svc-new", "BTCUSDT")]
