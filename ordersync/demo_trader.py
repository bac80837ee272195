"""A stand-in trading service for ``ordersync up``: it places, exits and cancels orders by
task name at a steady rate. It imports only Celery and the standard library, as a real
service would, and is run by path: ``python demo_trader.py --account demo --rate 2``.

Market entries are closed by an EXIT a few seconds later; limit orders are either
marketable (they fill) or far from the market (they rest and are canceled after a while).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import json
import os
import random
import secrets
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import FrameType
from typing import Any

from celery import Celery
from celery.signals import before_task_publish
from kombu.entity import Queue

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "SPY")
CENT = Decimal("0.01")
PRICE_REFRESH_S = 2.0
REPORT_EVERY_S = 10.0


@before_task_publish.connect  # type: ignore[untyped-decorator]
def _stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """When each call was sent: ordersync measures placement latency from this header."""
    if headers is not None:
        headers.setdefault("ordersync_sent_at", time.time())


def initial_price(symbol: str) -> Decimal:
    """The paper exchange's deterministic opening price (20.00-500.00), used until it is
    asked for the live one."""
    digest = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")
    return Decimal(2000 + digest % 48001) / 100


class Prices:
    """Last known prices from ``GET <sim>/_sim/prices``, refreshed every few seconds."""

    def __init__(self, sim_url: str | None) -> None:
        self.sim_url = sim_url.rstrip("/") if sim_url else None
        self.known: dict[str, Decimal] = {}
        self.fetched_at = float("-inf")

    def get(self, symbol: str) -> Decimal:
        if self.sim_url and time.monotonic() - self.fetched_at > PRICE_REFRESH_S:
            self.fetched_at = time.monotonic()
            try:
                url = f"{self.sim_url}/_sim/prices"
                with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - http
                    body = json.loads(response.read())
                self.known = {str(k): Decimal(str(v)) for k, v in body.items()}
            except (OSError, ValueError) as exc:
                print(f"prices unavailable ({exc}); using opening prices", flush=True)
        return self.known.get(symbol) or initial_price(symbol)


@dataclass(order=True)
class Due:
    at: float
    seq: int
    action: Callable[[], None] = field(compare=False)
    is_cancel: bool = field(default=False, compare=False)


class Trader:
    def __init__(self, app: Celery, account: str, prices: Prices, rng: random.Random) -> None:
        self.app = app
        self.account = account
        self.prices = prices
        self.rng = rng
        self.run_id = secrets.token_hex(3)
        self.numbers = itertools.count(1)
        self.due: list[Due] = []
        self.sent = {"entries": 0, "exits": 0, "limits": 0, "cancels": 0}

    def send(self, name: str, kwargs: dict[str, Any], kind: str) -> None:
        self.app.send_task(name, kwargs={"account": self.account, **kwargs})
        self.sent[kind] += 1

    def later(self, delay_s: float, action: Callable[[], None], *, cancel: bool = False) -> None:
        heapq.heappush(
            self.due, Due(time.monotonic() + delay_s, next(self.numbers), action, cancel)
        )

    def run_due(self, *, cancels_only: bool = False) -> None:
        now = time.monotonic()
        while self.due and (cancels_only or self.due[0].at <= now):
            item = heapq.heappop(self.due)
            if item.is_cancel or not cancels_only:
                item.action()

    def new_order(self) -> None:
        roll = self.rng.random()
        if roll < 0.5:
            self.entry()
        else:
            self.limit(marketable=roll < 0.75)

    def entry(self) -> None:
        decision = f"demo-{self.run_id}-{next(self.numbers)}"
        symbol, side = self.rng.choice(SYMBOLS), self.rng.choice(("buy", "sell"))
        qty = str(self.rng.randint(1, 20))
        self.send(
            "ordersync.place_order",
            {"symbol": symbol, "side": side, "quantity": qty, "intent": "ENTRY",
             "decision_id": decision, "requested_price": str(self.prices.get(symbol))},
            "entries",
        )  # fmt: skip
        exit_side = "sell" if side == "buy" else "buy"
        self.later(self.rng.uniform(2, 6), lambda: self.exit(decision, symbol, exit_side, qty))

    def exit(self, decision: str, symbol: str, side: str, qty: str) -> None:
        self.send(
            "ordersync.place_order",
            {"symbol": symbol, "side": side, "quantity": qty, "intent": "EXIT",
             "decision_id": f"{decision}-exit", "trade_id": decision},
            "exits",
        )  # fmt: skip

    def limit(self, *, marketable: bool) -> None:
        """Marketable: 1% through the market (fills). Resting: 5% away (rests, canceled later)."""
        symbol, side = self.rng.choice(SYMBOLS), self.rng.choice(("buy", "sell"))
        offset = Decimal("0.01") if marketable else Decimal("-0.05")
        factor = 1 + offset if side == "buy" else 1 - offset
        price = (self.prices.get(symbol) * factor).quantize(CENT)
        client_order_id = f"demo-{self.run_id}-L{next(self.numbers)}"
        self.send(
            "ordersync.place_order",
            {"symbol": symbol, "side": side, "quantity": str(self.rng.randint(1, 20)),
             "order_type": "limit", "time_in_force": "gtc", "limit_price": str(price),
             "client_order_id": client_order_id},
            "limits",
        )  # fmt: skip
        if not marketable:
            self.later(self.rng.uniform(3, 8), lambda: self.cancel(client_order_id), cancel=True)

    def cancel(self, client_order_id: str) -> None:
        self.send("ordersync.cancel_order", {"client_order_id": client_order_id}, "cancels")


def run(trader: Trader, rate_per_s: float, stop: threading.Event) -> None:
    """New orders at ``rate_per_s``, due exits and cancels in between; on stop, send the
    cancels still due so no demo order rests forever."""
    interval = 1 / rate_per_s
    next_order = next_report = time.monotonic()
    while not stop.is_set():
        trader.run_due()
        now = time.monotonic()
        if now >= next_order:
            trader.new_order()
            next_order = max(next_order + interval, now - interval)
        if now >= next_report:
            print(f"sent {json.dumps(trader.sent)}", flush=True)
            next_report = now + REPORT_EVERY_S
        wake = min(next_order, trader.due[0].at if trader.due else next_order)
        stop.wait(max(0.0, wake - time.monotonic()))
    trader.run_due(cancels_only=True)
    print(f"stopped; sent {json.dumps(trader.sent)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("ORDERSYNC_CELERY_BROKER_URL")
        or os.environ.get("ORDERSYNC_REDIS_URL"),
        help="Celery's transport: amqp:// (RabbitMQ) or redis://",
    )
    parser.add_argument("--account", default="demo")
    parser.add_argument("--rate", type=float, default=2.0, help="new orders per second")
    parser.add_argument("--sim-url", help="paper exchange URL, for prices near the market")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    if not args.broker_url:
        parser.error("--broker-url, ORDERSYNC_CELERY_BROKER_URL or ORDERSYNC_REDIS_URL is required")
    if args.rate <= 0:
        parser.error("--rate must be positive")
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    app = Celery("demo-trader", broker=args.broker_url)
    app.conf.broker_connection_retry_on_startup = True
    if args.broker_url.startswith(("amqp", "pyamqp")):
        # RabbitMQ: confirmed sends, into the queue as ordersync declared it.
        app.conf.broker_transport_options = {"confirm_publish": True}
        app.conf.task_queues = [Queue("celery", no_declare=True)]  # type: ignore[no-untyped-call]
    try:
        trader = Trader(app, args.account, Prices(args.sim_url), random.Random(args.seed))
        run(trader, args.rate, stop)
    finally:
        app.close()


if __name__ == "__main__":
    main()
