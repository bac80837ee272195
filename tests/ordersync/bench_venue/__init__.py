"""Helpers for the venues' tests: the exchange's control API as a venue reads it, and what
the bench's sender sends at a venue."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from ordersync import bench_sender
from ordersync.bench import LocalFill, LocalOrder, compare
from ordersync.bench_venue import BenchVenue, TruthOrder


def control_api(prices: dict[str, str], faults: dict[str, Any]) -> httpx.Client:
    """``/_sim``'s prices and faults as given; every other path 404."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/_sim/prices":
            return httpx.Response(200, json=prices)
        if request.url.path == "/_sim/faults":
            return httpx.Response(200, json=faults)
        return httpx.Response(404)

    return httpx.Client(base_url="http://sim/_sim", transport=httpx.MockTransport(answer))


def prepared(venue: BenchVenue, *limits: int) -> list[object]:
    """What ``venue.prepare`` puts to ``/_sim/faults`` for each run's limit a minute."""
    put: list[object] = []

    def answer(request: httpx.Request) -> httpx.Response:
        put.append(json.loads(request.content))
        return httpx.Response(200, json={})

    with httpx.Client(base_url="http://sim/_sim", transport=httpx.MockTransport(answer)) as sim:
        for limit in limits:
            venue.prepare(sim, limit)
    return put


def sender_orders(venue: BenchVenue, sim: httpx.Client, mix: str, n: int) -> list[dict[str, Any]]:
    """Every task the sender sends for ``n`` orders of ``mix`` at ``venue`` (two accounts)."""
    args = bench_sender.argparse.Namespace(
        seed=3, prices=json.dumps(venue.prices(sim)), venue=json.dumps(venue.sender_venue(sim)),
        accounts="a,b", mix=mix, orders=n, rate=0, prefix="p-", cancel_after_s=0.0,
        exit_after_s=0.0, valid_for_s=30.0,
    )  # fmt: skip
    sent: list[dict[str, Any]] = []
    bench_sender.send_all(lambda task, kwargs: sent.append({"task": task, **kwargs}), args)
    return sent


def recorded_under(truth: TruthOrder, ids: list[str]) -> tuple[int, int, int]:
    """compare()'s (missed, duplicate, mismatched orders) for a local record of ``truth``'s
    order just as the exchange has it, but its fills recorded under ``ids`` in turn."""
    at, cid = truth.created_at, truth.client_order_id
    fills = [LocalFill(cid, fill_id, fill.qty, fill.price, at, at)
             for fill_id, fill in zip(ids, truth.fills, strict=True)]  # fmt: skip
    assert truth.status is not None
    local = LocalOrder(cid, truth.broker_order_id, truth.status, truth.filled, truth.filled,
                       truth.average_price)  # fmt: skip
    result = compare([truth], {cid: local}, fills)
    return result["missed_fills"], result["duplicate_fills"], result["mismatched_orders"]


# Where the sender puts limits: resting at half (buy) or 1.5 times (sell) the price,
# marketable 10 % through it.
LIMIT_FACTORS = tuple(Decimal(f) for f in ("0.5", "1.1", "0.9", "1.5"))


def limit_prices(sent: list[dict[str, Any]], symbol: str) -> set[Decimal]:
    """The limit prices of the orders of ``symbol`` the sender sent."""
    return {Decimal(kw["limit_price"]) for kw in sent
            if kw.get("symbol") == symbol and "limit_price" in kw}  # fmt: skip


def round_trips(sent: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each exit the sender sent with its entry (the trade its exit names)."""
    entries = {kw["decision_id"]: kw for kw in sent if kw.get("intent") == "ENTRY"}
    return [(entries[kw["trade_id"]], kw) for kw in sent if kw.get("intent") == "EXIT"]
