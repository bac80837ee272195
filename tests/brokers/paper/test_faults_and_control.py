"""Injected faults, request statistics and the /_sim control API, over ASGI."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.paper.model import parse_time, rfc3339
from brokers.paper.state import Sim
from tests.brokers.paper import KEY_ID, FakeClock, RecordingSleep, api_client, make_sim

pytestmark = pytest.mark.anyio
RESTING = {
    "symbol": "AAPL",
    "qty": "5",
    "side": "buy",
    "type": "limit",
    "limit_price": "1.00",
    "time_in_force": "gtc",
}


@pytest.fixture
def sim(clock: FakeClock, sleep: RecordingSleep) -> Sim:
    return make_sim(clock, sleep)


async def test_injected_429_is_not_processed(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"next_429": 1})
        limited = await client.post("/v2/orders", json=RESTING)
        retried = await client.post("/v2/orders", json=RESTING)

    assert limited.status_code == 429
    assert limited.json() == {"code": 42910000, "message": "rate limit exceeded"}
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.headers["x-ratelimit-reset"] == str(int(clock.now.timestamp()) + 1)
    assert retried.status_code == 200
    assert len(sim.engine.orders) == 1
    assert (sim.stats.faulted, sim.stats.rate_limited, sim.stats.total) == (1, 0, 2)


async def test_injected_503_is_not_processed(sim: Sim) -> None:
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"next_5xx": 2})
        answers = [await client.post("/v2/orders", json=RESTING) for _ in range(3)]
        left = (await client.get("/_sim/faults")).json()["next_5xx"]

    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].json() == {"code": 50300000, "message": "service unavailable"}
    assert "x-ratelimit-limit" in answers[0].headers
    assert len(sim.engine.orders) == 1
    assert left == 0


async def test_timeout_waits_first_then_answers_normally(sim: Sim, sleep: RecordingSleep) -> None:
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"next_timeout": 1, "timeout_s": 3.5})
        answer = await client.post("/v2/orders", json=RESTING)

    assert answer.status_code == 200
    assert sleep.calls == [3.5]
    assert len(sim.engine.orders) == 1
    assert sim.stats.faulted == 1


async def test_lost_response_creates_the_order_then_answers_504(
    sim: Sim, sleep: RecordingSleep
) -> None:
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"next_lose_response": 1, "timeout_s": 2})
        listed = await client.get("/v2/orders")  # only placements lose answers
        lost = await client.post("/v2/orders", json={**RESTING, "client_order_id": "lost-1"})
        found = await client.get(
            "/v2/orders:by_client_order_id", params={"client_order_id": "lost-1"}
        )
        stats = (await client.get("/_sim/requests")).json()

    assert listed.status_code == 200
    assert lost.status_code == 504
    assert lost.json() == {"code": 50400000, "message": "gateway timeout"}
    assert sleep.calls == [2.0]
    assert found.status_code == 200
    assert stats["by_order"][found.json()["id"]] == 2  # the placement and the lookup


async def test_latency_is_added_to_every_request(sim: Sim, sleep: RecordingSleep) -> None:
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"latency_ms": [40, 60]})
        for _ in range(5):
            await client.get("/v2/orders")
        await client.get("/_sim/health")  # the control API is never slowed

    assert len(sleep.calls) == 5
    assert all(0.040 <= s <= 0.060 for s in sleep.calls)


async def test_faults_only_hit_the_routes_named(sim: Sim) -> None:
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"next_5xx": 1, "routes": ["GET /v2/orders"]})
        placed = await client.post("/v2/orders", json=RESTING)
        account = await client.get("/v2/account")
        fetched = await client.get(f"/v2/orders/{placed.json()['id']}")
        again = await client.get(f"/v2/orders/{placed.json()['id']}")

    assert [placed.status_code, account.status_code] == [200, 200]
    assert [fetched.status_code, again.status_code] == [503, 200]


async def test_probabilities_of_one_always_fire(sim: Sim) -> None:
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"p_5xx": 1.0})
        answers = [await client.get("/v2/orders") for _ in range(10)]
    assert {a.status_code for a in answers} == {503}


async def test_rejects_come_after_acceptance(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"next_reject": 1})
        rejected = await client.post("/v2/orders", json=RESTING)
        fine = await client.post("/v2/orders", json=RESTING)
        clock.tick(100)
        later = [
            (await client.get(f"/v2/orders/{a.json()['id']}")).json() for a in (rejected, fine)
        ]

    assert rejected.json()["status"] == "accepted"
    assert [o["status"] for o in later] == ["rejected", "new"]
    assert later[0]["failed_at"] is not None


async def test_fill_settings_are_faults_too(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        await client.put(
            "/_sim/faults", json={"fill_delay_ms": [500, 500], "partial_fill_probability": 0}
        )
        market = {**RESTING, "type": "market"}
        order_id = (await client.post("/v2/orders", json=market)).json()["id"]
        clock.tick(400)
        early = (await client.get(f"/v2/orders/{order_id}")).json()["status"]
        clock.tick(200)
        late = (await client.get(f"/v2/orders/{order_id}")).json()["status"]

    assert (early, late) == ("new", "filled")


@pytest.mark.parametrize(
    "body",
    [
        {"p_5xx": 2},
        {"next_429": -1},
        {"surprise": 1},
        {"latency_ms": [9, 1]},
        {"routes": ["x"]},
        {"p_late_activity": 1.5},
        {"next_late_activity": -1},
        {"late_activity_ms": [5000, 1000]},
        {"late_activity_ms": [-1, 5]},
        {"p_same_timestamp": -0.1},
        {"session_s": -1},
        {"session_s": 0.01},
        {"overnight_s": "long"},
        {"session_s": "inf"},
    ],
)
async def test_bad_fault_settings_are_422(sim: Sim, body: dict[str, object]) -> None:
    async with api_client(sim) as client:
        answer = await client.put("/_sim/faults", json=body)
        settings = (await client.get("/_sim/faults")).json()
    assert answer.status_code == 422
    assert answer.json()["code"] == 40010001
    assert settings == sim.config.faults.model_dump(mode="json")


async def test_clearing_faults_restores_start_up_settings(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep(), p_429=0.25, rate_limit_per_min=7)
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"p_429": 0, "next_5xx": 3})
        cleared = (await client.delete("/_sim/faults")).json()
    assert (cleared["p_429"], cleared["next_5xx"], cleared["rate_limit_per_min"]) == (0.25, 0, 7)


async def test_request_stats_count_routes_and_orders(sim: Sim) -> None:
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"next_5xx": 1, "routes": ["GET /v2/orders/"]})
        order = (await client.post("/v2/orders", json={**RESTING, "client_order_id": "s"})).json()
        await client.get(f"/v2/orders/{order['id']}")
        await client.get(f"/v2/orders/{order['id']}")
        await client.get("/v2/orders:by_client_order_id", params={"client_order_id": "s"})
        await client.get("/v2/orders:by_client_order_id", params={"client_order_id": "none"})
        await client.delete(f"/v2/orders/{order['id']}")
        stats = (await client.get("/_sim/requests")).json()

    assert stats["total"] == 6
    assert stats["by_route"] == {
        "POST /v2/orders": 1,
        "GET /v2/orders/{id}": 2,
        "GET /v2/orders:by_client_order_id": 2,
        "DELETE /v2/orders/{id}": 1,
    }
    assert stats["by_order"] == {order["id"]: 5}
    assert (stats["faulted"], stats["rate_limited"]) == (1, 0)


async def test_truth_shows_fills_timeline_and_filters(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        resting = (await client.post("/v2/orders", json=RESTING)).json()
        market = (await client.post("/v2/orders", json={**RESTING, "type": "market"})).json()
        clock.tick(1000)
        everything = (await client.get("/_sim/truth")).json()["orders"]
        open_only = (await client.get("/_sim/truth", params={"status": "open"})).json()["orders"]
        closed = (await client.get("/_sim/truth", params={"status": "closed"})).json()["orders"]
        one = (await client.get(f"/_sim/truth/orders/{market['id']}")).json()
        missing = await client.get("/_sim/truth/orders/nope")

    assert [o["id"] for o in everything] == [resting["id"], market["id"]]
    assert [o["id"] for o in open_only] == [resting["id"]]
    assert [o["id"] for o in closed] == [market["id"]]
    assert one["status"] == "filled"
    assert sum(Decimal(f["qty"]) for f in one["fills"]) == 5
    assert one["timeline"][0]["status"] == "accepted"
    assert one["timeline"][-1]["status"] == "filled"
    assert one["forgotten"] is False
    assert missing.status_code == 404


async def test_forget_drops_the_order_everywhere_but_truth(sim: Sim) -> None:
    async with api_client(sim) as client:
        order = (await client.post("/v2/orders", json={**RESTING, "client_order_id": "f"})).json()
        filled = await client.post(f"/_sim/orders/{order['id']}/fill", json={"qty": "2"})
        forgotten = await client.post(f"/_sim/orders/{order['id']}/forget")
        by_id = await client.get(f"/v2/orders/{order['id']}")
        by_cid = await client.get("/v2/orders:by_client_order_id", params={"client_order_id": "f"})
        listed = (await client.get("/v2/orders", params={"status": "all"})).json()
        fills = (await client.get("/v2/account/activities/FILL")).json()
        truth = (await client.get(f"/_sim/truth/orders/{order['id']}")).json()

    assert filled.status_code == forgotten.status_code == 200
    assert by_id.status_code == by_cid.status_code == 404
    assert listed == fills == []
    assert truth["forgotten"] is True
    assert len(truth["fills"]) == 1


async def test_force_fill_answers_the_fill_and_refuses_the_impossible(sim: Sim) -> None:
    async with api_client(sim) as client:
        order_id = (await client.post("/v2/orders", json=RESTING)).json()["id"]
        too_much = await client.post(f"/_sim/orders/{order_id}/fill", json={"qty": "6"})
        done = await client.post(f"/_sim/orders/{order_id}/fill", json={"price": "0.99"})
        again = await client.post(f"/_sim/orders/{order_id}/fill")
        unknown = await client.post("/_sim/orders/nope/fill")

    assert too_much.status_code == 422
    assert done.json()["fill"]["qty"] == "5"
    assert done.json()["fill"]["price"] == "0.99"
    assert done.json()["order"]["status"] == "filled"
    assert again.status_code == 422
    assert unknown.status_code == 404


async def test_prices_market_close_day_and_reset(sim: Sim) -> None:
    async with api_client(sim) as client:
        set_answer = await client.post("/_sim/prices", json={"AAPL": "190.12", "MSFT": 410})
        bad = await client.post("/_sim/prices", json={"AAPL": "cheap"})
        market = await client.put("/_sim/market", json={"frozen": False, "volatility_bps": 2})
        day = {**RESTING, "time_in_force": "day"}
        await client.post("/v2/orders", json=day)
        await client.post("/v2/orders", json=RESTING)
        expired = (await client.post("/_sim/close_day")).json()
        await client.put("/_sim/faults", json={"next_5xx": 1})
        reset = await client.post("/_sim/reset")
        after = [
            (await client.get("/_sim/truth")).json()["orders"],
            (await client.get("/_sim/requests")).json()["total"],
            (await client.get("/_sim/faults")).json()["next_5xx"],
        ]
        health = (await client.get("/_sim/health")).json()

    assert set_answer.json() == {"AAPL": "190.12", "MSFT": "410.00"}
    assert bad.status_code == 422
    assert market.json() == {"frozen": False, "volatility_bps": 2.0}
    assert expired == {"expired": 1, "done_for_day": 0}
    assert reset.json() == {"ok": True}
    assert after == [[], 0, 0]
    assert health == {"ok": True}


async def test_bulk_orders_rest_at_once_and_are_listed_but_not_counted(sim: Sim) -> None:
    seeded = [{**RESTING, "client_order_id": f"bulk-{n}"} for n in range(3)]
    async with api_client(sim) as client:
        answer = await client.post("/_sim/orders/bulk", json={"orders": seeded})
        listed = (await client.get("/v2/orders", params={"direction": "asc"})).json()
        stats = (await client.get("/_sim/requests")).json()

    assert answer.status_code == 200
    placed = answer.json()["orders"]
    assert [o["client_order_id"] for o in placed] == ["bulk-0", "bulk-1", "bulk-2"]
    assert {o["status"] for o in placed} == {"new"}  # acknowledged, no ack delay to wait out
    # Routed at once, in one microsecond of the fake clock: equal times, as at Alpaca.
    assert len({(o["created_at"], o["submitted_at"]) for o in placed}) == 1
    assert placed[0]["created_at"] == placed[0]["submitted_at"]
    assert [o["id"] for o in listed] == [o["id"] for o in placed]
    assert listed == placed  # what the seeder is told is what a listing shows
    assert all(o.resting == "limit" for o in sim.engine.orders)
    assert (stats["total"], stats["by_order"]) == (1, {})  # only the GET /v2/orders


@pytest.mark.parametrize(
    ("orders", "message"),
    [
        ([{**RESTING, "client_order_id": "x"}, {**RESTING, "qty": "0"}], "orders[1]: qty"),
        ([{**RESTING, "client_order_id": "x"}, {**RESTING, "client_order_id": "x"}], "'x'"),
        ([{**RESTING, "client_order_id": "taken"}], "'taken'"),
        ([], "expected a list"),
        (["AAPL"], "orders[0]: must be a JSON object"),
    ],
)
async def test_a_bad_bulk_order_refuses_the_whole_batch(
    sim: Sim, orders: list[object], message: str
) -> None:
    async with api_client(sim) as client:
        await client.post("/v2/orders", json={**RESTING, "client_order_id": "taken"})
        answer = await client.post("/_sim/orders/bulk", json={"orders": orders})

    assert answer.status_code == 422
    assert message in answer.json()["message"]
    assert len(sim.engine.orders) == 1


async def test_bulk_cancel_cancels_the_open_and_skips_the_rest(sim: Sim, clock: FakeClock) -> None:
    seeded = [{**RESTING, "client_order_id": f"c-{n}"} for n in range(3)]
    async with api_client(sim) as client:
        ids = [
            o["id"]
            for o in (await client.post("/_sim/orders/bulk", json={"orders": seeded})).json()[
                "orders"
            ]
        ]
        await client.post(f"/_sim/orders/{ids[0]}/fill")
        answer = await client.post("/_sim/orders/bulk/cancel", json={"ids": [*ids, "nope"]})
        clock.tick(1000)
        still_open = (await client.get("/_sim/truth", params={"status": "open"})).json()

    assert answer.json() == {"canceled": ids[1:]}
    assert still_open == {"orders": []}


async def test_new_fault_settings_have_alpaca_like_defaults(sim: Sim) -> None:
    async with api_client(sim) as client:
        settings = (await client.get("/_sim/faults")).json()

    assert settings["rate_limit_per_min"] == 200
    assert (settings["p_late_activity"], settings["next_late_activity"]) == (0.0, 0)
    assert settings["late_activity_ms"] == [1000, 5000]
    assert settings["p_same_timestamp"] == 0.0
    assert (settings["session_s"], settings["overnight_s"]) == (23400.0, 0.0)


async def test_a_late_activity_shows_in_truth_before_the_listing(
    sim: Sim, clock: FakeClock
) -> None:
    async with api_client(sim) as client:
        await client.put(
            "/_sim/faults", json={"next_late_activity": 1, "late_activity_ms": [1500, 1500]}
        )
        order_id = (await client.post("/v2/orders", json=RESTING)).json()["id"]
        forced = (await client.post(f"/_sim/orders/{order_id}/fill", json={"qty": "2"})).json()
        second = (await client.post(f"/_sim/orders/{order_id}/fill")).json()
        at_once = (await client.get("/v2/account/activities/FILL")).json()
        truth = (await client.get(f"/_sim/truth/orders/{order_id}")).json()
        order_now = (await client.get(f"/v2/orders/{order_id}")).json()
        clock.tick(1500)
        later = (await client.get("/v2/account/activities/FILL")).json()
        left = (await client.get("/_sim/faults")).json()["next_late_activity"]

    assert order_now["status"] == "filled"  # the order changed at once
    assert [a["id"] for a in at_once] == [second["fill"]["id"]]
    late = forced["fill"]
    assert [(f["id"], f["visible_at"]) for f in truth["fills"]] == [
        (late["id"], rfc3339(parse_time(late["transaction_time"]) + 1_500_000)),
        (second["fill"]["id"], second["fill"]["transaction_time"]),
    ]
    assert {a["id"] for a in later} == {late["id"], second["fill"]["id"]}
    assert left == 0


async def test_setting_session_s_starts_a_new_session_now(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"session_s": 10, "overnight_s": 5})
        fresh = (await client.get("/_sim/clock")).json()
        clock.tick(10_000)
        closed = (await client.get("/_sim/clock")).json()
        accepted = (await client.post("/v2/orders", json={**RESTING, "type": "market"})).json()
        clock.tick(5_000)
        reopened = (await client.get("/v2/clock")).json()
        clock.tick(1000)
        routed = (await client.get(f"/v2/orders/{accepted['id']}")).json()
        await client.put("/_sim/faults", json={"overnight_s": 7})  # no restart
        same = (await client.get("/_sim/clock")).json()
        await client.put("/_sim/faults", json={"session_s": 0})
        endless = (await client.get("/_sim/clock")).json()

    assert fresh["is_open"] is True
    assert (fresh["session_s"], fresh["overnight_s"]) == (10.0, 5.0)
    assert closed["is_open"] is False
    assert closed["next_open"] == fresh["next_open"]
    assert reopened["is_open"] is True
    assert reopened["timestamp"] == closed["next_open"]
    assert routed["status"] == "filled"
    assert routed["created_at"] < routed["submitted_at"]
    assert parse_time(routed["submitted_at"]) == parse_time(reopened["timestamp"])
    assert same["next_close"] == reopened["next_close"]
    assert endless["next_close"].startswith("9999-")


async def test_close_day_reports_expired_and_done_for_day(sim: Sim) -> None:
    async with api_client(sim) as client:
        await client.put("/_sim/faults", json={"overnight_s": 3600})
        day = (await client.post("/v2/orders", json={**RESTING, "time_in_force": "day"})).json()
        gtc = (await client.post("/v2/orders", json=RESTING)).json()
        await client.post(f"/_sim/orders/{gtc['id']}/fill", json={"qty": "1"})
        closed = (await client.post("/_sim/close_day")).json()
        statuses = [
            (await client.get(f"/v2/orders/{o['id']}")).json()["status"] for o in (day, gtc)
        ]
        refused = await client.post(f"/_sim/orders/{gtc['id']}/fill")
        clock = (await client.get("/_sim/clock")).json()

    assert closed == {"expired": 1, "done_for_day": 1}
    assert statuses == ["expired", "done_for_day"]
    assert refused.status_code == 422
    assert clock["is_open"] is False


async def test_truth_names_each_orders_account(sim: Sim) -> None:
    async with api_client(sim) as client:
        order = (await client.post("/v2/orders", json=RESTING)).json()
        truth = (await client.get("/_sim/truth")).json()["orders"]
        nobody = (await client.get("/_sim/truth", params={"account": "nobody"})).json()
        one = (await client.get(f"/_sim/truth/orders/{order['id']}")).json()

    assert [o["account"] for o in truth] == [KEY_ID]
    assert nobody == {"orders": []}
    assert one["account"] == KEY_ID
