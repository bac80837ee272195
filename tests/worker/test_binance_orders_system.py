"""Binance orders of every kind through real workers and the paper exchange's Binance dialect,
compared with the venue's truth: under 429s, 5xx and lost answers, after a worker is killed
mid-monitoring, and when placement answers are lost (found again within their symbol)."""

from __future__ import annotations

import os
import random
import signal
import uuid
from decimal import Decimal

from core.enums import OrderStatus
from tests.worker.conftest import TrackingSystem, wait_for
from tests.worker.test_binance_system import ACCOUNT, _binance_account
from tests.worker.test_reconcile_system import FAST_SWEEPS
from tests.worker.truth import binance_settled

PRICES = {"BTCUSDT": Decimal(60000), "ETHUSDT": Decimal(3000)}
STEPS = {"BTCUSDT": Decimal("0.00001"), "ETHUSDT": Decimal("0.0001")}


def _cid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _priced(system: TrackingSystem) -> None:
    system.exchange.freeze_market()
    for symbol, price in PRICES.items():
        system.exchange.set_price(f"binance:{symbol}", str(price))


def _quantity(rng: random.Random, symbol: str) -> str:
    """Worth 20 to 200 USDT, on the symbol's step (above its 5 USDT minimum notional)."""
    worth = Decimal(rng.randint(20, 200))
    return str((worth / PRICES[symbol]).quantize(STEPS[symbol]))


def _in_venue(system: TrackingSystem, client_order_id: str) -> list[str]:
    """The engine ids of the venue's orders with this Binance client order id."""
    return [t["id"] for t in system.exchange.truth()
            if t.get("binance", {}).get("clientOrderId") == client_order_id]  # fmt: skip


def test_mixed_binance_orders_under_faults_end_equal_to_the_truth(system: TrackingSystem) -> None:
    """Market and limit buys (some resting, then canceled), then market sells of part of
    what was bought, on two symbols, with 429s, 503s and lost answers on every route."""
    _priced(system)
    _binance_account(system)
    system.env.update(FAST_SWEEPS)
    system.exchange.set_faults(p_429=0.05, p_5xx=0.05, p_lose_response=0.05, timeout_s=1.5)
    system.start_worker("w1", concurrency=3)
    system.start_beat()
    rng = random.Random(20261204)
    buys, resting = [], []
    for n in range(24):
        symbol = "BTCUSDT" if n % 2 else "ETHUSDT"
        order = _cid("bnmix")
        terms: dict[str, str] = {"symbol": symbol, "side": "buy",
                                 "quantity": _quantity(rng, symbol)}  # fmt: skip
        if n % 3 == 1:  # a marketable limit: fills at once
            terms |= {"order_type": "limit", "limit_price": str(PRICES[symbol] * 2)}
        elif n % 3 == 2:  # far below the market: rests until canceled
            terms |= {"order_type": "limit", "limit_price": str(PRICES[symbol] / 2)}
            resting.append(order)
        system.place(account=ACCOUNT, client_order_id=order, **terms)
        buys.append(order)
    binance_settled(system, buys, 120)
    for order in resting:
        system.send("cancel_order", account=ACCOUNT, client_order_id=order)
    sells = []
    for symbol in PRICES:
        for _ in range(3):
            order = _cid("bnsell")
            worth_25 = (Decimal(25) / PRICES[symbol]).quantize(STEPS[symbol])  # well held
            system.place(account=ACCOUNT, client_order_id=order, symbol=symbol, side="sell",
                         quantity=str(worth_25))  # fmt: skip
            sells.append(order)

    def statuses(of: list[str]) -> set[OrderStatus]:
        return {o.status for o in system.orders() if o.client_order_id in of}

    wait_for(lambda: statuses(resting) == {OrderStatus.CANCELED}, 60, "the resting canceled")
    wait_for(lambda: statuses(sells) == {OrderStatus.FILLED}, 60, "the sells filled")
    binance_settled(system, buys + sells, 120)
    for order in buys + sells:
        assert len(_in_venue(system, order)) == 1, order  # each placed exactly once


def test_a_worker_killed_while_monitoring_binance_orders_loses_nothing(
    system: TrackingSystem,
) -> None:
    _priced(system)
    _binance_account(system)
    victim = system.start_worker("victim", concurrency=2)
    system.start_beat()
    orders = [_cid("bnkill") for _ in range(8)]
    for order in orders:
        system.place(account=ACCOUNT, client_order_id=order, symbol="BTCUSDT", side="buy",
                     quantity="0.001", order_type="limit", limit_price="30000")  # fmt: skip
    wait_for(lambda: len([o for o in system.orders() if o.status is OrderStatus.NEW]) == 8,
             60, "orders working")  # fmt: skip

    def lookups() -> int:
        return int(system.exchange.requests()["by_route"].get("GET /api/v3/order", 0))

    system.exchange.set_faults(latency_ms=[800, 800], routes=["GET /api/v3/order"])
    before = lookups()
    wait_for(lambda: lookups() > before, 30, "monitoring in flight")  # answered 0.8 s late
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    system.exchange.clear_faults()
    for order in orders:  # everything fills while no worker runs
        (engine_id,) = _in_venue(system, order)
        system.exchange.force_fill(engine_id)
    system.start_worker("rescuer", concurrency=2)
    binance_settled(system, orders, 90)
    assert {o.status for o in system.orders()} == {OrderStatus.FILLED}


def test_lost_binance_placement_answers_give_each_order_once(system: TrackingSystem) -> None:
    """The venue takes the order and its answer is lost: ordersync finds it again by its
    client order id within its symbol, and never places it twice."""
    _priced(system)
    _binance_account(system)
    system.exchange.set_faults(next_lose_response=4, timeout_s=1.5, routes=["POST /api/v3/order"])
    system.start_worker("w1", concurrency=2)
    orders = [_cid("bnlost") for _ in range(8)]
    for n, order in enumerate(orders):
        system.place(account=ACCOUNT, client_order_id=order,
                     symbol="BTCUSDT" if n % 2 else "ETHUSDT", side="buy",
                     quantity="0.001" if n % 2 else "0.01")  # fmt: skip
    binance_settled(system, orders, 90)
    assert system.exchange.requests()["faulted"] == 4  # four answers lost, each made so
    for order in orders:
        assert len(_in_venue(system, order)) == 1, order
    assert "placement answer unclear" in system.log("w1")
