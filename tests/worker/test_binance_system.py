"""A Binance Spot account tracked end to end: real workers, the paper exchange's Binance
dialect over HTTP (signed requests, weights, per-symbol ids and listings), and Binance's
own connector as the witness of the account's balances."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from binance.spot import Spot
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import BrokerKind, OrderStatus
from models.accounts import ensure_account
from models.fees import FeePosting
from models.ledger import Position, Trade, TradeOutcome
from models.orders import Fill, Order
from models.trades import TradeStatus
from tests.worker.conftest import Hook, TrackingSystem, wait_for
from tests.worker.test_crypto_system import _deep_run_after
from tests.worker.test_reconcile_system import FAST_SWEEPS

ACCOUNT = "bn"
SYMBOL = "BTCUSDT"


def _binance_account(system: TrackingSystem) -> Spot:
    """An account at the exchange's Binance dialect (open mode: the key is its own secret)
    and in ordersync; Binance's connector on the same key, to read the balances."""
    key = f"bnSys{uuid.uuid4().hex[:12]}"
    with Session(system.engine) as session:
        ensure_account(session, name=ACCOUNT, broker=BrokerKind.BINANCE,
                       base_url=system.exchange.base_url, credentials_env="BN",
                       rate_limit_per_min=6000, now=datetime.now(UTC))  # fmt: skip
        session.commit()
    system.env.update({"BN_KEY_ID": key, "BN_SECRET_KEY": key})
    return Spot(api_key=key, api_secret=key, base_url=system.exchange.base_url)


def _balance(spot: Spot, asset: str) -> Decimal:
    for balance in spot.account()["balances"]:
        if balance["asset"] == asset:
            return Decimal(balance["free"]) + Decimal(balance["locked"])
    return Decimal(0)


def _order(system: TrackingSystem, client_order_id: str) -> Order | None:
    with Session(system.engine) as session:
        return session.scalar(select(Order).where(Order.client_order_id == client_order_id))


def _filled(system: TrackingSystem, client_order_id: str) -> Order | None:
    """The order once FILLED with every fill recorded."""
    order = _order(system, client_order_id)
    if order is None or order.status is not OrderStatus.FILLED:
        return None
    return order if order.filled_quantity == order.quantity else None


def _fills(system: TrackingSystem, order_id: str) -> list[Fill]:
    with Session(system.engine) as session:
        return list(session.scalars(select(Fill).where(Fill.order_id == order_id)))


def _trades(spot: Spot, order_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = spot.my_trades(SYMBOL, orderId=order_id)
    return found


def test_a_binance_round_trip_is_tracked_with_its_commissions_in_the_assets_they_took(
    system: TrackingSystem, hook_factory: type[Hook]
) -> None:
    """Buy 0.01 BTC and sell what is held: Binance keeps the buy's commission out of the
    BTC bought and the sale's out of the USDT received. Every fill is recorded once under
    its symbol's trade id, the position equals the BTC balance, the trade closes, and its
    PnL is what the USDT balance moved by."""
    hook = hook_factory()
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price(f"binance:{SYMBOL}", "60000")
    spot = _binance_account(system)
    system.env.update({**FAST_SWEEPS, "ORDERSYNC_ALERT_WEBHOOK_URL": hook.url})
    system.start_worker("w1")
    system.start_beat()
    usdt_before = _balance(spot, "USDT")

    system.place(account=ACCOUNT, client_order_id="bn-in", symbol=SYMBOL, side="buy",
                 quantity="0.01", intent="ENTRY",
                 decision_id="bn-trade").get(timeout=60)  # fmt: skip
    entry = wait_for(lambda: _filled(system, "bn-in"), 60, "the buy filled and recorded")

    assert entry.time_in_force.value == "gtc"  # Binance has no day orders
    symbol, order_id = str(entry.broker_order_id).split(":")
    assert symbol == SYMBOL
    venue = _trades(spot, int(order_id))
    recorded = _fills(system, entry.id)
    assert sorted(f.broker_fill_id for f in recorded) == sorted(
        f"{SYMBOL}:{t['id']}" for t in venue)  # fmt: skip
    assert {t["commissionAsset"] for t in venue} == {"BTC"}
    commission = sum((Decimal(t["commission"]) for t in venue), Decimal(0))
    held = wait_for(lambda: _position(system) == _balance(spot, "BTC") and _position(system),
                    30, "our position equal to the BTC balance")  # fmt: skip
    assert held == Decimal("0.01") - commission

    system.place(account=ACCOUNT, client_order_id="bn-out", symbol=SYMBOL, side="sell",
                 quantity=str(held), intent="EXIT",
                 trade_id="bn-trade").get(timeout=60)  # fmt: skip
    wait_for(lambda: _filled(system, "bn-out"), 60, "the sale filled and recorded")
    wait_for(lambda: _trade_status(system) is TradeStatus.CLOSED, 60, "the trade closed")
    _deep_run_after(system, datetime.now(UTC))

    assert _balance(spot, "BTC") == _position(system) == 0
    with Session(system.engine) as session:
        outcome = session.scalar(select(TradeOutcome))
        postings = list(session.scalars(select(FeePosting)))
    assert outcome is not None
    # One posting per buy fill, of its commission; the sale's were money (USDT).
    assert sorted((p.symbol, p.quantity) for p in postings) == sorted(
        (SYMBOL, Decimal(t["commission"])) for t in venue)  # fmt: skip
    assert outcome.realized_pnl == _balance(spot, "USDT") - usdt_before
    assert [b for b in hook.delivered if b["kind"] == "position_mismatch"] == []


def _position(system: TrackingSystem) -> Decimal:
    with Session(system.engine) as session:
        held = session.scalar(select(Position.quantity).where(Position.symbol == SYMBOL))
    return Decimal(0) if held is None else held


def _trade_status(system: TrackingSystem) -> TradeStatus | None:
    with Session(system.engine) as session:
        return session.scalar(select(Trade.status).where(Trade.id == "bn-trade"))


def test_with_bnb_burn_a_binance_round_trip_pays_its_commissions_in_bnb_kept_apart(
    system: TrackingSystem, hook_factory: type[Hook]
) -> None:
    """Binance's BNB burn on: each commission comes out of BNB, not the assets traded. The
    position is the whole BTC bought, the PnL exactly what USDT moved by, and each fill's
    BNB commission is posted once per account, as much as the BNB balance lost."""
    hook = hook_factory()
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price(f"binance:{SYMBOL}", "60000")
    exchange.set_price("binance:BNBUSDT", "600")
    exchange.set_faults(binance_bnb_burn=True)
    spot = _binance_account(system)
    system.env.update({**FAST_SWEEPS, "ORDERSYNC_ALERT_WEBHOOK_URL": hook.url})
    system.start_worker("w1")
    system.start_beat()
    usdt_before, bnb_before = _balance(spot, "USDT"), _balance(spot, "BNB")

    system.place(account=ACCOUNT, client_order_id="bnb-in", symbol=SYMBOL, side="buy",
                 quantity="0.01", intent="ENTRY",
                 decision_id="bn-trade").get(timeout=60)  # fmt: skip
    wait_for(lambda: _filled(system, "bnb-in"), 60, "the buy filled and recorded")
    assert wait_for(lambda: _position(system), 30, "the position") == Decimal("0.01")
    system.place(account=ACCOUNT, client_order_id="bnb-out", symbol=SYMBOL, side="sell",
                 quantity="0.01", intent="EXIT", trade_id="bn-trade").get(timeout=60)  # fmt: skip
    wait_for(lambda: _filled(system, "bnb-out"), 60, "the sale filled and recorded")
    wait_for(lambda: _trade_status(system) is TradeStatus.CLOSED, 60, "the trade closed")
    _deep_run_after(system, datetime.now(UTC))

    venue = spot.my_trades(SYMBOL)
    assert {t["commissionAsset"] for t in venue} == {"BNB"}
    with Session(system.engine) as session:
        outcome = session.scalar(select(TradeOutcome))
        postings = list(session.scalars(select(FeePosting)))
    commissions = [(f"{SYMBOL}:{t['id']}:fee:BNB", "BNB", Decimal(t["commission"])) for t in venue]
    assert sorted((p.broker_fee_id, p.currency, p.amount) for p in postings) == sorted(commissions)
    assert bnb_before - _balance(spot, "BNB") == sum(p.amount for p in postings)
    assert _balance(spot, "BTC") == _position(system) == 0
    assert outcome is not None
    assert outcome.realized_pnl == _balance(spot, "USDT") - usdt_before
    assert outcome.fees == 0  # none of them was money in USDT
    assert [b for b in hook.delivered if b["kind"] == "position_mismatch"] == []
