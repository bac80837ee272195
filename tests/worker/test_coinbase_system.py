"""A Coinbase Advanced Trade account tracked end to end: real workers, the paper exchange's
Coinbase dialect over HTTP (a JWT per request, checked against the key's registered public
key), its accounts read as the witness of the balances."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from brokers.coinbase.auth import JwtAuth
from core.enums import BrokerKind
from models.accounts import ensure_account
from models.ledger import Position, Trade, TradeOutcome
from models.trades import TradeStatus
from tests.brokers.coinbase.paper import new_key
from tests.worker.conftest import Hook, TrackingSystem, wait_for
from tests.worker.test_binance_system import _filled, _fills
from tests.worker.test_crypto_system import _deep_run_after
from tests.worker.test_reconcile_system import FAST_SWEEPS

ACCOUNT = "cb"
PRODUCT = "BTC-USD"


def _coinbase_account(system: TrackingSystem) -> httpx.Client:
    """A key registered at the exchange by its public half, an account in ordersync holding
    the private half; and a client signing with it, to read the balances."""
    name = f"organizations/sys/apiKeys/{uuid.uuid4().hex[:12]}"
    private, public = new_key()
    registered = system.exchange.control.post(
        "/coinbase/accounts", json={"name": name, "public_key": public}
    )
    registered.raise_for_status()
    with Session(system.engine) as session:
        ensure_account(session, name=ACCOUNT, broker=BrokerKind.COINBASE,
                       base_url=system.exchange.base_url, credentials_env="CB",
                       rate_limit_per_min=1800, now=datetime.now(UTC))  # fmt: skip
        session.commit()
    system.env.update({"CB_KEY_ID": name, "CB_SECRET_KEY": private})
    auth = JwtAuth(name, private, lambda: int(datetime.now(UTC).timestamp()))
    return httpx.Client(base_url=system.exchange.base_url, auth=auth, timeout=10)


def _balance(witness: httpx.Client, currency: str) -> Decimal:
    answer = witness.get("/api/v3/brokerage/accounts", params={"limit": "250"})
    answer.raise_for_status()
    for wallet in answer.json()["accounts"]:
        if wallet["currency"] == currency:
            return Decimal(wallet["available_balance"]["value"]) + Decimal(wallet["hold"]["value"])
    return Decimal(0)


def _position(system: TrackingSystem) -> Decimal:
    with Session(system.engine) as session:
        held = session.scalar(select(Position.quantity).where(Position.symbol == PRODUCT))
    return Decimal(0) if held is None else held


def _trade_status(system: TrackingSystem) -> TradeStatus | None:
    with Session(system.engine) as session:
        return session.scalar(select(Trade.status).where(Trade.id == "cb-trade"))


def _venue_fills(system: TrackingSystem, order_id: str) -> list[dict[str, object]]:
    fills: list[dict[str, object]] = system.exchange.truth_order(order_id)["coinbase"]["fills"]
    return fills


def test_a_coinbase_round_trip_is_tracked_with_its_commissions_in_usd(
    system: TrackingSystem, hook_factory: type[Hook]
) -> None:
    """Buy 0.01 BTC and sell it: Coinbase takes each fill's commission in USD. Every fill is
    recorded once under its entry id with its commission, the position equals the BTC
    balance, the trade closes, and its PnL is what the USD balance moved by."""
    hook = hook_factory()
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price(f"coinbase:{PRODUCT}", "60000")
    exchange.set_faults(partial_fill_probability=1.0)  # several fills per order
    witness = _coinbase_account(system)
    system.env.update({**FAST_SWEEPS, "ORDERSYNC_ALERT_WEBHOOK_URL": hook.url})
    system.start_worker("w1")
    system.start_beat()
    usd_before = _balance(witness, "USD")

    system.place(account=ACCOUNT, client_order_id="cb-in", symbol=PRODUCT, side="buy",
                 quantity="0.01", intent="ENTRY",
                 decision_id="cb-trade").get(timeout=60)  # fmt: skip
    entry = wait_for(lambda: _filled(system, "cb-in"), 60, "the buy filled and recorded")

    venue = _venue_fills(system, str(entry.broker_order_id))
    recorded = _fills(system, entry.id)
    assert len(venue) > 1
    assert sorted(f.broker_fill_id for f in recorded) == sorted(str(f["entry_id"]) for f in venue)
    by_id = {str(f["entry_id"]): Decimal(str(f["commission"])) for f in venue}
    assert all(f.fee == by_id[f.broker_fill_id] > 0 for f in recorded)
    held = wait_for(lambda: _position(system) == _balance(witness, "BTC") and _position(system),
                    30, "our position equal to the BTC balance")  # fmt: skip
    assert held == Decimal("0.01")  # the commission was money, not coin

    system.place(account=ACCOUNT, client_order_id="cb-out", symbol=PRODUCT, side="sell",
                 quantity=str(held), intent="EXIT",
                 trade_id="cb-trade").get(timeout=60)  # fmt: skip
    wait_for(lambda: _filled(system, "cb-out"), 60, "the sale filled and recorded")
    wait_for(lambda: _trade_status(system) is TradeStatus.CLOSED, 60, "the trade closed")
    _deep_run_after(system, datetime.now(UTC))

    assert _balance(witness, "BTC") == _position(system) == 0
    with Session(system.engine) as session:
        outcome = session.scalar(select(TradeOutcome))
    assert outcome is not None
    assert outcome.realized_pnl == _balance(witness, "USD") - usd_before
    assert [b for b in hook.delivered if b["kind"] == "position_mismatch"] == []
    witness.close()


def test_placements_whose_answers_are_lost_are_each_placed_exactly_once(
    system: TrackingSystem,
) -> None:
    """Coinbase has no lookup by client order id: after a lost answer ordersync lists the
    last minutes' orders and matches; every order ends placed once and tracked to its fill."""
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price(f"coinbase:{PRODUCT}", "60000")
    witness = _coinbase_account(system)
    exchange.set_faults(p_lose_response=0.5, next_lose_response=2, p_5xx=0.05, timeout_s=2,
                        routes=["POST /api/v3/brokerage/orders"])  # fmt: skip
    system.env.update(FAST_SWEEPS)
    system.start_worker("w1", concurrency=3)
    system.start_beat()
    orders = [f"cb-lost-{n}" for n in range(6)]
    for cid in orders:
        system.place(account=ACCOUNT, client_order_id=cid, symbol=PRODUCT, side="buy",
                     quantity="0.001")  # fmt: skip
    for cid in orders:
        wait_for(lambda cid=cid: _filled(system, cid), 120, f"{cid} filled and recorded")

    truth = [o["client_order_id"] for o in exchange.truth()]
    assert sorted(truth) == sorted(orders)  # each exactly once
    assert exchange.requests()["faulted"] >= 2
    assert _balance(witness, "BTC") == _position(system) == Decimal("0.006")
    witness.close()
