"""A Tradier account tracked end to end: real workers, the paper exchange's Tradier dialect
over HTTP (a bearer token per account, open mode), its positions and balances read as the
witness. Tradier lists no executions: the worker derives each fill from the changes in an
order's cumulative exec_quantity and avg_fill_price."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from celery.exceptions import TimeoutError as CeleryTimeout
from sqlalchemy import select
from sqlalchemy.orm import Session

from brokers.tradier.tags import client_order_id_of
from core.enums import BrokerKind
from models.accounts import ensure_account
from models.ledger import Trade, TradeOutcome
from models.orders import Fill, Order
from models.trades import TradeStatus
from tests.worker.conftest import Hook, TrackingSystem, wait_for
from tests.worker.test_binance_system import _filled, _fills
from tests.worker.test_crypto_system import _deep_run_after
from tests.worker.test_reconcile_system import FAST_SWEEPS
from tests.worker.truth import held, trade_status

ACCOUNT = "tr"
NUMBER = "VA55500011"
TOKEN = "tradier-system-token"
SYMBOL = "AAPL"


def _tradier_account(system: TrackingSystem) -> httpx.Client:
    """An account in ordersync holding the account number and token; and a client with the
    same token, to read the positions and balances."""
    with Session(system.engine) as session:
        ensure_account(session, name=ACCOUNT, broker=BrokerKind.TRADIER,
                       base_url=system.exchange.base_url, credentials_env="TR",
                       rate_limit_per_min=120, now=datetime.now(UTC))  # fmt: skip
        session.commit()
    system.env.update({"TR_KEY_ID": NUMBER, "TR_SECRET_KEY": TOKEN})
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    return httpx.Client(base_url=f"{system.exchange.base_url}/v1/accounts/{NUMBER}",
                        headers=headers, timeout=10)  # fmt: skip


def _read(witness: httpx.Client, path: str) -> Any:
    answer = witness.get(path)
    answer.raise_for_status()
    return answer.json(parse_float=Decimal)


def _venue_position(witness: httpx.Client, symbol: str = SYMBOL) -> Decimal:
    positions = _read(witness, "/positions")["positions"]
    if positions == "null":
        return Decimal(0)
    found = positions["position"]
    return Decimal(0) if found["symbol"] != symbol else Decimal(str(found["quantity"]))


def _cash(witness: httpx.Client) -> Decimal:
    return Decimal(str(_read(witness, "/balances")["balances"]["total_cash"]))


def _check_derived(system: TrackingSystem, order: Order) -> list[Fill]:
    """The order's fills are derived ones, each once, named by the order id and the
    cumulative quantity it brought the order to, which the exchange's fills reached."""
    recorded = sorted(_fills(system, order.id), key=lambda f: f.filled_at)
    truth = system.exchange.truth_order(system.exchange.truth()[-1]["id"])
    assert truth["tradier"]["id"] == int(str(order.broker_order_id))
    reached, total = set(), Decimal(0)
    for fill in truth["fills"]:
        total += Decimal(fill["qty"])
        reached.add(total)
    cumulative = Decimal(0)
    for fill in recorded:
        cumulative += fill.quantity
        assert cumulative in reached
        assert fill.broker_fill_id == f"derived-{order.broker_order_id}-{cumulative.normalize():f}"
        assert fill.fee == 0
    assert cumulative == order.quantity
    assert len({f.broker_fill_id for f in recorded}) == len(recorded)
    return recorded


def test_a_tradier_round_trip_is_tracked_with_fills_derived_once(
    system: TrackingSystem, hook_factory: type[Hook]
) -> None:
    """Buy 2 AAPL and sell them, each filled in two parts: each derived fill is recorded once
    under its deterministic id, the position equals Tradier's, the trade closes, and its PnL
    is what the cash moved by (no commission). Two shares, so that a derived step's price
    (its notional over 1 or 2 shares) is exact: a step merging fills at different prices
    over, say, 3 shares has a price with no finite decimal, which the worker rounds."""
    hook = hook_factory()
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price(SYMBOL, "200")
    exchange.set_faults(partial_fill_probability=1.0)  # several fills per order
    witness = _tradier_account(system)
    system.env.update({**FAST_SWEEPS, "ORDERSYNC_ALERT_WEBHOOK_URL": hook.url})
    system.start_worker("w1")
    system.start_beat()
    cash_before = _cash(witness)

    system.place(account=ACCOUNT, client_order_id="tr-in", symbol=SYMBOL, side="buy",
                 quantity="2", intent="ENTRY", decision_id="tr-trade").get(timeout=60)  # fmt: skip
    entry = wait_for(lambda: _filled(system, "tr-in"), 60, "the buy filled and recorded")
    _check_derived(system, entry)
    ours = wait_for(lambda: held(system, SYMBOL) == _venue_position(witness)
                    and held(system, SYMBOL), 30, "our position equal to Tradier's")  # fmt: skip
    assert ours == Decimal(2)

    system.place(account=ACCOUNT, client_order_id="tr-out", symbol=SYMBOL, side="sell",
                 quantity=str(ours), intent="EXIT",
                 trade_id="tr-trade").get(timeout=60)  # fmt: skip
    exit_order = wait_for(lambda: _filled(system, "tr-out"), 60, "the sale filled and recorded")
    _check_derived(system, exit_order)
    wait_for(lambda: trade_status(system, "tr-trade") is TradeStatus.CLOSED, 60, "the trade closed")
    _deep_run_after(system, datetime.now(UTC))

    assert _venue_position(witness) == held(system, SYMBOL) == 0
    with Session(system.engine) as session:
        outcome = session.scalar(select(TradeOutcome))
        trade = session.scalar(select(Trade).where(Trade.id == "tr-trade"))
    assert outcome is not None
    assert trade is not None
    # The decision's chain: the proposal's id on the entry order, the trade and its outcome.
    assert (entry.decision_id, entry.trade_id, exit_order.trade_id) == (
        "tr-trade", "tr-trade", "tr-trade")  # fmt: skip
    assert (trade.decision_id, trade.entry_order_id) == ("tr-trade", entry.id)
    assert (outcome.trade_id, outcome.decision_id) == ("tr-trade", "tr-trade")
    assert outcome.quantity == Decimal(2)
    assert outcome.realized_pnl == _cash(witness) - cash_before
    assert [b for b in hook.delivered if b["kind"] == "position_mismatch"] == []
    witness.close()


def test_placements_whose_answers_are_lost_are_each_placed_exactly_once(
    system: TrackingSystem,
) -> None:
    """Tradier has no lookup by client order id: after a lost answer ordersync lists the
    session's orders and matches the tag; every order ends placed once and tracked."""
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price(SYMBOL, "200")
    witness = _tradier_account(system)
    exchange.set_faults(p_lose_response=0.5, next_lose_response=2, p_5xx=0.05, timeout_s=2,
                        routes=[f"POST /v1/accounts/{NUMBER}/orders"])  # fmt: skip
    system.env.update(FAST_SWEEPS)
    system.start_worker("w1", concurrency=3)
    system.start_beat()
    orders = [f"tr-lost-{n}" for n in range(6)]
    for cid in orders:
        system.place(account=ACCOUNT, client_order_id=cid, symbol=SYMBOL, side="buy",
                     quantity="1")  # fmt: skip
    for cid in orders:
        wait_for(lambda cid=cid: _filled(system, cid), 120, f"{cid} filled and recorded")

    placed = [client_order_id_of(o["tradier"]["tag"]) for o in exchange.truth()]
    assert sorted(str(cid) for cid in placed) == sorted(orders)  # each exactly once
    assert exchange.requests()["faulted"] >= 2
    assert _venue_position(witness) == held(system, SYMBOL) == Decimal(6)
    witness.close()


CALL = "AAPL300118C00200000"  # an AAPL call expiring 2030-01-18, strike 200


def test_an_option_round_trip_is_placed_by_its_intent_and_its_money_is_100_shares_a_contract(
    system: TrackingSystem, hook_factory: type[Hook]
) -> None:
    """Buy to open 2 AAPL calls and sell them to close, each filled in parts: the entry's
    intent makes it buy_to_open on the underlying, the exit's sell_to_close; each derived fill
    is recorded once at its per-share price; the position equals Tradier's in contracts;
    the outcome's notionals and PnL count 100 shares a contract, the PnL equal to what the
    cash moved by. An option order without an intent is refused before anything is written."""
    hook = hook_factory()
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price(CALL, "3.10")
    exchange.set_faults(partial_fill_probability=1.0)
    witness = _tradier_account(system)
    system.env.update({**FAST_SWEEPS, "ORDERSYNC_ALERT_WEBHOOK_URL": hook.url})
    system.start_worker("w1")
    system.start_beat()
    cash_before = _cash(witness)

    refused = system.place(account=ACCOUNT, client_order_id="opt-no-intent", symbol=CALL,
                           side="buy", quantity="1")  # fmt: skip
    with pytest.raises(Exception, match="needs intent ENTRY or EXIT") as raised:
        refused.get(timeout=60)
    assert not isinstance(raised.value, CeleryTimeout)
    assert system.orders() == []

    system.place(account=ACCOUNT, client_order_id="opt-in", symbol=CALL, side="buy",
                 quantity="2", order_type="limit", limit_price="3.20", intent="ENTRY",
                 decision_id="opt-trade").get(timeout=60)  # fmt: skip
    entry = wait_for(lambda: _filled(system, "opt-in"), 60, "the buy to open filled")
    _check_derived(system, entry)
    wait_for(lambda: held(system, CALL) == _venue_position(witness, CALL) == 2, 30,
             "our position equal to Tradier's, in contracts")  # fmt: skip

    exchange.set_price(CALL, "3.65")
    system.place(account=ACCOUNT, client_order_id="opt-out", symbol=CALL, side="sell",
                 quantity="2", intent="EXIT", trade_id="opt-trade").get(timeout=60)  # fmt: skip
    exit_order = wait_for(lambda: _filled(system, "opt-out"), 60, "the sale to close filled")
    _check_derived(system, exit_order)
    wait_for(lambda: trade_status(system, "opt-trade") is TradeStatus.CLOSED, 60,
             "the trade closed")  # fmt: skip
    _deep_run_after(system, datetime.now(UTC))

    sent = {o["tradier"]["side"]: o["tradier"] for o in exchange.truth()}
    assert set(sent) == {"buy_to_open", "sell_to_close"}
    for order in sent.values():
        assert (order["class"], order["symbol"], order["option_symbol"]) == ("option", "AAPL",
                                                                            CALL)  # fmt: skip
    assert _venue_position(witness, CALL) == held(system, CALL) == 0
    with Session(system.engine) as session:
        outcome = session.scalar(select(TradeOutcome).where(TradeOutcome.trade_id == "opt-trade"))
    assert outcome is not None
    assert entry.average_fill_price is not None
    assert exit_order.average_fill_price is not None
    assert outcome.entry_average_price == entry.average_fill_price  # per share
    assert outcome.entry_notional == entry.average_fill_price * 200
    assert outcome.exit_notional == exit_order.average_fill_price * 200
    assert outcome.realized_pnl == _cash(witness) - cash_before
    assert outcome.realized_pnl > 80  # about 0.55 a share on 200 shares
    assert [b for b in hook.delivered if b["kind"] == "position_mismatch"] == []
    witness.close()


def test_an_equity_short_is_sold_short_and_bought_to_cover_by_its_intent(
    system: TrackingSystem,
) -> None:
    """An entry sell is Tradier's sell_short and its exit buy buy_to_cover (a plain sell of
    shares not held, or buy while short, Tradier refuses); the short's PnL is the cash."""
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price(SYMBOL, "200")
    witness = _tradier_account(system)
    system.env.update(FAST_SWEEPS)
    system.start_worker("w1")
    cash_before = _cash(witness)

    system.place(account=ACCOUNT, client_order_id="short-in", symbol=SYMBOL, side="sell",
                 quantity="2", intent="ENTRY", decision_id="short").get(timeout=60)  # fmt: skip
    wait_for(lambda: _filled(system, "short-in"), 60, "the short sale filled")
    wait_for(lambda: held(system, SYMBOL) == _venue_position(witness) == -2, 30,
             "our short position equal to Tradier's")  # fmt: skip
    exchange.set_price(SYMBOL, "190")
    system.place(account=ACCOUNT, client_order_id="short-out", symbol=SYMBOL, side="buy",
                 quantity="2", intent="EXIT", trade_id="short").get(timeout=60)  # fmt: skip
    wait_for(lambda: trade_status(system, "short") is TradeStatus.CLOSED, 60, "the short closed")

    assert [o["tradier"]["side"] for o in exchange.truth()] == ["sell_short", "buy_to_cover"]
    assert _venue_position(witness) == held(system, SYMBOL) == 0
    with Session(system.engine) as session:
        outcome = session.scalar(select(TradeOutcome).where(TradeOutcome.trade_id == "short"))
    assert outcome is not None
    assert outcome.realized_pnl == _cash(witness) - cash_before
    assert outcome.realized_pnl > 15  # about 10 a share on 2 shares
    witness.close()
