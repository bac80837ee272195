"""The benchmark's trading service: sends N orders by task name from its own process,
importing only Celery and the standard library, and prints one JSON line saying when.

``--mix market``: market orders. ``--mix mixed``: of every five, three market orders, one
marketable limit (fills) and one limit far from the market, canceled ``--cancel-after-s``
later. Every ``client_order_id`` is ``<prefix><n>``, so the run's orders can be found.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from celery import Celery

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "SPY", "QQQ", "META")
CENT = Decimal("0.01")
Send = Callable[[str, dict[str, Any]], None]


def reference_price(symbol: str, prices: dict[str, str]) -> Decimal:
    """The given live price, else the paper exchange's deterministic opening price."""
    if symbol in prices:
        return Decimal(prices[symbol])
    digest = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")
    return Decimal(2000 + digest % 48001) / 100


def order_kwargs(
    n: int, *, account: str, prefix: str, mix: str, rng: random.Random, prices: dict[str, str]
) -> tuple[dict[str, Any], bool]:
    """The n-th order's task arguments, and whether it is to be canceled later."""
    symbol = rng.choice(SYMBOLS)
    side = "buy" if n % 2 == 0 else "sell"
    kwargs: dict[str, Any] = {
        "account": account, "symbol": symbol, "side": side,
        "quantity": str(rng.randint(1, 100)), "client_order_id": f"{prefix}{n}",
    }  # fmt: skip
    kind = n % 5 if mix == "mixed" else 0
    if kind < 3:
        return kwargs, False
    resting = kind == 4
    offset = Decimal("-0.5") if resting else Decimal("0.1")
    factor = 1 + offset if side == "buy" else 1 - offset
    price = max(CENT, (reference_price(symbol, prices) * factor).quantize(CENT))
    kwargs.update(order_type="limit", time_in_force="gtc", limit_price=str(price))
    return kwargs, resting


def send_all(send: Send, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    prices: dict[str, str] = json.loads(args.prices)
    interval = 1 / args.rate if args.rate > 0 else 0.0
    cancels: list[tuple[float, str]] = []
    first = last = 0.0
    canceled = 0
    start = time.monotonic()

    def cancel_due(now: float) -> int:
        sent = 0
        while cancels and cancels[0][0] <= now:
            _, client_order_id = heapq.heappop(cancels)
            send(
                "ordersync.cancel_order",
                {"account": args.account, "client_order_id": client_order_id},
            )
            sent += 1
        return sent

    for n in range(args.orders):
        if interval:
            pause = start + n * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing to --rate, not synchronisation
        kwargs, cancel = order_kwargs(
            n, account=args.account, prefix=args.prefix, mix=args.mix, rng=rng, prices=prices
        )
        first = first or time.time()
        send("ordersync.place_order", kwargs)
        last = time.time()
        if cancel:
            heapq.heappush(
                cancels, (time.monotonic() + args.cancel_after_s, kwargs["client_order_id"])
            )
        canceled += cancel_due(time.monotonic())
    while cancels:
        time.sleep(max(0.0, cancels[0][0] - time.monotonic()))
        canceled += cancel_due(time.monotonic())
    return {"sent": args.orders, "cancels": canceled, "first_send": first, "last_send": last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("ORDERSYNC_REDIS_URL"))
    parser.add_argument("--account", required=True)
    parser.add_argument("--orders", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--mix", choices=("market", "mixed"), default="market")
    parser.add_argument("--rate", type=float, default=0.0, help="orders per second; 0: max")
    parser.add_argument("--cancel-after-s", type=float, default=1.0)
    parser.add_argument("--prices", default="{}", help='JSON {"SYMBOL": "price"}')
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not args.redis_url:
        parser.error("--redis-url or ORDERSYNC_REDIS_URL is required")
    app = Celery("bench-sender", broker=args.redis_url)
    try:
        with app.producer_or_acquire() as producer:  # one connection for the whole run

            def send(name: str, kwargs: dict[str, Any]) -> None:
                app.send_task(name, kwargs=kwargs, producer=producer)

            result = send_all(send, args)
    finally:
        app.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
