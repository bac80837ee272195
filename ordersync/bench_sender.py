"""The benchmark's trading service: sends N orders by task name from its own process,
importing only Celery and the standard library, and prints one JSON line saying when.

``--mix market``: market orders. ``--mix mixed``: of every five, three market orders, one
marketable limit (fills) and one limit far from the market, canceled ``--cancel-after-s``
later. ``--mix roundtrip``: market round trips, an ENTRY and ``--exit-after-s`` later its
EXIT (the trade named by the entry's decision id), as a trading service that saw its entry
fill would send it. Orders go to ``--accounts`` in turn (a round trip stays in one).
Every ``client_order_id`` is ``<prefix><n>``, so the run's orders can be found.

``--venue`` says what may be traded (ordersync's ``bench_venue`` writes it for the broker):
``{"symbols": {"BTCUSDT": {"step": "0.00001", "min_steps": 23, "max_steps": 230,
"tick": "0.01"}, ...}, "buy_fee_rate": "0.001"}``: quantities ``step * k``, limit prices on
``tick``, the part of a buy the venue keeps in the asset bought (an exit sells what is left,
down to the step), and ``"long_only": true`` for a venue that sells only what is held.
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
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from celery import Celery
from celery.signals import before_task_publish
from kombu.entity import Queue

Send = Callable[[str, dict[str, Any]], None]
RETRY_POLICY = {"max_retries": 40, "interval_start": 0.2, "interval_step": 0.5,
                "interval_max": 1.0}  # fmt: skip


@before_task_publish.connect  # type: ignore[untyped-decorator]
def _stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """When each call was sent: ordersync measures placement latency from this header."""
    if headers is not None:
        headers.setdefault("ordersync_sent_at", time.time())


def reference_price(symbol: str, prices: dict[str, str]) -> Decimal:
    """The given live price, else the paper exchange's deterministic opening price."""
    if symbol in prices:
        return Decimal(prices[symbol])
    digest = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")
    return Decimal(2000 + digest % 48001) / 100


def order_kwargs(
    n: int,
    *,
    account: str,
    prefix: str,
    mix: str,
    rng: random.Random,
    prices: dict[str, str],
    venue: dict[str, Any],
    turn: int = 0,
) -> tuple[dict[str, Any], bool]:
    """The n-th order's task arguments, and whether it is to be canceled later."""
    symbol = rng.choice(list(venue["symbols"]))
    terms = venue["symbols"][symbol]
    # Each account buys and sells in turn; at a venue that sells only what is held
    # (``long_only``) it only buys, and sells in round trips.
    side = "buy" if turn % 2 == 0 or venue.get("long_only") else "sell"
    quantity = Decimal(terms["step"]) * rng.randint(terms["min_steps"], terms["max_steps"])
    kwargs: dict[str, Any] = {
        "account": account, "symbol": symbol, "side": side,
        "quantity": str(quantity), "client_order_id": f"{prefix}{n}",
    }  # fmt: skip
    if mix == "roundtrip":
        kwargs.update(side="buy", intent="ENTRY", decision_id=f"{prefix}d{n}")
        return kwargs, False
    kind = n % 5 if mix == "mixed" else 0
    if kind < 3:
        return kwargs, False
    resting = kind == 4
    offset = Decimal("-0.5") if resting else Decimal("0.1")
    factor = 1 + offset if side == "buy" else 1 - offset
    tick = Decimal(terms["tick"])
    price = max(tick, (reference_price(symbol, prices) * factor).quantize(tick))
    kwargs.update(order_type="limit", time_in_force="gtc", limit_price=str(price))
    return kwargs, resting


def with_deadline(kwargs: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The placement deadline from the moment the order is sent, as a trading service whose
    signal is worth nothing later would set it (a resting limit gets ten times as long)."""
    valid_s = args.valid_for_s * (10 if kwargs.get("order_type") == "limit" else 1)
    expires = datetime.now(UTC) + timedelta(seconds=valid_s)
    return {**kwargs, "expires_at": expires.isoformat()}


def exit_kwargs(entry: dict[str, Any], n: int, prefix: str,
                venue: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The EXIT of a round trip's entry: what it left held, the other way, by its trade id."""
    return {
        "account": entry["account"], "symbol": entry["symbol"], "side": "sell",
        "quantity": held_after_buy(entry, venue), "client_order_id": f"{prefix}{n}",
        "intent": "EXIT", "trade_id": entry["decision_id"],
    }  # fmt: skip


def held_after_buy(entry: dict[str, Any], venue: dict[str, Any]) -> str:
    """All of a buy, less the part the venue keeps in the asset bought, down to the step."""
    fee_rate = Decimal(venue.get("buy_fee_rate", "0"))
    if not fee_rate:
        return str(entry["quantity"])
    step = Decimal(venue["symbols"][entry["symbol"]]["step"])
    held = Decimal(entry["quantity"]) * (1 - fee_rate)
    return str((held / step).to_integral_value(ROUND_DOWN) * step)


def send_all(send: Send, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    prices: dict[str, str] = json.loads(args.prices)
    venue: dict[str, Any] = json.loads(args.venue)
    accounts = args.accounts.split(",")
    roundtrip = args.mix == "roundtrip"
    entries = (args.orders + 1) // 2 if roundtrip else args.orders
    # --rate counts every order: a round trip's exit is one too
    interval = (2 if roundtrip else 1) / args.rate if args.rate > 0 else 0.0
    later: list[tuple[float, int, str, dict[str, Any]]] = []  # (due, n, task, kwargs)
    first = last = 0.0
    canceled = sent = 0
    start = time.monotonic()
    sent_at: dict[str, float] = {}  # client order id -> when its placement was sent

    def place(kwargs: dict[str, Any]) -> None:
        send("ordersync.place_order", with_deadline(kwargs, args))
        sent_at[kwargs["client_order_id"]] = time.time()

    def send_due(now: float) -> int:
        cancels = 0
        while later and later[0][0] <= now:
            _, _, task, kwargs = heapq.heappop(later)
            if task == "ordersync.place_order":
                place(kwargs)
            else:
                send(task, kwargs)
            cancels += task == "ordersync.cancel_order"
        return cancels

    for k in range(entries):
        if interval:
            pause = start + k * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing to --rate, not synchronisation
        n = 2 * k if roundtrip else k
        account = accounts[k % len(accounts)]
        kwargs, cancel = order_kwargs(
            n,
            account=account,
            prefix=args.prefix,
            mix=args.mix,
            rng=rng,
            prices=prices,
            venue=venue,
            turn=k // len(accounts),
        )
        first = first or time.time()
        place(kwargs)
        sent += 1
        last = time.time()
        if cancel:
            cancel_args = {"account": account, "client_order_id": kwargs["client_order_id"]}
            heapq.heappush(later, (time.monotonic() + args.cancel_after_s, n,
                                   "ordersync.cancel_order", cancel_args))  # fmt: skip
        if roundtrip and n + 1 < args.orders:
            heapq.heappush(later, (time.monotonic() + args.exit_after_s, n + 1,
                                   "ordersync.place_order",
                                   exit_kwargs(kwargs, n + 1, args.prefix, venue)))  # fmt: skip
            sent += 1
        canceled += send_due(time.monotonic())
    while later:
        time.sleep(max(0.0, later[0][0] - time.monotonic()))
        canceled += send_due(time.monotonic())
        last = time.time()
    return {"sent": sent, "cancels": canceled, "first_send": first, "last_send": last,
            "sent_at": sent_at}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("ORDERSYNC_CELERY_BROKER_URL")
        or os.environ.get("ORDERSYNC_REDIS_URL"),
        help="Celery's transport: amqp:// (RabbitMQ) or redis://",
    )
    parser.add_argument("--accounts", required=True, help="comma-separated account names")
    parser.add_argument("--orders", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--mix", choices=("market", "mixed", "roundtrip"), default="market")
    parser.add_argument("--rate", type=float, default=0.0, help="orders per second; 0: max")
    parser.add_argument("--cancel-after-s", type=float, default=1.0)
    parser.add_argument("--exit-after-s", type=float, default=1.0)
    parser.add_argument(
        "--valid-for-s",
        type=float,
        default=30.0,
        help="placement deadline after the send (limits: 10 times as long)",
    )
    parser.add_argument("--prices", default="{}", help='JSON {"SYMBOL": "price"}')
    parser.add_argument("--venue", required=True, help="JSON: the symbols and their terms")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not args.broker_url:
        parser.error("--broker-url, ORDERSYNC_CELERY_BROKER_URL or ORDERSYNC_REDIS_URL is required")
    app = Celery("bench-sender", broker=args.broker_url)
    options: dict[str, Any] = {}
    if args.broker_url.startswith(("amqp", "pyamqp")):
        # RabbitMQ: each send returns once the broker confirmed it; into the queue as
        # ordersync declared it (not redeclared); a send no queue takes is an error.
        app.conf.broker_transport_options = {"confirm_publish": True}
        app.conf.task_queues = [Queue("celery", no_declare=True)]  # type: ignore[no-untyped-call]
        options["mandatory"] = True
    try:
        with app.producer_or_acquire() as producer:  # one connection for the whole run

            def send(name: str, kwargs: dict[str, Any]) -> None:
                # A broker restart must not lose a call: publishing is retried for up to
                # about 30 s (a call sent twice is still one order: its client order id).
                app.send_task(name, kwargs=kwargs, producer=producer, retry=True,
                              retry_policy=RETRY_POLICY, **options)  # fmt: skip

            result = send_all(send, args)
    finally:
        app.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
