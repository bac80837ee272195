"""Load check: fill the book with resting orders, then measure GET-by-id and POST throughput.

``python -m brokers.paper.load --url http://127.0.0.1:8765 --orders 10000``. Rate limiting
is switched off through the control API for the run and restored afterwards.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

import httpx
import typer

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOG")
FAR_BELOW_MARKET = "1.00"  # starting prices are 20-500, so these buys never fill


@dataclass(slots=True)
class Phase:
    name: str
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed_s: float = 0.0

    def report(self) -> str:
        count = len(self.latencies_s)
        rate = count / self.elapsed_s if self.elapsed_s else 0.0
        ordered = sorted(self.latencies_s) or [0.0]
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        return (
            f"{self.name:<24} {count:>7} ok in {self.elapsed_s:6.1f} s = {rate:7.1f} req/s"
            f"  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  errors {self.errors}"
        )


def _order_body(rng: random.Random) -> dict[str, object]:
    return {
        "symbol": rng.choice(SYMBOLS),
        "qty": str(rng.randint(1, 100)),
        "side": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "limit_price": FAR_BELOW_MARKET,
        "client_order_id": f"load-{uuid.uuid4()}",
    }


async def _timed(phase: Phase, call: Callable[[], Awaitable[httpx.Response]]) -> str | None:
    started = time.perf_counter()
    try:
        response = await call()
    except httpx.HTTPError:
        phase.errors += 1
        return None
    if response.status_code != 200:
        phase.errors += 1
        return None
    phase.latencies_s.append(time.perf_counter() - started)
    order_id: str = response.json()["id"]
    return order_id


async def _place(
    client: httpx.AsyncClient, total: int, concurrency: int
) -> tuple[Phase, list[str]]:
    phase = Phase("POST (fill the book)")
    ids: list[str] = []
    remaining = iter(range(total))
    rng = random.Random(1)

    async def worker() -> None:
        for _ in remaining:
            order_id = await _timed(phase, lambda: client.post("/v2/orders", json=_order_body(rng)))
            if order_id:
                ids.append(order_id)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.elapsed_s = time.perf_counter() - started
    return phase, ids


async def _sustain(
    name: str, seconds: float, concurrency: int, call: Callable[[], Awaitable[httpx.Response]]
) -> Phase:
    phase = Phase(name)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            await _timed(phase, call)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.elapsed_s = time.perf_counter() - started
    return phase


async def run(
    url: str, key_id: str, secret_key: str, orders: int, concurrency: int, seconds: float
) -> None:
    headers = {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=60
    ) as client:
        before = (await client.get("/_sim/faults")).raise_for_status().json()
        await client.put("/_sim/faults", json={"rate_limit_per_min": 0})
        try:
            fill, ids = await _place(client, orders, concurrency)
            typer.echo(fill.report())
            rng = random.Random(2)
            get = await _sustain(
                "GET /v2/orders/{id}",
                seconds,
                concurrency,
                lambda: client.get(f"/v2/orders/{rng.choice(ids)}"),
            )
            typer.echo(get.report())
            post = await _sustain(
                "POST /v2/orders",
                seconds,
                concurrency,
                lambda: client.post("/v2/orders", json=_order_body(rng)),
            )
            typer.echo(post.report())
            truth = (await client.get("/_sim/truth", params={"status": "open"})).json()
            typer.echo(f"open orders at the exchange: {len(truth['orders'])}")
        finally:
            await client.put(
                "/_sim/faults", json={"rate_limit_per_min": before["rate_limit_per_min"]}
            )


def main(
    url: Annotated[str, typer.Option(help="Base URL of a running paper exchange.")] = (
        "http://127.0.0.1:8765"
    ),
    orders: Annotated[int, typer.Option(min=1, help="Resting orders to place first.")] = 10_000,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight.")] = 16,
    seconds: Annotated[float, typer.Option(min=0.1, help="Length of each timed phase.")] = 10.0,
    key_id: Annotated[str, typer.Option(envvar="ORDERSYNC_SIM_KEY_ID")] = "load-key",
    secret_key: Annotated[str, typer.Option(envvar="ORDERSYNC_SIM_SECRET_KEY")] = "load-secret",  # noqa: S107 - paper credentials
) -> None:
    """Measure sustained throughput of a paper exchange from one client process."""
    asyncio.run(run(url, key_id, secret_key, orders, concurrency, seconds))


if __name__ == "__main__":
    typer.run(main)
