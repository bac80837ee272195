"""An OANDA v20 account tracked end to end: real workers, the paper exchange's OANDA dialect
over HTTP (a bearer token, open mode), its trades and positions read as the witness."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import BrokerKind
from models.accounts import ensure_account
from models.ledger import TradeOutcome
from models.trades import TradeStatus
from tests.worker.conftest import Hook, TrackingSystem, position_of, trade_status, wait_for
from tests.worker.test_binance_system import _filled, _fills
from tests.worker.test_crypto_system import _deep_run_after
from tests.worker.test_reconcile_system import FAST_SWEEPS

ACCOUNT = "oa"
OANDA_ACCOUNT = "101-001-7654321-001"
TOKEN = "oanda-system-token"  # paper exchange credentials (open mode), not a secret
INSTRUMENT = "EUR_USD"


def _oanda_account(system: TrackingSystem) -> httpx.Client:
    """The account in ordersync, and a client on its /v3 account to witness with."""
    with Session(system.engine) as session:
        ensure_account(session, name=ACCOUNT, broker=BrokerKind.OANDA,
                       base_url=system.exchange.base_url, credentials_env="OA",
                       rate_limit_per_min=6000, now=datetime.now(UTC))  # fmt: skip
        session.commit()
    system.env.update({"OA_KEY_ID": OANDA_ACCOUNT, "OA_SECRET_KEY": TOKEN})
    return httpx.Client(base_url=f"{system.exchange.base_url}/v3/accounts/{OANDA_ACCOUNT}",
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)  # fmt: skip


def _venue_units(witness: httpx.Client) -> Decimal:
    answer = witness.get("/openPositions")
    answer.raise_for_status()
    for position in answer.json()["positions"]:
        if position["instrument"] == INSTRUMENT:
            return Decimal(position["long"]["units"]) + Decimal(position["short"]["units"])
    return Decimal(0)


def _ours(system: TrackingSystem) -> Decimal:
    return position_of(system, INSTRUMENT)


def _venue_fills(system: TrackingSystem, order_id: str) -> list[dict[str, Any]]:
    fills: list[dict[str, Any]] = system.exchange.truth_order(order_id)["oanda"]["fills"]
    return fills


def _oanda_order_id(system: TrackingSystem, broker_order_id: str) -> str:
    """The engine order behind an OANDA order id, for its truth."""
    for order in system.exchange.truth():
        if order.get("oanda", {}).get("order_id") == broker_order_id:
            return str(order["id"])
    raise AssertionError(f"OANDA order {broker_order_id} not in the exchange's truth")


def test_an_oanda_round_trip_is_tracked_and_its_pnl_is_oandas_realized_pl(
    system: TrackingSystem, hook_factory: type[Hook]
) -> None:
    """Buy 1000 EUR_USD and sell them: each fill is recorded once under its ORDER_FILL
    transaction id, the position equals OANDA's, the trade closes, and our realized PnL is
    the closing fill's tradesClosed realizedPL (USD home, USD quote, no commission or
    financing on the paper exchange: nothing to tell them apart)."""
    hook = hook_factory()
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price(f"oanda:{INSTRUMENT}", "1.08000")
    witness = _oanda_account(system)
    system.env.update({**FAST_SWEEPS, "ORDERSYNC_ALERT_WEBHOOK_URL": hook.url})
    system.start_worker("w1")
    system.start_beat()

    system.place(account=ACCOUNT, client_order_id="oa-in", symbol=INSTRUMENT, side="buy",
                 quantity="1000", intent="ENTRY",
                 decision_id="oa-trade").get(timeout=60)  # fmt: skip
    entry = wait_for(lambda: _filled(system, "oa-in"), 60, "the buy filled and recorded")
    venue = _venue_fills(system, _oanda_order_id(system, str(entry.broker_order_id)))
    assert [f.broker_fill_id for f in _fills(system, entry.id)] == [f["id"] for f in venue]
    held = wait_for(lambda: _ours(system) == _venue_units(witness) and _ours(system), 30,
                    "our position equal to OANDA's")  # fmt: skip
    assert held == Decimal(1000)

    exchange.set_price(f"oanda:{INSTRUMENT}", "1.08500")
    system.place(account=ACCOUNT, client_order_id="oa-out", symbol=INSTRUMENT, side="sell",
                 quantity="1000", intent="EXIT", trade_id="oa-trade").get(timeout=60)  # fmt: skip
    exit_ = wait_for(lambda: _filled(system, "oa-out"), 60, "the sale filled and recorded")
    wait_for(lambda: trade_status(system, "oa-trade") is TradeStatus.CLOSED, 60, "the trade closed")
    _deep_run_after(system, datetime.now(UTC))

    closing = _venue_fills(system, _oanda_order_id(system, str(exit_.broker_order_id)))
    assert [f.broker_fill_id for f in _fills(system, exit_.id)] == [f["id"] for f in closing]
    assert _venue_units(witness) == _ours(system) == 0
    realized = sum(Decimal(t["realizedPL"]) for f in closing for t in f["trades_closed"])
    with Session(system.engine) as session:
        outcome = session.scalar(select(TradeOutcome))
    assert outcome is not None
    assert outcome.realized_pnl == realized
    assert realized > 0
    assert [b for b in hook.delivered if b["kind"] == "position_mismatch"] == []
    witness.close()


def test_placements_whose_answers_are_lost_are_each_placed_exactly_once(
    system: TrackingSystem,
) -> None:
    """After a lost answer ordersync looks the order up by ``@clientID``: every order ends
    placed once at OANDA and tracked to its fill."""
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price(f"oanda:{INSTRUMENT}", "1.08000")
    witness = _oanda_account(system)
    exchange.set_faults(p_lose_response=0.5, next_lose_response=2, p_5xx=0.05, timeout_s=2,
                        routes=[f"POST /v3/accounts/{OANDA_ACCOUNT}/orders"])  # fmt: skip
    system.env.update(FAST_SWEEPS)
    system.start_worker("w1", concurrency=3)
    system.start_beat()
    orders = [f"oa-lost-{n}" for n in range(6)]
    for cid in orders:
        system.place(account=ACCOUNT, client_order_id=cid, symbol=INSTRUMENT, side="buy",
                     quantity="100")  # fmt: skip
    for cid in orders:
        wait_for(lambda cid=cid: _filled(system, cid), 120, f"{cid} filled and recorded")

    placed = witness.get("/orders", params={"state": "ALL"}).json()["orders"]
    assert sorted(o["clientExtensions"]["id"] for o in placed) == sorted(orders)
    assert exchange.requests()["faulted"] >= 2
    assert _venue_units(witness) == _ours(system) == Decimal(600)
    witness.close()
