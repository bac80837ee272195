"""``PATCH /v2/orders/{id}`` over ASGI: the answer's shape, exact numbers, every refusal in
Alpaca's error shape, cancels of a pending_replace order, and the gate's faults."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx
import pytest

from brokers.paper.state import Sim
from tests.brokers.paper import (
    OTHER_AUTH,
    FakeClock,
    RecordingSleep,
    api_client,
    make_sim,
)

pytestmark = pytest.mark.anyio
RFC3339_US = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
# AAPL starts at 20.00 or more, so this rests.
RESTING = {
    "symbol": "AAPL",
    "qty": "10",
    "side": "buy",
    "type": "limit",
    "limit_price": "1.00",
    "time_in_force": "gtc",
}
ACKED_MS = 10  # beyond the ack delay (at most 5 ms)
NOT_FOUND = {"code": 40410000, "message": "order not found"}
NOT_CANCELABLE = {"code": 42210000, "message": "order is not cancelable"}


def not_replaceable(status: str) -> dict[str, object]:
    return {"code": 42210000, "message": f"order is not replaceable: status is {status}"}


@pytest.fixture
def sim(clock: FakeClock, sleep: RecordingSleep) -> Sim:
    return make_sim(clock, sleep)


async def _placed(client: httpx.AsyncClient, clock: FakeClock, **body: object) -> dict[str, Any]:
    """A resting order, acknowledged: ``new``, so it may be replaced."""
    answer = await client.post("/v2/orders", json={**RESTING, **body})
    assert answer.status_code == 200, answer.text
    clock.tick(ACKED_MS)
    placed: dict[str, Any] = (await client.get(f"/v2/orders/{answer.json()['id']}")).json()
    assert placed["status"] == "new"
    return placed


async def _order(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await client.get(f"/v2/orders/{order_id}")).json()
    return found


async def test_replace_answers_the_new_order_and_the_old_one_ends_replaced(
    sim: Sim, clock: FakeClock
) -> None:
    async with api_client(sim) as client:
        old = await _placed(client, clock, client_order_id="r-old")
        answer = await client.patch(
            f"/v2/orders/{old['id']}",
            json={
                "qty": "3",
                "limit_price": "2.5",
                "time_in_force": "day",
                "client_order_id": "r-new",
            },
        )
        pending = await _order(client, old["id"])
        clock.tick(ACKED_MS)
        replaced = await _order(client, old["id"])
        new = await _order(client, answer.json()["id"])
        open_ids = [o["id"] for o in (await client.get("/v2/orders")).json()]
        closed = await client.get("/v2/orders", params={"status": "closed"})
        truth = (await client.get(f"/_sim/truth/orders/{old['id']}")).json()
        stats = (await client.get("/_sim/requests")).json()

    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == set(old)
    assert body["id"] != old["id"]
    assert (body["replaces"], body["replaced_by"], body["replaced_at"]) == (old["id"], None, None)
    assert body["status"] == "accepted"
    assert (body["qty"], body["filled_qty"], body["limit_price"]) == ("3", "0", "2.50")
    assert (body["time_in_force"], body["client_order_id"]) == ("day", "r-new")
    assert (body["symbol"], body["side"], body["type"], body["stop_price"]) == (
        "AAPL",
        "buy",
        "limit",
        None,
    )
    assert body["created_at"] == body["submitted_at"] == body["updated_at"]
    assert RFC3339_US.fullmatch(body["created_at"])

    assert pending["status"] == "pending_replace"
    assert pending["replaced_by"] is None
    assert replaced["status"] == "replaced"
    assert replaced["replaced_by"] == body["id"]
    assert replaced["replaced_at"] == replaced["updated_at"]
    assert RFC3339_US.fullmatch(replaced["replaced_at"])
    assert replaced["replaces"] is None
    assert (replaced["client_order_id"], replaced["qty"]) == ("r-old", "10")
    assert new["status"] == "new"
    assert new["replaces"] == old["id"]
    assert new["submitted_at"] == replaced["replaced_at"]

    assert open_ids == [body["id"]]
    assert [o["id"] for o in closed.json()] == [old["id"]]
    assert [t["status"] for t in truth["timeline"]] == [
        "accepted",
        "new",
        "pending_replace",
        "replaced",
    ]
    assert (truth["replaced_by"], truth["replaced_at"]) == (body["id"], replaced["replaced_at"])
    assert stats["by_route"]["PATCH /v2/orders/{id}"] == 1
    assert stats["by_order"][body["id"]] == 2  # the replace and the lookup


async def test_fields_not_given_stay_the_same(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        old = await _placed(client, clock, client_order_id="keep")
        answer = await client.patch(f"/v2/orders/{old['id']}", json={"limit_price": "1.5"})

    new = answer.json()
    kept = ("qty", "time_in_force", "symbol", "side", "type", "stop_price")
    assert {k: new[k] for k in kept} == {k: old[k] for k in kept}
    assert new["limit_price"] == "1.50"
    assert new["client_order_id"] not in ("keep", "")


async def test_json_numbers_are_read_exactly(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        old = await _placed(client, clock)
        exact = await client.patch(
            f"/v2/orders/{old['id']}",
            content=b'{"qty":12.0,"limit_price":1.1}',
            headers={"content-type": "application/json"},
        )
        other = await _placed(client, clock)
        # As a float this would be 10.0, a whole number; read exactly it is not.
        nearly_whole = await client.patch(
            f"/v2/orders/{other['id']}",
            content=b'{"qty":10.000000000000000001}',
            headers={"content-type": "application/json"},
        )

    assert exact.status_code == 200, exact.text
    assert (exact.json()["qty"], exact.json()["limit_price"]) == ("12", "1.10")
    assert nearly_whole.status_code == 422
    assert nearly_whole.json() == {
        "code": 40010001,
        "message": "qty must be a positive whole number of shares",
    }


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"qty": "0"}, "qty must be a positive whole number of shares"),
        ({"qty": -1}, "qty must be a positive whole number of shares"),
        ({"qty": "2.5"}, "qty must be a positive whole number of shares"),
        ({"qty": "ten"}, "qty: "),
        ({"time_in_force": "opg"}, "time_in_force: "),
        ({"trail": "1.5"}, "trail applies only to trailing stop orders"),
        ({"trail": 1, "qty": "3"}, "trail applies only to trailing stop orders"),
        ({}, "nothing to replace"),
        ({"extended_hours": True}, "nothing to replace"),  # unknown fields are ignored
        ({"qty": None}, "nothing to replace"),
        ({"stop_price": "5"}, "stop_price applies only to stop and stop_limit orders"),
        ({"limit_price": "-1"}, "limit_price must be a positive decimal"),
        ({"limit_price": "Infinity"}, "limit_price"),
        ({"qty": "1e18"}, "qty must be below 1E+18"),
        ({"limit_price": "1e1000000"}, "limit_price must be below 1E+18"),
        ({"client_order_id": "x" * 129}, "client_order_id: "),
        ({"client_order_id": ""}, "client_order_id: "),
    ],
)
async def test_invalid_changes_are_422_and_change_nothing(
    sim: Sim, clock: FakeClock, body: dict[str, Any], complaint: str
) -> None:
    async with api_client(sim) as client:
        old = await _placed(client, clock)
        answer = await client.patch(f"/v2/orders/{old['id']}", json=body)
        after = await _order(client, old["id"])

    assert answer.status_code == 422
    assert answer.json()["code"] == 40010001
    assert complaint in answer.json()["message"]
    assert set(answer.json()) == {"code", "message"}
    assert after == old
    assert len(sim.engine.orders) == 1


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"[]", "request body must be a JSON object"),
        (b"", "request body must be a JSON object"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_422(
    sim: Sim, clock: FakeClock, content: bytes, complaint: str
) -> None:
    async with api_client(sim) as client:
        old = await _placed(client, clock)
        answer = await client.patch(
            f"/v2/orders/{old['id']}",
            content=content,
            headers={"content-type": "application/json"},
        )
    assert (answer.status_code, answer.json()) == (422, {"code": 40010001, "message": complaint})


@pytest.mark.parametrize(
    ("placed", "body", "complaint"),
    [
        (
            {"type": "stop", "stop_price": "9999", "limit_price": None},
            {"limit_price": "5"},
            "limit_price applies only to limit and stop_limit orders",
        ),
        (
            {"qty": "0.5", "type": "market", "time_in_force": "day", "limit_price": None},
            {"qty": 1},
            "qty of a fractional order cannot be changed",
        ),
        (
            {
                "qty": None,
                "notional": "100",
                "type": "market",
                "time_in_force": "day",
                "limit_price": None,
            },
            {"time_in_force": "day"},
            "notional orders cannot be replaced: cancel it and submit a new one",
        ),
    ],
)
async def test_changes_the_order_cannot_take_are_422(
    sim: Sim,
    clock: FakeClock,
    placed: dict[str, Any],
    body: dict[str, Any],
    complaint: str,
) -> None:
    sim.engine.config = replace(sim.engine.config, fill_delay_ms=(1000, 1000))  # market: open
    async with api_client(sim) as client:
        fields = {k: v for k, v in {**RESTING, **placed}.items() if v is not None}
        order_id = (await client.post("/v2/orders", json=fields)).json()["id"]
        clock.tick(ACKED_MS)
        answer = await client.patch(f"/v2/orders/{order_id}", json=body)

    assert (answer.status_code, answer.json()) == (422, {"code": 40010001, "message": complaint})
    assert len(sim.engine.orders) == 1


async def test_unknown_fields_pass_with_a_real_change(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        old = await _placed(client, clock)
        answer = await client.patch(
            f"/v2/orders/{old['id']}", json={"qty": 4, "extended_hours": False, "whatever": 1}
        )
    assert answer.status_code == 200
    assert answer.json()["qty"] == "4"


async def test_orders_in_the_forbidden_statuses_are_not_replaceable(
    sim: Sim, clock: FakeClock
) -> None:
    change = {"qty": "2"}
    sim.engine.config = replace(sim.engine.config, cancel_delay_ms=(50, 50))
    async with api_client(sim) as client:
        fresh = (await client.post("/v2/orders", json=RESTING)).json()
        accepted = await client.patch(f"/v2/orders/{fresh['id']}", json=change)
        clock.tick(ACKED_MS)
        first = await client.patch(f"/v2/orders/{fresh['id']}", json=change)
        pending_replace = await client.patch(f"/v2/orders/{fresh['id']}", json=change)
        clock.tick(ACKED_MS)
        replaced = await client.patch(f"/v2/orders/{fresh['id']}", json=change)

        other = await _placed(client, clock)
        await client.delete(f"/v2/orders/{other['id']}")
        pending_cancel = await client.patch(f"/v2/orders/{other['id']}", json=change)
        clock.tick(50)
        canceled = await client.patch(f"/v2/orders/{other['id']}", json=change)

    assert first.status_code == 200
    refused = (accepted, pending_replace, replaced, pending_cancel, canceled)
    assert [(a.status_code, a.json()) for a in refused] == [
        (422, not_replaceable(status))
        for status in ("accepted", "pending_replace", "replaced", "pending_cancel", "canceled")
    ]
    assert len(sim.engine.orders) == 3


async def test_unknown_and_other_accounts_orders_are_404(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client, api_client(sim, **OTHER_AUTH) as other:
        theirs = await _placed(other, clock)
        answers = [
            await client.patch("/v2/orders/no-such-order", json={"qty": "1"}),
            await client.patch(f"/v2/orders/{theirs['id']}", json={"qty": "1"}),
        ]
        after = await _order(other, theirs["id"])

    assert [(a.status_code, a.json()) for a in answers] == [(404, NOT_FOUND)] * 2
    assert after == theirs


async def test_client_order_ids_stay_unique(sim: Sim, clock: FakeClock) -> None:
    duplicate = {"code": 40010001, "message": "client_order_id must be unique"}
    async with api_client(sim) as client:
        old = await _placed(client, clock, client_order_id="mine")
        await _placed(client, clock, client_order_id="taken")
        answers = [
            await client.patch(f"/v2/orders/{old['id']}", json={"client_order_id": cid})
            for cid in ("mine", "taken")
        ]

    assert [(a.status_code, a.json()) for a in answers] == [(422, duplicate)] * 2
    assert len(sim.engine.orders) == 2


async def test_a_replace_beyond_buying_power_is_403(clock: FakeClock) -> None:
    sim = make_sim(clock, RecordingSleep(), starting_cash=Decimal(100))
    async with api_client(sim) as client:
        old = await _placed(client, clock, limit_price="5.00")  # 50 held
        refused = await client.patch(f"/v2/orders/{old['id']}", json={"qty": 21})
        allowed = await client.patch(f"/v2/orders/{old['id']}", json={"qty": 20})
        pending = (await client.get("/v2/account")).json()["buying_power"]
        clock.tick(ACKED_MS)
        after = (await client.get("/v2/account")).json()["buying_power"]

    assert refused.status_code == 403
    assert refused.json() == {"code": 40310000, "message": "insufficient buying power"}
    assert allowed.status_code == 200
    assert (pending, after) == ("0.00", "0.00")


async def test_a_pending_replace_order_is_not_cancelable(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        old = await _placed(client, clock)
        new = (await client.patch(f"/v2/orders/{old['id']}", json={"qty": 2})).json()
        one = await client.delete(f"/v2/orders/{old['id']}")
        everything = await client.delete("/v2/orders")
        clock.tick(ACKED_MS + 50)
        finals = [(await _order(client, i))["status"] for i in (old["id"], new["id"])]

    assert (one.status_code, one.json()) == (422, NOT_CANCELABLE)
    assert everything.status_code == 207
    assert sorted(everything.json(), key=lambda entry: entry["status"]) == [
        {"id": new["id"], "status": 200},
        {"id": old["id"], "status": 422, "body": NOT_CANCELABLE},
    ]
    assert finals == ["replaced", "canceled"]


async def test_a_lost_response_still_replaces(
    sim: Sim, clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with api_client(sim) as client:
        old = await _placed(client, clock)
        await client.put("/_sim/faults", json={"next_lose_response": 1, "timeout_s": 2})
        lost = await client.patch(
            f"/v2/orders/{old['id']}", json={"qty": 2, "client_order_id": "lost-r"}
        )
        found = await client.get(
            "/v2/orders:by_client_order_id", params={"client_order_id": "lost-r"}
        )
        clock.tick(ACKED_MS)
        replaced = await _order(client, old["id"])

    assert (lost.status_code, lost.json()) == (
        504,
        {"code": 50400000, "message": "gateway timeout"},
    )
    assert sleep.calls == [2.0]
    assert found.status_code == 200
    assert found.json()["replaces"] == old["id"]
    assert replaced["replaced_by"] == found.json()["id"]
    assert sim.stats.faulted == 1


async def test_the_gate_guards_replaces(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        old = await _placed(client, clock)
        await client.put("/_sim/faults", json={"next_429": 1, "next_5xx": 1})
        limited = await client.patch(f"/v2/orders/{old['id']}", json={"qty": 2})
        unavailable = await client.patch(f"/v2/orders/{old['id']}", json={"qty": 2})
    async with api_client(sim, **{"APCA-API-KEY-ID": "x", "APCA-API-SECRET-KEY": "y"}) as anon:
        unauthorized = await anon.patch(f"/v2/orders/{old['id']}", json={"qty": 2})

    assert (limited.status_code, limited.json()["code"]) == (429, 42910000)
    assert (unavailable.status_code, unavailable.json()["code"]) == (503, 50300000)
    assert (unauthorized.status_code, unauthorized.json()["code"]) == (401, 40110000)
    assert "x-ratelimit-limit" in unauthorized.headers
    assert len(sim.engine.orders) == 1
    assert sim.engine.orders[0].status.value == "new"
