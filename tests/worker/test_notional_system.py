"""Notional orders on real parts (Celery workers, the paper exchange over HTTP, SQLite and
PostgreSQL): an order for an amount of money goes out with ``notional`` and no quantity,
fills in fractional parts the exchange sizes, and is recorded as the exchange filled it,
each fill once, its trade and position equal to the exchange's; terms Alpaca refuses for a
notional order are refused before anything is written."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest
from celery.exceptions import TimeoutError as CeleryTimeout
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderOrigin, OrderStatus, TimeInForce
from models.ledger import Position, Trade, TradeOutcome
from models.orders import Order
from models.trades import TradeStatus
from tests.worker.conftest import TrackingSystem, wait_for
from tests.worker.test_reconcile_system import FAST_SWEEPS
from tests.worker.truth import settled

pytestmark = pytest.mark.integration


def _filled_at_the_exchange(system: TrackingSystem, cid: str) -> dict[str, object]:
    def filled() -> dict[str, object] | None:
        return next((t for t in system.exchange.truth()
                     if t["client_order_id"] == cid and t["status"] == "filled"), None)  # fmt: skip

    found: dict[str, object] = system.exchange.wait_for(filled, 60)
    return found


def _find(system: TrackingSystem, cid: str) -> Order | None:
    with Session(system.engine) as session:
        return session.scalar(select(Order).where(Order.client_order_id == cid))


def _order(system: TrackingSystem, cid: str) -> Order:
    order = _find(system, cid)
    assert order is not None
    return order


def test_a_notional_buy_is_recorded_as_filled_and_its_trade_closes_on_a_fractional_exit(
    system: TrackingSystem,
) -> None:
    """$500 of AAPL near 187.50 buys some 2.67 shares in parts (each fill recorded once);
    the exit of what it bought closes the trade, the outcome from the exchange's fills."""
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price("AAPL", "187.50")
    exchange.set_faults(partial_fill_probability=1.0)
    system.start_worker("w1")
    cid = f"notional-{uuid.uuid4().hex[:6]}"

    system.place(client_order_id=cid, symbol="AAPL", side="buy", notional="500",
                 intent="ENTRY", decision_id="n-trade").get(timeout=60)  # fmt: skip

    truth = _filled_at_the_exchange(system, cid)
    settled(system, [cid], 60)
    assert (truth["qty"], truth["notional"]) == (None, "500")
    bought = Decimal(str(truth["filled_qty"]))
    assert Decimal("2.6") < bought < Decimal("2.7")
    order = _order(system, cid)
    assert (order.quantity, order.notional) == (None, Decimal(500))
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, bought)
    assert order.time_in_force is TimeInForce.DAY
    assert order.fill_notional <= Decimal(500)
    true_fills = truth["fills"]
    assert isinstance(true_fills, list)
    assert len(true_fills) > 1  # filled in parts
    ids = [f.broker_fill_id for f in system.fills() if f.order_id == order.id]
    assert len(ids) == len(set(ids)) == len(true_fills)

    [held] = exchange.positions()
    with Session(system.engine) as session:
        position = session.scalar(select(Position).where(Position.symbol == "AAPL"))
        trade = session.scalar(select(Trade).where(Trade.id == "n-trade"))
    assert position is not None
    assert position.quantity == Decimal(held["qty"]) == bought
    assert trade is not None
    assert (trade.status, trade.entry_quantity) == (TradeStatus.OPEN, bought)

    exit_cid = f"{cid}-exit"
    system.place(client_order_id=exit_cid, symbol="AAPL", side="sell", quantity=str(bought),
                 intent="EXIT", trade_id="n-trade").get(timeout=60)  # fmt: skip
    exit_truth = _filled_at_the_exchange(system, exit_cid)
    settled(system, [exit_cid], 60)

    assert exchange.positions() == []
    fills = [*true_fills, *exit_truth["fills"]]  # type: ignore[misc]
    spent = sum(Decimal(f["qty"]) * Decimal(f["price"]) for f in fills if f in true_fills)
    got = sum(Decimal(f["qty"]) * Decimal(f["price"]) for f in fills if f not in true_fills)
    with Session(system.engine) as session:
        trade = session.scalar(select(Trade).where(Trade.id == "n-trade"))
        outcome = session.scalar(select(TradeOutcome))
        position = session.scalar(select(Position).where(Position.symbol == "AAPL"))
    assert trade is not None
    assert trade.status is TradeStatus.CLOSED
    assert outcome is not None
    assert (outcome.quantity, outcome.entry_notional, outcome.exit_notional) == (
        bought, spent, got)  # fmt: skip
    assert position is not None
    assert position.quantity == 0


def test_a_crypto_notional_order_goes_out_gtc_and_is_recorded(system: TrackingSystem) -> None:
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price("BTC/USD", "60000")
    system.start_worker("w1")
    cid = f"btc-notional-{uuid.uuid4().hex[:6]}"

    system.place(client_order_id=cid, symbol="BTC/USD", side="buy",
                 notional="120").get(timeout=60)  # fmt: skip

    truth = _filled_at_the_exchange(system, cid)
    settled(system, [cid], 60)
    order = _order(system, cid)
    assert (order.quantity, order.notional, order.status) == (None, Decimal(120),
                                                              OrderStatus.FILLED)  # fmt: skip
    assert order.time_in_force is TimeInForce.GTC
    assert order.filled_quantity == Decimal(str(truth["filled_qty"])) > 0


@pytest.mark.parametrize(
    ("terms", "problem"),
    [
        ({"order_type": "limit", "limit_price": "180"}, "a notional order must be market"),
        ({"time_in_force": "gtc"}, "a notional order of AAPL must be day, not gtc"),
    ],
)
def test_terms_alpaca_refuses_for_a_notional_order_are_refused_and_nothing_is_written(
    system: TrackingSystem, terms: dict[str, str], problem: str
) -> None:
    system.start_worker("w1")
    refused = system.place(client_order_id="refused", symbol="AAPL", side="buy",
                           notional="500", **terms)  # fmt: skip
    with pytest.raises(Exception, match=problem) as raised:
        refused.get(timeout=60)
    assert not isinstance(raised.value, CeleryTimeout)
    assert system.orders() == []
    assert system.exchange.truth() == []


def _placed_by_hand(system: TrackingSystem, cid: str) -> str:
    """A $250 notional buy of MSFT sent straight to the exchange; its broker id."""
    exchange = system.exchange
    answer = httpx.post(f"{exchange.base_url}/v2/orders", headers=exchange.headers, json={
        "symbol": "MSFT", "notional": "250", "side": "buy", "type": "market",
        "time_in_force": "day", "client_order_id": cid})  # fmt: skip
    answer.raise_for_status()
    assert answer.json()["qty"] is None
    return str(answer.json()["id"])


def test_a_notional_order_handed_over_by_track_order_is_recorded(system: TrackingSystem) -> None:
    system.start_worker("w1")
    broker_id = _placed_by_hand(system, "by-hand-track")

    system.send("track_order", account="test", broker_order_id=broker_id).get(timeout=60)

    _filled_at_the_exchange(system, "by-hand-track")
    settled(system, ["by-hand-track"], 60)
    order = _order(system, "by-hand-track")
    assert (order.origin, order.quantity, order.notional) == (OrderOrigin.TRACKED, None,
                                                              Decimal(250))  # fmt: skip


def test_a_notional_order_placed_directly_at_the_exchange_is_adopted_with_its_fills(
    system: TrackingSystem,
) -> None:
    system.env.update(FAST_SWEEPS)
    broker_id = _placed_by_hand(system, "by-hand-adopt")
    _filled_at_the_exchange(system, "by-hand-adopt")
    system.start_worker("w1")
    system.start_beat()

    found = wait_for(lambda: _find(system, "by-hand-adopt"), 30, "the order adopted")
    settled(system, ["by-hand-adopt"], 60)
    assert found.broker_order_id == broker_id
    assert (found.origin, found.quantity, found.notional) == (OrderOrigin.ADOPTED, None,
                                                              Decimal(250))  # fmt: skip
