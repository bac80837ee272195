"""The Alpaca surface over ASGI: shapes, validation, auth and the rate limiter."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from brokers.paper.state import Sim
from tests.brokers.paper import (
    AUTH,
    FakeClock,
    RecordingSleep,
    api_client,
    make_sim,
)

pytestmark = pytest.mark.anyio
RFC3339_US = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
MARKET = {"symbol": "AAPL", "qty": "10", "side": "buy", "type": "market", "time_in_force": "day"}
RESTING = {**MARKET, "type": "limit", "limit_price": "1.00", "time_in_force": "gtc"}


@pytest.fixture
def sim(clock: FakeClock) -> Sim:
    return make_sim(clock, RecordingSleep())


async def test_place_then_get_returns_alpaca_shaped_orders(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        placed = await client.post("/v2/orders", json={**MARKET, "client_order_id": "c-1"})
        clock.tick(1000)
        by_id = await client.get(f"/v2/orders/{placed.json()['id']}")
        by_cid = await client.get(
            "/v2/orders:by_client_order_id", params={"client_order_id": "c-1"}
        )

    assert placed.status_code == 200
    body = placed.json()
    assert body["status"] == "accepted"
    assert (body["qty"], body["filled_qty"], body["filled_avg_price"]) == ("10", "0", None)
    assert body["created_at"] == body["submitted_at"] == body["updated_at"]
    assert RFC3339_US.fullmatch(body["created_at"])
    assert (body["order_class"], body["asset_class"], body["type"]) == (
        "simple",
        "us_equity",
        "market",
    )
    assert by_id.json() == by_cid.json()
    filled = by_id.json()
    assert filled["status"] == "filled"
    assert filled["filled_qty"] == "10"
    assert Decimal(filled["filled_avg_price"]) > 0
    assert RFC3339_US.fullmatch(filled["filled_at"])
    assert filled["updated_at"] > filled["created_at"]


async def test_qty_may_be_a_json_number_and_is_kept_exact(sim: Sim) -> None:
    async with api_client(sim) as client:
        placed = await client.post(
            "/v2/orders",
            content=b'{"symbol":"AAPL","qty":0.123456789,"side":"buy","type":"market",'
            b'"time_in_force":"day"}',
            headers={"content-type": "application/json"},
        )

    assert placed.json()["qty"] == "0.123456789"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"qty": "0"}, "qty"),
        ({"qty": "-1"}, "qty"),
        ({"qty": "ten"}, "qty"),
        ({"qty": "0.0000000001"}, "qty"),
        ({"qty": "1e1000000"}, "qty must be below"),
        ({"type": "limit", "limit_price": "1e30"}, "limit_price must be below"),
        ({"symbol": None}, "symbol"),
        ({"symbol": ""}, "symbol"),
        ({"side": "short"}, "side"),
        ({"type": "trailing_stop"}, "type"),
        ({"time_in_force": "opg"}, "time_in_force"),
        ({"type": "limit"}, "limit_price"),
        ({"type": "stop"}, "stop_price"),
        ({"type": "stop_limit", "stop_price": "5"}, "limit_price"),
        ({"type": "limit", "limit_price": "-3"}, "limit_price"),
        ({"client_order_id": "x" * 129}, "client_order_id"),
    ],
)
async def test_invalid_orders_are_422_and_say_what_is_wrong(
    sim: Sim, change: dict[str, Any], complaint: str
) -> None:
    body = {k: v for k, v in {**MARKET, **change}.items() if v is not None}
    async with api_client(sim) as client:
        answer = await client.post("/v2/orders", json=body)

    assert answer.status_code == 422
    assert answer.json()["code"] == 40010001
    assert complaint in answer.json()["message"]
    assert sim.engine.orders == []


async def test_a_128_character_client_order_id_is_fine(sim: Sim) -> None:
    async with api_client(sim) as client:
        answer = await client.post("/v2/orders", json={**MARKET, "client_order_id": "x" * 128})
    assert answer.status_code == 200


async def test_duplicate_client_order_id_is_refused(sim: Sim) -> None:
    async with api_client(sim) as client:
        first = await client.post("/v2/orders", json={**RESTING, "client_order_id": "dup"})
        second = await client.post("/v2/orders", json={**RESTING, "client_order_id": "dup"})

    assert first.status_code == 200
    assert second.status_code == 422
    assert second.json() == {"code": 40010001, "message": "client_order_id must be unique"}
    assert len(sim.engine.orders) == 1


async def test_unknown_orders_are_404(sim: Sim) -> None:
    not_found = {"code": 40410000, "message": "order not found"}
    async with api_client(sim) as client:
        answers = [
            await client.get("/v2/orders/nope"),
            await client.get("/v2/orders:by_client_order_id", params={"client_order_id": "n"}),
            await client.delete("/v2/orders/nope"),
        ]
    assert [(a.status_code, a.json()) for a in answers] == [(404, not_found)] * 3


async def test_cancel_is_204_then_422_once_terminal(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        order_id = (await client.post("/v2/orders", json=RESTING)).json()["id"]
        first = await client.delete(f"/v2/orders/{order_id}")
        pending = (await client.get(f"/v2/orders/{order_id}")).json()["status"]
        clock.tick(100)
        canceled = (await client.get(f"/v2/orders/{order_id}")).json()
        again = await client.delete(f"/v2/orders/{order_id}")

    assert (first.status_code, first.content) == (204, b"")
    assert pending == "pending_cancel"
    assert canceled["status"] == "canceled"
    assert RFC3339_US.fullmatch(canceled["canceled_at"])
    assert again.status_code == 422
    assert again.json() == {"code": 42210000, "message": "order is not cancelable"}


async def test_cancel_all_answers_207_per_order(sim: Sim) -> None:
    async with api_client(sim) as client:
        ids = [(await client.post("/v2/orders", json=RESTING)).json()["id"] for _ in range(3)]
        answer = await client.delete("/v2/orders")

    assert answer.status_code == 207
    assert sorted(answer.json(), key=lambda r: r["id"]) == sorted(
        ({"id": i, "status": 200} for i in ids), key=lambda r: r["id"]
    )


async def test_list_orders_pages_by_submission_time(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        ids = []
        for _ in range(5):
            ids.append((await client.post("/v2/orders", json=RESTING)).json()["id"])
            clock.tick(10)  # routed before the next arrives
        everything = (await client.get("/v2/orders", params={"direction": "asc"})).json()
        middle = everything[1]["submitted_at"], everything[4]["submitted_at"]
        window = await client.get(
            "/v2/orders", params={"after": middle[0], "until": middle[1], "direction": "asc"}
        )
        newest = await client.get("/v2/orders", params={"limit": 2})
        too_many = await client.get("/v2/orders", params={"limit": 501})
        bad_time = await client.get("/v2/orders", params={"after": "yesterday"})

    assert [o["id"] for o in everything] == ids
    assert [o["id"] for o in window.json()] == ids[2:4]
    assert [o["id"] for o in newest.json()] == ids[:-3:-1]
    assert too_many.status_code == bad_time.status_code == 422
    assert too_many.json()["code"] == 40010001
    assert "limit" in too_many.json()["message"]


async def test_fill_activities_positions_and_account(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        await client.post("/v2/orders", json=MARKET)
        await client.post("/v2/orders", json={**MARKET, "side": "sell", "qty": "25"})
        clock.tick(1000)
        fills = (await client.get("/v2/account/activities/FILL")).json()
        positions = (await client.get("/v2/positions")).json()
        account = (await client.get("/v2/account")).json()
        bad_size = await client.get("/v2/account/activities/FILL", params={"page_size": 101})

    assert fills
    assert [f["id"] for f in fills] == sorted((f["id"] for f in fills), reverse=True)
    assert {f["activity_type"] for f in fills} == {"FILL"}
    assert {f["type"] for f in fills} <= {"fill", "partial_fill"}
    assert sum(Decimal(f["qty"]) for f in fills if f["side"] == "sell") == 25
    [position] = positions
    assert (position["symbol"], position["qty"], position["side"]) == ("AAPL", "15", "short")
    assert Decimal(position["market_value"]) < 0
    assert account["status"] == "ACTIVE"
    assert Decimal(account["cash"]) > 1_000_000
    assert bad_size.status_code == 422


async def test_missing_or_wrong_credentials_are_401(sim: Sim) -> None:
    unauthorized = {"code": 40110000, "message": "request is not authorized"}
    async with api_client(sim, **{"APCA-API-KEY-ID": AUTH["APCA-API-KEY-ID"]}) as no_secret:
        missing = await no_secret.post("/v2/orders", json=MARKET)
    wrong = {**AUTH, "APCA-API-SECRET-KEY": "guess"}
    async with api_client(sim, **wrong) as impostor:
        refused = await impostor.get("/v2/orders")

    for answer in (missing, refused):
        assert (answer.status_code, answer.json()) == (401, unauthorized)
        assert "x-ratelimit-limit" in answer.headers
    assert sim.engine.orders == []


async def test_any_non_empty_pair_is_accepted_without_configured_keys(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep(), any_keys=True)
    async with api_client(sim, **{"APCA-API-KEY-ID": "a", "APCA-API-SECRET-KEY": "b"}) as client:
        assert (await client.get("/v2/orders")).status_code == 200
    async with api_client(sim, **{"APCA-API-KEY-ID": "a", "APCA-API-SECRET-KEY": ""}) as client:
        assert (await client.get("/v2/orders")).status_code == 401


async def test_every_v2_answer_carries_rate_limit_headers(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        answers = [
            await client.get("/v2/orders"),
            await client.get("/v2/orders/missing"),
            await client.post("/v2/orders", json={}),
        ]

    reset = int(clock.now.timestamp()) + 60
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["199", "198", "197"]
    assert {a.headers["x-ratelimit-limit"] for a in answers} == {"200"}
    assert {a.headers["x-ratelimit-reset"] for a in answers} == {str(reset)}


async def test_over_the_limit_is_429_and_not_processed(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep(), rate_limit_per_min=2)
    async with api_client(sim) as client:
        allowed = [await client.post("/v2/orders", json=RESTING) for _ in range(2)]
        refused = await client.post("/v2/orders", json=RESTING)
        clock.tick(60_000)
        next_window = await client.post("/v2/orders", json=RESTING)

    assert [a.status_code for a in allowed] == [200, 200]
    assert refused.status_code == 429
    assert refused.json() == {"code": 42910000, "message": "rate limit exceeded"}
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert next_window.status_code == 200
    assert next_window.headers["x-ratelimit-remaining"] == "1"
    assert len(sim.engine.orders) == 3
    assert sim.stats.rate_limited == 1


async def test_the_limit_is_per_key(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep(), any_keys=True, rate_limit_per_min=1)
    async with api_client(sim, **{"APCA-API-KEY-ID": "a", "APCA-API-SECRET-KEY": "s"}) as a:
        first_a = await a.get("/v2/orders")
        second_a = await a.get("/v2/orders")
    async with api_client(sim, **{"APCA-API-KEY-ID": "b", "APCA-API-SECRET-KEY": "s"}) as b:
        first_b = await b.get("/v2/orders")

    assert [first_a.status_code, second_a.status_code, first_b.status_code] == [200, 429, 200]


async def test_limit_zero_is_not_enforced(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep(), rate_limit_per_min=0)
    async with api_client(sim) as client:
        answers = [await client.get("/v2/orders") for _ in range(5)]

    assert {a.status_code for a in answers} == {200}
    assert answers[-1].headers["x-ratelimit-limit"] == "1000000"
    assert answers[-1].headers["x-ratelimit-remaining"] == "999995"


async def test_unknown_routes_keep_the_error_shape(sim: Sim) -> None:
    async with api_client(sim) as client:
        answer = await client.get("/v2/nothing-here")
    assert answer.status_code == 404
    assert set(answer.json()) == {"code", "message"}
