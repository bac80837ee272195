"""Order classes over ASGI: a bracket's answer with its legs, reading them back by id and in
listings (flat, or nested under their parent), ground truth linking them, cancels, and the
refusals in Alpaca's error shape."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from brokers.paper.state import Sim
from tests.brokers.paper import FakeClock, RecordingSleep, api_client, make_sim

pytestmark = pytest.mark.anyio
ACKED_MS = 10  # beyond the ack delay (at most 5 ms)
SETTLED_MS = 1000  # beyond every fill and cancel delay
# AAPL is set to 95.00: the entry rests at 90.00 until the test fills it, and then the
# take-profit at 100.00 rests too, as does the stop-loss at 85.00.
BRACKET = {
    "symbol": "AAPL",
    "qty": "10",
    "side": "buy",
    "type": "limit",
    "limit_price": "90.00",
    "time_in_force": "gtc",
    "order_class": "bracket",
    "take_profit": {"limit_price": "100"},
    "stop_loss": {"stop_price": "85", "limit_price": "84.5"},
}
NOT_CANCELABLE = {"code": 42210000, "message": "order is not cancelable"}


@pytest.fixture
def sim(clock: FakeClock, sleep: RecordingSleep) -> Sim:
    made = make_sim(clock, sleep)
    made.engine.set_price("AAPL", Decimal("95.00"))
    return made


async def _json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def _placed(client: httpx.AsyncClient, **body: object) -> dict[str, Any]:
    placed: dict[str, Any] = await _json(await client.post("/v2/orders", json={**BRACKET, **body}))
    return placed


async def test_a_bracket_answers_with_its_held_legs_as_whole_orders(sim: Sim) -> None:
    async with api_client(sim) as client:
        body = await _placed(client, client_order_id="entry-1")
        simple = await _json(
            await client.post("/v2/orders", json={**BRACKET, "order_class": None, "qty": "1"})
        )

    assert (body["order_class"], body["status"], body["client_order_id"]) == (
        "bracket",
        "accepted",
        "entry-1",
    )
    take_profit, stop_loss = body["legs"]
    for leg in (take_profit, stop_loss):
        assert set(leg) == set(body)
        assert leg["legs"] is None
        assert (leg["order_class"], leg["status"], leg["side"]) == ("bracket", "held", "sell")
        assert (leg["symbol"], leg["qty"], leg["filled_qty"], leg["time_in_force"]) == (
            "AAPL",
            "10",
            "0",
            "gtc",
        )
        assert leg["created_at"] == leg["submitted_at"] == body["created_at"]
        assert leg["replaces"] is leg["replaced_by"] is None
    assert len({body["id"], take_profit["id"], stop_loss["id"]}) == 3
    assert len({o["client_order_id"] for o in (body, take_profit, stop_loss)}) == 3
    assert (take_profit["type"], take_profit["limit_price"], take_profit["stop_price"]) == (
        "limit",
        "100.00",
        None,
    )
    assert (stop_loss["type"], stop_loss["stop_price"], stop_loss["limit_price"]) == (
        "stop_limit",
        "85.00",
        "84.50",
    )
    # A simple order ignores take_profit and stop_loss, as before order classes existed.
    assert (simple["order_class"], simple["legs"]) == ("simple", None)


async def test_legs_read_back_by_id_and_in_listings_flat_or_nested(
    sim: Sim, clock: FakeClock
) -> None:
    async with api_client(sim) as client:
        body = await _placed(client, client_order_id="entry-2")
        clock.tick(ACKED_MS)
        by_id = await _json(await client.get(f"/v2/orders/{body['id']}"))
        by_cid = await _json(
            await client.get(
                "/v2/orders:by_client_order_id",
                params={"client_order_id": "entry-2", "nested": "true"},
            )
        )
        leg = await _json(await client.get(f"/v2/orders/{body['legs'][1]['id']}"))
        flat = await _json(
            await client.get("/v2/orders", params={"direction": "asc", "status": "all"})
        )
        open_only = await _json(await client.get("/v2/orders", params={"direction": "asc"}))
        nested = await _json(await client.get("/v2/orders", params={"nested": "true"}))
        truth = (await _json(await client.get("/_sim/truth")))["orders"]

    leg_ids = [o["id"] for o in body["legs"]]
    assert by_id == by_cid
    assert (by_id["status"], [o["id"] for o in by_id["legs"]]) == ("new", leg_ids)
    assert [o["status"] for o in by_id["legs"]] == ["held", "held"]
    assert (leg["id"], leg["legs"], leg["status"]) == (leg_ids[1], None, "held")
    # Flat (the default) with status=all: every order, held legs too, each on its own, by
    # submitted_at: the legs' is their creation, the entry's its routing a moment later.
    # status=open leaves held legs out, as Alpaca does.
    assert [o["id"] for o in flat] == [*leg_ids, body["id"]]
    assert [o["id"] for o in open_only] == [body["id"]]
    assert [o["submitted_at"] for o in flat] == sorted(o["submitted_at"] for o in flat)
    assert [o["legs"] for o in flat] == [None, None, None]
    assert [o["id"] for o in nested] == [body["id"]]
    assert [o["id"] for o in nested[0]["legs"]] == leg_ids
    # Ground truth lists the legs as orders of their own, linked both ways.
    assert [(o["id"], o["parent_id"], o["leg_ids"]) for o in truth] == [
        (body["id"], None, leg_ids),
        (leg_ids[0], body["id"], []),
        (leg_ids[1], body["id"], []),
    ]


async def test_the_entry_fill_activates_the_take_profit_and_its_fill_cancels_the_stop_loss(
    sim: Sim, clock: FakeClock
) -> None:
    async with api_client(sim) as client:
        body = await _placed(client)
        clock.tick(ACKED_MS)
        await _json(await client.post(f"/_sim/orders/{body['id']}/fill", json={}))
        active = await _json(await client.get(f"/v2/orders/{body['id']}"))
        open_now = await _json(await client.get("/v2/orders", params={"direction": "asc"}))
        nested_open = await _json(await client.get("/v2/orders", params={"nested": "true"}))
        take_profit_id = body["legs"][0]["id"]
        await _json(await client.post(f"/_sim/orders/{take_profit_id}/fill", json={}))
        done = await _json(await client.get(f"/v2/orders/{body['id']}"))
        position = await client.get("/v2/positions/AAPL")

    assert active["status"] == "filled"
    assert [o["status"] for o in active["legs"]] == ["new", "held"]
    assert [o["id"] for o in open_now] == [body["legs"][0]["id"]]  # the held one is not open
    # Nested, the status filter is the parent's, as Alpaca's: a filled entry is not open.
    assert nested_open == []
    assert [o["status"] for o in done["legs"]] == ["filled", "canceled"]
    assert done["legs"][1]["canceled_at"] is not None
    assert position.status_code == 404  # flat again


async def test_canceling_the_entry_cancels_its_legs_and_a_held_leg_alone_is_refused(
    sim: Sim, clock: FakeClock
) -> None:
    async with api_client(sim) as client:
        body = await _placed(client)
        clock.tick(ACKED_MS)
        refused = await client.delete(f"/v2/orders/{body['legs'][0]['id']}")
        canceled = await client.delete(f"/v2/orders/{body['id']}")
        clock.tick(SETTLED_MS)
        after = await _json(await client.get(f"/v2/orders/{body['id']}"))
        still_open = await _json(await client.get("/v2/orders"))

    assert (refused.status_code, refused.json()) == (422, NOT_CANCELABLE)
    assert canceled.status_code == 204
    assert after["status"] == "canceled"
    assert [o["status"] for o in after["legs"]] == ["canceled", "canceled"]
    assert still_open == []


async def test_an_oco_is_its_take_profit_with_the_stop_loss_as_its_leg(
    sim: Sim, clock: FakeClock
) -> None:
    async with api_client(sim) as client:
        long = {"symbol": "AAPL", "qty": "10", "side": "buy", "type": "market"}
        await _json(await client.post("/v2/orders", json={**long, "time_in_force": "day"}))
        clock.tick(SETTLED_MS)
        oco = await _json(
            await client.post(
                "/v2/orders",
                json={
                    "symbol": "AAPL",
                    "qty": "10",
                    "side": "sell",
                    "type": "limit",
                    "time_in_force": "gtc",
                    "order_class": "oco",
                    "take_profit": {"limit_price": "110"},
                    "stop_loss": {"stop_price": "90"},
                },
            )
        )

    assert (oco["order_class"], oco["type"], oco["limit_price"], oco["side"]) == (
        "oco",
        "limit",
        "110.00",
        "sell",
    )
    (stop_loss,) = oco["legs"]
    assert (stop_loss["type"], stop_loss["stop_price"], stop_loss["side"]) == (
        "stop",
        "90.00",
        "sell",
    )
    assert (stop_loss["status"], stop_loss["order_class"]) == ("held", "oco")


async def test_legs_cannot_be_replaced(sim: Sim, clock: FakeClock) -> None:
    async with api_client(sim) as client:
        body = await _placed(client)
        clock.tick(ACKED_MS)
        answers = [
            await client.patch(f"/v2/orders/{order_id}", json={"qty": "5"})
            for order_id in (body["id"], body["legs"][0]["id"])
        ]

    for answer in answers:
        assert answer.status_code == 422
        assert answer.json() == {
            "code": 42210000,
            "message": "order is not replaceable: bracket orders and their legs cannot be "
            "replaced here; cancel and place a new order",
        }


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"take_profit": None}, 40010001, "bracket orders require take_profit.limit_price"),
        ({"stop_loss": {}}, 40010001, "bracket orders require stop_loss.stop_price"),
        (
            {"type": "stop", "stop_price": "120"},
            40010001,
            "bracket orders must be market or limit orders",
        ),
        ({"time_in_force": "ioc"}, 40010001, "bracket orders must be day or gtc orders"),
        ({"qty": "1.5"}, 40010001, "fractional orders must be simple orders"),
        (
            {"order_class": "oto"},
            40010001,
            "oto orders take one of take_profit or stop_loss (both: bracket)",
        ),
        (
            {"order_class": "oto", "take_profit": None, "stop_loss": None},
            40010001,
            "oto orders require either take_profit or stop_loss",
        ),
        ({"order_class": "oco", "type": "market"}, 40010001, "oco orders must be limit orders"),
        (
            {"take_profit": {"limit_price": "-1"}},
            40010001,
            "take_profit.limit_price must be a positive decimal",
        ),
    ],
)
async def test_bodies_alpaca_refuses_are_422_and_place_nothing(
    sim: Sim, change: dict[str, object], code: int, message: str
) -> None:
    body = {key: value for key, value in {**BRACKET, **change}.items() if value is not None}
    async with api_client(sim) as client:
        answer = await client.post("/v2/orders", json=body)
        truth = (await _json(await client.get("/_sim/truth")))["orders"]

    assert answer.status_code == 422
    assert answer.json() == {"code": code, "message": message}
    assert truth == []


async def test_an_unknown_order_class_is_refused(sim: Sim) -> None:
    async with api_client(sim) as client:
        answer = await client.post("/v2/orders", json={**BRACKET, "order_class": "otoco"})

    assert answer.status_code == 422
    assert answer.json()["code"] == 40010001
    assert answer.json()["message"].startswith("order_class: Input should be")


@pytest.mark.parametrize(
    ("change", "message", "base_price"),
    [
        ({"take_profit": {"limit_price": "90"}}, "take_profit.limit_price must be >= ", "90"),
        ({"stop_loss": {"stop_price": "90"}}, "stop_loss.stop_price must be <= ", "90"),
        (
            {"side": "sell", "type": "market", "limit_price": None},
            "take_profit.limit_price must be <= ",
            "95",
        ),
    ],
)
async def test_exit_prices_on_the_wrong_side_of_the_base_price_are_refused(
    sim: Sim, change: dict[str, object], message: str, base_price: str
) -> None:
    body = {key: value for key, value in {**BRACKET, **change}.items() if value is not None}
    async with api_client(sim) as client:
        answer = await client.post("/v2/orders", json=body)
        truth = (await _json(await client.get("/_sim/truth")))["orders"]

    assert answer.status_code == 422
    found = answer.json()
    assert (found["code"], found["base_price"]) == (42210000, base_price)
    assert found["message"].startswith(message)
    assert found["message"].endswith("0.01")
    assert truth == []


async def test_only_simple_orders_can_be_seeded(sim: Sim) -> None:
    async with api_client(sim) as client:
        answer = await client.post(
            "/_sim/orders/bulk", params={"account": "unit-key"}, json={"orders": [BRACKET]}
        )

    assert answer.status_code == 422
    assert answer.json()["message"] == "orders[0]: only simple orders can be seeded"
