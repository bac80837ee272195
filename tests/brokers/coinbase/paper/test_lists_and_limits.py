"""List Orders, List Fills and List Accounts paged as Coinbase pages them (newest first,
``limit``, ``cursor``, ``has_next``), their filters; the 30 requests/s per key limit with
its headers; the shared faults on these routes; the ground truth's Coinbase view."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.brokers.coinbase.paper import Signer, coinbase_client, make_coinbase_sim
from tests.brokers.paper import FakeClock, RecordingSleep

pytestmark = pytest.mark.anyio
MARKET = {"market_market_ioc": {"base_size": "0.001"}}


async def _walk(api: Signer, path: str, key: str, **params: str) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor = ""
    while True:
        query = "&".join(f"{k}={v}" for k, v in {**params, "cursor": cursor}.items() if v)
        body = await api.ok("GET", f"{path}?{query}")
        pages.append(body[key])
        cursor = body["cursor"]
        if not cursor:
            assert body.get("has_next", False) is False
            return pages


async def test_orders_come_newest_first_in_pages_and_a_new_order_never_shifts_them(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        for n in range(5):
            await api.place(f"o{n}", MARKET)
            clock.tick(10)
        first = await api.ok("GET", "/orders/historical/batch?limit=2")
        await api.place("late", MARKET)  # newer than every cursor
        second = await api.ok("GET", f"/orders/historical/batch?limit=2&cursor={first['cursor']}")
        rest = await api.ok("GET", f"/orders/historical/batch?limit=2&cursor={second['cursor']}")
    got = [o["client_order_id"] for page in (first, second, rest) for o in page["orders"]]
    assert got == ["o4", "o3", "o2", "o1", "o0"]
    assert (first["has_next"], second["has_next"], rest["has_next"]) == (True, True, False)
    assert rest["cursor"] == ""


async def test_order_filters(clock: FakeClock, sleep: RecordingSleep) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        await api.place("btc", MARKET)
        clock.tick(1000)
        await api.place("eth", MARKET, product="ETH-USD")
        await api.place(
            "rest", {"limit_limit_gtc": {"base_size": "0.01", "limit_price": "1000.00"}},
            product="ETH-USD",
        )  # fmt: skip

        async def ids(query: str) -> list[str]:
            found = await api.ok("GET", f"/orders/historical/batch?{query}")
            return [o["client_order_id"] for o in found["orders"]]

        by_product = await ids("product_ids=ETH-USD")
        by_two = await ids("product_ids=ETH-USD&product_ids=BTC-USD")
        by_status = await ids("order_status=OPEN")
        since = await ids("start_date=2026-03-02T14:30:00.500000Z")
        until = await ids("end_date=2026-03-02T14:30:00.500000Z")
        bad = await api.send("GET", "/orders/historical/batch?order_status=HALF")
        bad_date = await api.send("GET", "/orders/historical/batch?start_date=yesterday")
    assert by_product == ["rest", "eth"]
    assert by_two == ["rest", "eth", "btc"]
    assert by_status == ["rest"]
    assert since == ["rest", "eth"]
    assert until == ["btc"]
    assert (bad.status_code, bad.json()["error"]) == (400, "INVALID_ARGUMENT")
    assert "start_date" in bad_date.json()["message"]


async def test_fills_page_newest_first_and_filter(clock: FakeClock, sleep: RecordingSleep) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        placed = [await api.place(f"f{n}", MARKET) for n in range(3)]
        pages = await _walk(api, "/orders/historical/fills", "fills", limit="2")
        first_id = placed[0]["success_response"]["order_id"]
        of_one = await api.ok("GET", f"/orders/historical/fills?order_ids={first_id}")
    flat = [f for page in pages for f in page]
    assert [len(page) for page in pages] == [2, 1]
    assert [f["order_id"] for f in flat] == [p["success_response"]["order_id"]
                                              for p in reversed(placed)]  # fmt: skip
    assert len({f["entry_id"] for f in flat}) == 3
    assert [f["order_id"] for f in of_one["fills"]] == [first_id]
    assert of_one["cursor"] == ""


async def test_accounts_page_by_currency_and_show_what_is_held(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep, balances=(("USD", Decimal(1000)), ("BTC", Decimal(1))))
    async with coinbase_client(sim, clock) as api:
        await api.place(
            "sell", {"limit_limit_gtc": {"base_size": "0.25", "limit_price": "90000.00"}},
            side="SELL",
        )  # fmt: skip
        pages = await _walk(api, "/accounts", "accounts", limit="2")
    wallets = {a["currency"]: a for page in pages for a in page}
    assert [len(page) for page in pages] == [2, 2]
    assert list(wallets) == ["BTC", "ETH", "SOL", "USD"]  # the products' currencies, once
    assert wallets["BTC"]["available_balance"] == {"value": "0.75", "currency": "BTC"}
    assert wallets["BTC"]["hold"] == {"value": "0.25", "currency": "BTC"}
    assert wallets["USD"]["type"] == "ACCOUNT_TYPE_FIAT"
    assert wallets["BTC"]["type"] == "ACCOUNT_TYPE_CRYPTO"


async def test_thirty_requests_a_second_per_key_then_429(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        answers = [await api.send("GET", "/accounts") for _ in range(31)]
        clock.tick(1000)
        later = await api.send("GET", "/accounts")
    assert [a.status_code for a in answers] == [200] * 30 + [429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers[-3:]] == ["1", "0", "0"]
    refused = answers[-1]
    assert refused.json()["error"] == "RESOURCE_EXHAUSTED"
    assert int(refused.headers["x-ratelimit-reset"]) >= int(clock().timestamp())
    assert later.status_code == 200
    assert later.headers["x-ratelimit-remaining"] == "29"


async def test_the_shared_faults_apply_to_these_routes(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep, timeout_s=3)
    async with coinbase_client(sim, clock) as api:
        await api.client.put("/_sim/faults", json={"next_429": 1, "next_5xx": 1})
        throttled = await api.send("GET", "/accounts")
        unavailable = await api.send("GET", "/accounts")
        await api.client.put(
            "/_sim/faults",
            json={"next_lose_response": 1, "routes": ["POST /api/v3/brokerage/orders"]},
        )
        listed = await api.send("GET", "/accounts")  # not on the faulted route
        body = {"client_order_id": "lost", "product_id": "BTC-USD", "side": "BUY",
                "order_configuration": MARKET}  # fmt: skip
        lost = await api.send("POST", "/orders", json=body)
        again = await api.send("POST", "/orders", json=body)
        orders = (await api.ok("GET", "/orders/historical/batch"))["orders"]
        stats = (await api.client.get("/_sim/requests")).json()
    assert (throttled.status_code, throttled.json()["error"]) == (429, "RESOURCE_EXHAUSTED")
    assert "x-ratelimit-limit" in throttled.headers
    assert (unavailable.status_code, unavailable.json()["error"]) == (503, "UNAVAILABLE")
    assert listed.status_code == 200
    assert lost.status_code == 504
    assert sleep.calls == [3.0]
    assert again.json()["success_response"]["order_id"] == orders[0]["order_id"]
    assert [o["client_order_id"] for o in orders] == ["lost"]  # made once
    assert stats["by_route"]["POST /api/v3/brokerage/orders"] == 2
    assert stats["faulted"] == 3


async def test_the_truth_shows_coinbase_s_view_of_an_order(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        placed = await api.place("seen", MARKET)
        order_id = placed["success_response"]["order_id"]
        truth = (await api.client.get(f"/_sim/truth/orders/{order_id}")).json()
    assert truth["coinbase"]["client_order_id"] == "seen"
    assert truth["coinbase"]["status"] == "FILLED"
    assert len(truth["coinbase"]["fills"]) == 1
    assert truth["account"] == "coinbase:organizations/org-paper/apiKeys/key-1"
