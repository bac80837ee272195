"""Brackets on real parts (Celery workers, the paper exchange over HTTP, SQLite, PostgreSQL
and RabbitMQ): a bracket entry's legs are tracked as the exits of its trade; whichever leg
fills closes the trade with an outcome equal to the exchange's fills, and the other leg,
canceled by the broker, is picked up without a call."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import Intent, OrderClass, OrderStatus, OrderType, Side
from models.ledger import Trade, TradeOutcome, trade_id_of
from models.orders import Order
from models.state_machine import AVERAGE_PRICE_QUANTUM
from models.trades import TradeStatus
from tests.worker.conftest import TrackingSystem, wait_for
from tests.worker.truth import settled

pytestmark = pytest.mark.integration
QTY = Decimal(10)


def _rows(system: TrackingSystem, parent_cid: str) -> tuple[Order, list[Order]]:
    with Session(system.engine) as session:
        parent = session.scalar(select(Order).where(Order.client_order_id == parent_cid))
        assert parent is not None
        legs = list(session.scalars(select(Order).where(Order.parent_id == parent.id)))
        return parent, legs


def _notional(fills: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(f["qty"]) * Decimal(f["price"]) for f in fills), Decimal(0))


def _average(fills: list[dict[str, Any]]) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        quantity = sum(Decimal(f["qty"]) for f in fills)
        return (_notional(fills) / quantity).quantize(
            AVERAGE_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN
        )


def _bracket(system: TrackingSystem, symbol: str) -> str:
    cid = f"br-{symbol}-{uuid.uuid4().hex[:6]}"
    system.place(client_order_id=cid, symbol=symbol, side="buy", quantity=str(QTY),
                 intent="ENTRY", decision_id=f"d-{cid}", order_class="bracket",
                 time_in_force="gtc", take_profit={"limit_price": "110.00"},
                 stop_loss={"stop_price": "90.00"}).get(timeout=60)  # fmt: skip
    return cid


@pytest.mark.parametrize("exit_by", ["take_profit", "stop_loss"])
def test_a_bracket_round_trip_closes_its_trade_through_the_leg_that_fills(
    system: TrackingSystem, exit_by: str
) -> None:
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price("AAPL", "100.00")
    system.start_worker("w1")
    cid = _bracket(system, "AAPL")

    def legs_working() -> bool:
        """The take-profit works; the stop-loss waits ``held`` with its stop watched."""
        parent, legs = _rows(system, cid)
        raw = {leg.order_type: leg.raw_status for leg in legs}
        return (
            parent.status is OrderStatus.FILLED
            and all(leg.status is OrderStatus.NEW for leg in legs)
            and raw == {OrderType.LIMIT: "new", OrderType.STOP: "held"}
        )

    wait_for(legs_working, 60, "the entry filled and its take-profit working")
    parent, legs = _rows(system, cid)
    assert parent.order_class is OrderClass.BRACKET
    by_type = {leg.order_type: leg for leg in legs}
    take, stop = by_type[OrderType.LIMIT], by_type[OrderType.STOP]
    for leg in legs:
        assert (leg.intent, leg.trade_id, leg.side) == (Intent.EXIT, trade_id_of(parent), Side.SELL)

    exchange.set_price("AAPL", "111.00" if exit_by == "take_profit" else "89.00")
    winner, loser = (take, stop) if exit_by == "take_profit" else (stop, take)

    def closed() -> bool:
        _, now = _rows(system, cid)
        status = {leg.id: leg.status for leg in now}
        return status[winner.id] is OrderStatus.FILLED and status[loser.id] is OrderStatus.CANCELED

    wait_for(closed, 90, f"the {exit_by} filled and its sibling canceled")
    settled(system, [cid, take.client_order_id, stop.client_order_id], 30)
    truth = {t["client_order_id"]: t for t in exchange.truth()}
    entry_fills, exit_fills = truth[cid]["fills"], truth[winner.client_order_id]["fills"]
    entry_avg, exit_avg = _average(entry_fills), _average(exit_fills)
    with Session(system.engine) as session:
        outcome = session.scalar(select(TradeOutcome))
        trade = session.scalar(select(Trade))
    assert outcome is not None
    assert trade is not None
    assert trade.status is TradeStatus.CLOSED
    assert (outcome.quantity, outcome.entry_average_price, outcome.exit_average_price) == (
        QTY, entry_avg, exit_avg)  # fmt: skip
    assert outcome.realized_pnl == _notional(exit_fills) - _notional(entry_fills)
    assert outcome.fees == 0
