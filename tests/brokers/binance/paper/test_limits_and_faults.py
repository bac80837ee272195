"""Request weights, 429 then 418, order counts, the shared faults, exchangeInfo and the
ground truth of Binance orders."""

from __future__ import annotations

import pytest

from tests.brokers.binance.paper import binance_client, make_binance_sim
from tests.brokers.paper import FakeClock, RecordingSleep

pytestmark = pytest.mark.anyio
ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}


async def test_every_answer_carries_the_weight_used_this_minute(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        ping = await api.client.get("/api/v3/ping")
        info = await api.client.get("/api/v3/exchangeInfo")
        account = await api.send("GET", "/api/v3/account")
        clock.tick(60_000)
        later = await api.client.get("/api/v3/ping")
    weights = [r.headers["X-MBX-USED-WEIGHT-1M"] for r in (ping, info, account, later)]
    assert weights == ["1", "21", "41", "1"]


async def test_over_the_weight_limit_is_429_then_a_418_ban(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_binance_sim(clock, sleep, binance_weight_per_min=3, binance_ban_after=2)
    async with binance_client(sim, clock) as api:
        answers = [await api.client.get("/api/v3/ping") for _ in range(6)]
        clock.tick(60_000)
        still_banned = await api.client.get("/api/v3/ping")
        clock.tick(60_000)
        served = await api.client.get("/api/v3/ping")
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429, 418]
    refused = answers[3]
    assert refused.json()["code"] == -1003
    assert refused.json()["msg"].startswith(
        "Too much request weight used; current limit is 3 request weight per 1 MINUTE."
    )
    assert refused.headers["Retry-After"] == "60"
    banned = answers[5]
    assert banned.json()["code"] == -1003
    assert banned.json()["msg"].startswith("Way too much request weight used; IP banned until")
    assert banned.headers["Retry-After"] == "120"
    assert still_banned.status_code == 418
    assert served.status_code == 200


async def test_order_counts_and_their_limit(clock: FakeClock, sleep: RecordingSleep) -> None:
    sim = make_binance_sim(clock, sleep, binance_orders_per_10s=2)
    async with binance_client(sim, clock) as api:
        answers = [await api.send("POST", "/api/v3/order", **ORDER) for _ in range(3)]
        clock.tick(10_000)
        after = await api.send("POST", "/api/v3/order", **ORDER)
    assert [r.headers["X-MBX-ORDER-COUNT-10S"] for r in answers] == ["1", "2", "3"]
    assert answers[1].headers["X-MBX-ORDER-COUNT-1D"] == "2"
    assert answers[2].status_code == 429
    assert answers[2].json() == {
        "code": -1015,
        "msg": "Too many new orders; current limit is 2 orders per 10 SECOND.",
    }
    assert after.status_code == 200
    assert after.headers["X-MBX-ORDER-COUNT-1D"] == "4"


async def test_limits_are_settable_through_the_control_api(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        changed = await api.client.put("/_sim/faults", json={"binance_weight_per_min": 1})
        first = await api.client.get("/api/v3/ping")
        second = await api.client.get("/api/v3/ping")
        info = await api.client.get("/api/v3/exchangeInfo")
    assert changed.status_code == 200
    assert (first.status_code, second.status_code) == (200, 429)
    assert info.status_code == 429


async def test_faults_apply_to_binance_routes(clock: FakeClock, sleep: RecordingSleep) -> None:
    sim = make_binance_sim(clock, sleep, next_5xx=1, next_lose_response=1, next_429=1)
    async with binance_client(sim, clock) as api:
        limited = await api.send("GET", "/api/v3/account")
        down = await api.send("GET", "/api/v3/account")
        lost = await api.send("POST", "/api/v3/order", **ORDER)
        orders = await api.ok("GET", "/api/v3/allOrders", symbol="BTCUSDT")
    assert limited.status_code == 429
    assert limited.json()["code"] == -1003
    assert down.status_code == 503
    assert down.json()["code"] == -1008
    assert lost.status_code == 503
    assert lost.json()["code"] == -1007
    assert [o["status"] for o in orders] == ["FILLED"]  # the lost answer's order exists


async def test_exchange_info_lists_the_pairs_and_their_filters(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        every = (await api.client.get("/api/v3/exchangeInfo")).json()
        one = (await api.client.get("/api/v3/exchangeInfo?symbol=ETHBTC")).json()
        some = await api.client.get('/api/v3/exchangeInfo?symbols=["BTCUSDT","BNBUSDT"]')
        unknown = await api.client.get("/api/v3/exchangeInfo?symbol=NOPE")
    assert [s["symbol"] for s in every["symbols"]] == ["BTCUSDT", "ETHUSDT", "BNBUSDT", "ETHBTC"]
    assert [(r["rateLimitType"], r["limit"]) for r in every["rateLimits"]] == [
        ("REQUEST_WEIGHT", 6000),
        ("ORDERS", 50),
        ("ORDERS", 160000),
        ("RAW_REQUESTS", 61000),
    ]
    [ethbtc] = one["symbols"]
    filters = {f["filterType"]: f for f in ethbtc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.00001000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00010000"
    assert filters["NOTIONAL"]["minNotional"] == "0.00010000"
    assert (ethbtc["baseAsset"], ethbtc["quoteAsset"]) == ("ETH", "BTC")
    assert [s["symbol"] for s in some.json()["symbols"]] == ["BTCUSDT", "BNBUSDT"]
    assert unknown.json() == {"code": -1121, "msg": "Invalid symbol."}


async def test_the_truth_shows_binance_orders_with_their_binance_ids(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        placed = await api.ok("POST", "/api/v3/order", **ORDER)
        truth = (await api.client.get("/_sim/truth")).json()
    [order] = truth["orders"]
    assert order["account"] == "binance:binanceUnitKey0001"
    assert order["binance"]["orderId"] == placed["orderId"]
    assert order["binance"]["clientOrderId"] == placed["clientOrderId"]
    assert order["binance"]["status"] == "FILLED"
    assert [t["id"] for t in order["binance"]["trades"]] == [1]


async def test_a_reset_forgets_binance_orders_and_restores_balances(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        await api.ok("POST", "/api/v3/order", **ORDER)
        reset = await api.client.post("/_sim/reset")
        orders = await api.ok("GET", "/api/v3/allOrders", symbol="BTCUSDT")
        again = await api.ok("POST", "/api/v3/order", **ORDER)
        account = await api.ok("GET", "/api/v3/account", omitZeroBalances="true")
    assert reset.status_code in (200, 204)
    assert orders == []
    assert again["orderId"] == 1
    assert {b["asset"] for b in account["balances"]} == {"BNB", "BTC", "USDT"}


async def test_a_rejected_order_frees_what_it_locked(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    """The venue's p_reject/next_reject: taken, then rejected within the ack delay."""
    sim = make_binance_sim(clock, sleep, next_reject=1, latency_ms=(5, 5))
    async with binance_client(sim, clock) as api:
        placed = await api.ok(
            "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
            timeInForce="GTC", quantity="0.1", price="80000",
        )  # fmt: skip
        clock.tick(10)
        later = await api.ok("GET", "/api/v3/order", symbol="BTCUSDT", orderId=1)
        account = await api.ok("GET", "/api/v3/account")
    assert placed["status"] == "NEW"
    assert later["status"] == "REJECTED"
    assert {b["asset"]: b["locked"] for b in account["balances"]}["USDT"] == "0.00000000"
    assert sleep.calls == [0.005, 0.005, 0.005]  # the latency fault on every request


async def test_an_order_the_venue_forgot_is_gone_but_stays_in_the_truth(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        await api.ok(
            "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
            timeInForce="GTC", quantity="0.1", price="80000", newClientOrderId="lost",
        )  # fmt: skip
        [order] = (await api.client.get("/_sim/truth")).json()["orders"]
        forgot = await api.client.post(f"/_sim/orders/{order['id']}/forget")
        by_id = await api.send("GET", "/api/v3/order", symbol="BTCUSDT", orderId=1)
        by_cid = await api.send("GET", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="lost")
        listed = await api.ok("GET", "/api/v3/allOrders", symbol="BTCUSDT")
        open_now = await api.ok("GET", "/api/v3/openOrders")
        account = await api.ok("GET", "/api/v3/account")
        truth = (await api.client.get("/_sim/truth")).json()["orders"]
    assert forgot.status_code == 200
    assert by_id.json()["code"] == by_cid.json()["code"] == -2013
    assert listed == open_now == []
    assert {b["asset"]: b["locked"] for b in account["balances"]}["USDT"] == "0.00000000"
    assert truth[0]["forgotten"] is True
    assert truth[0]["binance"]["clientOrderId"] == "lost"
