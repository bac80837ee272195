"""Crypto at Alpaca on real parts (Celery workers, the paper exchange over HTTP, SQLite,
PostgreSQL and RabbitMQ): a pair's order that names no time in force goes out good till
canceled and trades while the equity market is closed; a day order is refused before
anything is written; crypto fees, taken in the coin bought and posted later, are recorded
once and leave our positions equal to the broker's with no false mismatch alert."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import redis
from celery.exceptions import TimeoutError as CeleryTimeout
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderStatus, TimeInForce
from models.fees import FeePosting
from models.ledger import Position, Trade, TradeOutcome
from models.orders import Order
from models.trades import TradeStatus
from tests.worker.conftest import Hook, TrackingSystem, wait_for
from tests.worker.test_reconcile_system import FAST_SWEEPS
from tests.worker.truth import settled
from worker.heartbeat import last_runs

pytestmark = pytest.mark.integration


def test_a_crypto_order_goes_out_gtc_and_fills_while_the_market_is_closed(
    system: TrackingSystem,
) -> None:
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price("BTC/USD", "60000.00")
    exchange.set_session(3600, 3600)
    exchange.close_day()
    assert exchange.clock()["is_open"] is False
    system.start_worker("w1")
    cid = f"btc-{uuid.uuid4().hex[:6]}"

    system.place(client_order_id=cid, symbol="BTC/USD", side="buy",
                 quantity="0.0125").get(timeout=60)  # fmt: skip

    exchange.wait_for(lambda: any(t["client_order_id"] == cid and t["status"] == "filled"
                                  for t in exchange.truth()))  # fmt: skip
    settled(system, [cid], 60)
    with Session(system.engine) as session:
        order = session.scalar(select(Order).where(Order.client_order_id == cid))
    assert order is not None
    assert (order.symbol, order.time_in_force) == ("BTC/USD", TimeInForce.GTC)
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, Decimal("0.0125"))
    [truth] = [t for t in exchange.truth() if t["client_order_id"] == cid]
    assert truth["time_in_force"] == "gtc"
    assert exchange.clock()["is_open"] is False  # it traded overnight


def test_a_crypto_day_order_is_refused_and_nothing_is_written(system: TrackingSystem) -> None:
    system.start_worker("w1")
    refused = system.place(client_order_id="btc-day", symbol="BTC/USD", side="buy",
                           quantity="1", time_in_force="day")  # fmt: skip
    with pytest.raises(Exception, match="time_in_force must be gtc or ioc") as raised:
        refused.get(timeout=60)
    assert not isinstance(raised.value, CeleryTimeout)
    with Session(system.engine) as session:
        assert session.scalars(select(Order)).all() == []
    assert system.exchange.truth() == []


def _deep_run_after(system: TrackingSystem, after: datetime) -> dict[str, Any]:
    """The stats of a deep reconciliation that started after ``after`` and finished."""
    client = redis.Redis.from_url(system.redis_url)

    def finished() -> dict[str, Any] | None:
        run = last_runs(client)["deep_reconcile"]
        started, done = run.last_started, run.last_finished
        if started is not None and done is not None and started > after and done >= started:
            return dict(run.last_stats)
        return None

    found: dict[str, Any] = wait_for(finished, 60, f"a deep run started after {after}")
    return found


def test_crypto_fees_are_recorded_once_and_positions_equal_the_broker_s(
    system: TrackingSystem, hook_factory: type[Hook]
) -> None:
    """Buy 0.01 BTC at 60000: the broker takes 0.000025 BTC at once and posts it later.
    Until then a deep run counts it as a fee to post, not a mismatch; once posted it is
    recorded once, the position equals the broker's, and the trade's exit of what is
    held closes it with the outcome exact; the cash fee of the sale is kept per account."""
    hook = hook_factory()
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price("BTC/USD", "60000")
    exchange.set_faults(cfee_delay_ms=[12_000, 12_000], partial_fill_probability=0)
    system.env.update({**FAST_SWEEPS, "ORDERSYNC_ALERT_WEBHOOK_URL": hook.url})
    system.start_worker("w1")
    system.start_beat()
    cash_before = Decimal(exchange.account()["cash"])

    system.place(client_order_id="btc-in", symbol="BTC/USD", side="buy", quantity="0.01",
                 intent="ENTRY", decision_id="btc-trade").get(timeout=60)  # fmt: skip
    exchange.wait_for(lambda: any(t["client_order_id"] == "btc-in" and t["status"] == "filled"
                                  for t in exchange.truth()), 30)  # fmt: skip
    settled(system, ["btc-in"], 60)
    filled_at = datetime.now(UTC)
    assert exchange.activities("CFEE") == []  # taken, not posted yet
    stats = _deep_run_after(system, filled_at)
    assert (stats["fees_to_post"], stats["fees_recorded"]) == (1, 0)

    [posted] = exchange.wait_for(lambda: exchange.activities("CFEE"), 30, interval_s=1)
    assert (posted["symbol"], posted["qty"]) == ("BTCUSD", "-0.000025")
    exchange.set_faults(cfee_delay_ms=[0, 200])
    recorded = wait_for(lambda: _postings(system), 60, "the coin fee recorded")
    stats = _deep_run_after(system, max(p.recorded_at for p in recorded))
    assert stats["fees_to_post"] == 0
    [held] = exchange.positions()
    assert held["qty"] == "0.009975"
    assert _position(system) == Decimal("0.009975")

    system.place(client_order_id="btc-out", symbol="BTC/USD", side="sell", quantity=held["qty"],
                 intent="EXIT", trade_id="btc-trade").get(timeout=60)  # fmt: skip
    exchange.wait_for(lambda: any(t["client_order_id"] == "btc-out" and t["status"] == "filled"
                                  for t in exchange.truth()), 30)  # fmt: skip
    settled(system, ["btc-out"], 60)
    wait_for(lambda: len(_postings(system)) == 2, 60, "the sale's cash fee recorded")
    after = datetime.now(UTC)
    _deep_run_after(system, after)
    _deep_run_after(system, datetime.now(UTC))  # the same fees listed again: still two

    assert exchange.positions() == []
    assert _position(system) == 0
    # The broker's own figures: what each fill cost or brought, and each fee.
    fills = {f["side"]: Decimal(f["qty"]) * Decimal(f["price"])
             for f in exchange.activities("FILL")}  # fmt: skip
    fees = exchange.activities("CFEE")
    coin = next(Decimal(f["qty"]) * Decimal(f["price"]) for f in fees if "symbol" in f)
    cash_fee = -sum(Decimal(f["net_amount"]) for f in fees if "symbol" not in f)
    postings = _postings(system)
    assert sorted((p.symbol or "", p.amount) for p in postings) == [
        ("", cash_fee), ("BTC/USD", -coin)]  # fmt: skip
    with Session(system.engine) as session:
        trade = session.get(Trade, (postings[0].account_id, "btc-trade"))
        outcome = session.scalar(select(TradeOutcome))
        position = session.scalar(select(Position))
    assert trade is not None
    assert (trade.status, trade.entry_fee_quantity) == (TradeStatus.CLOSED, Decimal("0.000025"))
    assert outcome is not None
    assert (outcome.quantity, outcome.fees) == (Decimal("0.009975"), -coin)
    assert outcome.realized_pnl == fills["sell"] - fills["buy"]  # the coin fee sold nothing
    assert position is not None
    assert position.realized_pnl == outcome.realized_pnl
    # What the broker's cash moved by (in cents, a fill's rounded): the round trip, and
    # the cash fee beside it.
    moved = Decimal(exchange.account()["cash"]) - cash_before
    assert abs(moved - (position.realized_pnl - cash_fee)) < Decimal("0.01") * len(fills)
    assert [b for b in hook.delivered if b["kind"] == "position_mismatch"] == []


def _postings(system: TrackingSystem) -> list[FeePosting]:
    with Session(system.engine) as session:
        return list(session.scalars(select(FeePosting).order_by(FeePosting.id)))


def _position(system: TrackingSystem) -> Decimal:
    with Session(system.engine) as session:
        held = session.scalar(select(Position.quantity).where(Position.symbol == "BTC/USD"))
    return Decimal(0) if held is None else held
