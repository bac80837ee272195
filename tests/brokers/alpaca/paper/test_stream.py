"""The trade_updates stream over ASGI, in-process: protocol, events, isolation, codecs, and
every stream fault, on the fake clock with the exchange's own driver running."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import msgpack
import pytest
from fastapi import FastAPI

from brokers.paper.app import create_app, drive
from brokers.paper.state import Sim
from tests.brokers.paper import (
    AUTH,
    KEY_ID,
    OTHER_AUTH,
    OTHER_KEY_ID,
    OTHER_SECRET_KEY,
    SECRET_KEY,
    FakeClock,
    RecordingSleep,
    make_sim,
)
from tests.brokers.paper.wsclient import AsgiWebSocket, Closed, NoMessage

pytestmark = pytest.mark.anyio
MARKET = {"symbol": "AAPL", "qty": "10", "side": "buy", "type": "market", "time_in_force": "day"}
RESTING = {**MARKET, "type": "limit", "limit_price": "1.00", "time_in_force": "gtc"}
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
AUTHORIZED = {"stream": "authorization", "data": {"status": "authorized", "action": "authenticate"}}
UNAUTHORIZED = {
    "stream": "authorization",
    "data": {"status": "unauthorized", "action": "authenticate"},
}
LISTENING = {"stream": "listening", "data": {"streams": ["trade_updates"]}}
MSGPACK = {"Content-Type": "application/msgpack"}
FILL_KEYS = {"event", "execution_id", "order", "timestamp", "price", "qty", "position_qty"}


@dataclass
class Exchange:
    sim: Sim
    app: FastAPI
    clock: FakeClock
    http: httpx.AsyncClient
    sockets: contextlib.AsyncExitStack

    async def connect(self, headers: dict[str, str] | None = None) -> AsgiWebSocket:
        """A new connection, closed (if still open) when the test ends."""
        return await self.sockets.enter_async_context(AsgiWebSocket(self.app, headers=headers))

    async def listener(
        self,
        key_id: str = KEY_ID,
        secret_key: str = SECRET_KEY,
        headers: dict[str, str] | None = None,
    ) -> AsgiWebSocket:
        ws = await self.connect(headers)
        assert await ws.authenticate(key_id, secret_key) == AUTHORIZED
        assert await ws.listen("trade_updates") == LISTENING
        return ws

    def tick(self, ms: float) -> None:
        """Move the clock and apply what fell due, as the driver would a moment later."""
        self.clock.tick(ms)
        self.sim.engine.advance()

    async def place(
        self, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        answer = await self.http.post("/v2/orders", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        placed: dict[str, Any] = answer.json()
        return placed

    async def resting(self) -> dict[str, Any]:
        """A buy limit far below the frozen market, acknowledged (its ``new`` is streamed)."""
        placed = await self.place(RESTING)
        self.tick(10)
        return placed

    async def get(self, order_id: str) -> dict[str, Any]:
        found: dict[str, Any] = (await self.http.get(f"/v2/orders/{order_id}")).json()
        return found

    async def faults(self, **fields: object) -> dict[str, Any]:
        answer = await self.http.put("/_sim/faults", json=fields)
        assert answer.status_code == 200, answer.text
        settings: dict[str, Any] = answer.json()
        return settings

    async def figures(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.http.get("/_sim/stream")).json()
        return stats


@pytest.fixture
async def exchange(clock: FakeClock, sleep: RecordingSleep) -> AsyncIterator[Exchange]:
    sim = make_sim(clock, sleep, session_s=0, partial_fill_probability=0.0)
    app = create_app(sim)
    driver = asyncio.create_task(drive(sim))
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://paper.test", headers=AUTH) as http,
        contextlib.AsyncExitStack() as sockets,
    ):
        yield Exchange(sim, app, clock, http, sockets)
    driver.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await driver


# -- protocol ------------------------------------------------------------------------------


async def test_authenticate_and_listen_are_answered_in_binary_json(exchange: Exchange) -> None:
    ws = await exchange.connect()
    await ws.send_json(
        {"action": "authenticate", "data": {"key_id": KEY_ID, "secret_key": SECRET_KEY}}
    )
    raw = await ws.receive_frame()  # binary, or it fails
    await ws.send_json({"action": "listen", "data": {"streams": ["trade_updates"]}}, binary=True)

    assert json.loads(raw) == AUTHORIZED
    assert await ws.receive() == LISTENING


async def test_listen_keeps_known_streams_and_an_empty_list_stops_the_events(
    exchange: Exchange,
) -> None:
    ws = await exchange.connect()
    assert await ws.authenticate(KEY_ID, SECRET_KEY) == AUTHORIZED
    both = await ws.listen("account_updates", "trade_updates", "trade_updates")
    assert both == LISTENING
    assert await ws.listen() == {"stream": "listening", "data": {"streams": []}}

    unheard = await exchange.place(MARKET)
    exchange.tick(1000)  # filled while nobody listened: lost for this client
    assert await ws.listen("trade_updates") == LISTENING
    heard = await exchange.resting()

    first = await ws.event()
    assert (first["event"], first["order"]["id"]) == ("new", heard["id"])
    assert (await exchange.get(unheard["id"]))["status"] == "filled"


async def test_no_events_before_listen(exchange: Exchange) -> None:
    ws = await exchange.connect()
    assert await ws.authenticate(KEY_ID, SECRET_KEY) == AUTHORIZED
    await exchange.resting()
    assert await ws.listen("trade_updates") == LISTENING
    placed = await exchange.resting()

    first = await ws.event()
    assert first["order"]["id"] == placed["id"]


@pytest.mark.parametrize(
    "data",
    [
        {"key_id": KEY_ID, "secret_key": "wrong"},
        {"key_id": "nobody", "secret_key": SECRET_KEY},
        {"key_id": KEY_ID},
        None,
    ],
)
async def test_bad_credentials_are_unauthorized_then_closed(
    exchange: Exchange, data: dict[str, str] | None
) -> None:
    ws = await exchange.connect()
    await ws.send_json({"action": "authenticate", "data": data})

    assert await ws.receive() == UNAUTHORIZED
    closed = await ws.expect_closed()
    assert (closed.code, closed.reason) == (1008, "unauthorized")
    figures = await exchange.figures()
    assert figures["auth"] == {"authorized": 0, "unauthorized": 1, "refused": 0}
    assert figures["disconnects"] == {"unauthorized": 1}
    assert figures["connections"] == []


@pytest.mark.parametrize(
    ("frame", "action"),
    [
        ({"text": json.dumps({"action": "listen", "data": {"streams": []}})}, "listen"),
        ({"text": "not json"}, None),
        ({"text": "[1, 2]"}, None),
        ({"bytes": b"\xff\xfe"}, None),
        ({"text": json.dumps({"data": {}})}, None),
    ],
)  # fmt: skip
async def test_anything_before_authenticate_is_refused_then_closed(
    exchange: Exchange, frame: dict[str, Any], action: str | None
) -> None:
    ws = await exchange.connect()
    if "text" in frame:
        await ws.send_text(frame["text"])
    else:
        await ws.send_bytes(frame["bytes"])

    answer = await ws.receive()
    assert answer["stream"] == "authorization"
    assert answer["data"]["status"] == "unauthorized"
    assert answer["data"]["action"] == action
    assert isinstance(answer["data"]["error"], str)
    assert answer["data"]["error"]
    closed = await ws.expect_closed()
    assert (closed.code, closed.reason) == (1008, "not authenticated")


async def test_a_bad_message_after_authentication_is_answered_and_the_connection_stays(
    exchange: Exchange,
) -> None:
    ws = await exchange.connect()
    assert await ws.authenticate(KEY_ID, SECRET_KEY) == AUTHORIZED
    await ws.send_json({"action": "subscribe", "data": {}})
    unknown = await ws.receive()
    await ws.send_json({"action": "listen", "data": {"streams": "trade_updates"}})
    malformed = await ws.receive()

    assert unknown == {
        "stream": "error",
        "data": {"action": "subscribe", "error": "unknown action 'subscribe'"},
    }
    assert malformed["stream"] == "error"
    assert malformed["data"]["action"] == "listen"
    assert await ws.listen("trade_updates") == LISTENING


# -- events --------------------------------------------------------------------------------


async def test_a_market_order_streams_new_then_its_fills_ending_as_get_shows_it(
    exchange: Exchange,
) -> None:
    await exchange.faults(partial_fill_probability=1.0)
    ws = await exchange.listener()
    placed = await exchange.place({**MARKET, "qty": "12"})
    exchange.tick(1000)

    events = await ws.events_until("fill", placed["id"])
    final = await exchange.get(placed["id"])
    activities = (await exchange.http.get("/v2/account/activities/FILL")).json()
    truth = (await exchange.http.get(f"/_sim/truth/orders/{placed['id']}")).json()

    kinds = [e["event"] for e in events]
    assert kinds == ["new", *["partial_fill"] * (len(kinds) - 2), "fill"]
    assert len(kinds) >= 3
    assert events[-1]["order"] == final
    new, fills = events[0], events[1:]
    assert set(new) == {"event", "execution_id", "order", "timestamp"}
    assert new["order"]["status"] == "new"
    assert new["timestamp"] == new["order"]["updated_at"]
    assert all(set(e) == FILL_KEYS for e in fills)
    cumulative = Decimal(0)
    for event in fills:
        cumulative += Decimal(event["qty"])
        assert Decimal(event["order"]["filled_qty"]) == cumulative
        assert Decimal(event["position_qty"]) == cumulative
        assert event["timestamp"] == event["order"]["updated_at"]
    assert cumulative == 12
    assert [e["timestamp"] for e in fills] == [f["time"] for f in truth["fills"]]
    assert [(e["qty"], e["price"]) for e in fills] == [
        (f["qty"], f["price"]) for f in truth["fills"]
    ]
    ids = [e["execution_id"] for e in events]
    assert all(UUID4.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert not set(ids) & {a["id"] for a in activities}  # no relation to FILL activity ids


async def test_fills_reach_the_stream_with_no_request_made(exchange: Exchange) -> None:
    ws = await exchange.listener()
    placed = await exchange.place(MARKET)
    exchange.clock.tick(1000)  # only the exchange's driver sees the time move

    events = await ws.events_until("fill", placed["id"])

    assert [e["event"] for e in events] == ["new", "fill"]


async def test_a_replace_streams_both_orders_as_get_shows_them_at_each_moment(
    exchange: Exchange,
) -> None:
    ws = await exchange.listener()
    old = await exchange.resting()
    patched = await exchange.http.patch(f"/v2/orders/{old['id']}", json={"limit_price": "1.50"})
    new_id = patched.json()["id"]
    pending = await exchange.get(old["id"])
    exchange.tick(10)

    events = await ws.events_until("new", new_id)

    assert [(e["event"], e["order"]["id"]) for e in events] == [
        ("new", old["id"]),
        ("pending_replace", old["id"]),
        ("replaced", old["id"]),
        ("new", new_id),
    ]
    assert events[1]["order"] == pending
    assert events[2]["order"] == await exchange.get(old["id"])
    assert events[2]["order"]["replaced_by"] == new_id
    assert events[3]["order"] == await exchange.get(new_id)
    assert events[3]["order"]["replaces"] == old["id"]


async def test_a_refused_cancel_of_a_pending_replace_order_is_streamed(
    exchange: Exchange,
) -> None:
    ws = await exchange.listener()
    old = await exchange.resting()
    await exchange.http.patch(f"/v2/orders/{old['id']}", json={"qty": "3"})
    refused = await exchange.http.delete(f"/v2/orders/{old['id']}")

    events = await ws.events_until("order_cancel_rejected")

    assert refused.status_code == 422
    assert [e["event"] for e in events] == ["new", "pending_replace", "order_cancel_rejected"]
    assert events[-1]["order"]["status"] == "pending_replace"


async def test_msgpack_frames_when_the_handshake_asks_for_them(exchange: Exchange) -> None:
    ws = await exchange.connect(MSGPACK)
    assert await ws.authenticate(KEY_ID, SECRET_KEY) == AUTHORIZED  # sent as msgpack
    await ws.send_json({"action": "listen", "data": {"streams": ["trade_updates"]}})  # text
    raw = await ws.receive_frame()
    placed = await exchange.place(MARKET)
    exchange.tick(1000)

    events = await ws.events_until("fill", placed["id"])

    assert msgpack.unpackb(raw, raw=False) == LISTENING
    with pytest.raises(ValueError, match="utf-8"):
        json.loads(raw)
    assert events[-1]["order"] == await exchange.get(placed["id"])
    assert (await exchange.figures())["connections"][0]["codec"] == "msgpack"


async def test_binary_json_is_refused_on_a_msgpack_connection(exchange: Exchange) -> None:
    ws = await exchange.connect(MSGPACK)
    message = {"action": "authenticate", "data": {"key_id": KEY_ID, "secret_key": SECRET_KEY}}
    await ws.send_json(message, binary=True)

    answer = await ws.receive()

    assert answer["data"]["status"] == "unauthorized"
    assert answer["data"]["error"] == "unreadable msgpack"
    assert (await ws.expect_closed()).code == 1008


async def test_events_go_only_to_the_orders_own_account(exchange: Exchange) -> None:
    mine = await exchange.listener()
    theirs = await exchange.listener(OTHER_KEY_ID, OTHER_SECRET_KEY)
    their_order = await exchange.place(MARKET, headers=OTHER_AUTH)
    exchange.tick(1000)
    their_events = await theirs.events_until("fill", their_order["id"])
    my_order = await exchange.resting()

    first = await mine.event()

    assert first["order"]["id"] == my_order["id"]
    assert {e["order"]["id"] for e in their_events} == {their_order["id"]}
    assert [e["event"] for e in their_events] == ["new", "fill"]


async def test_each_listening_connection_of_the_account_gets_the_same_event(
    exchange: Exchange,
) -> None:
    first = await exchange.listener()
    second = await exchange.listener(headers=MSGPACK)
    await exchange.resting()

    one, other = await first.event(), await second.event()

    assert one == other
    assert (await exchange.figures())["messages"]["events"] == 2


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [{"stream_p_drop": 1.0}, {"stream_next_drop": 1}])
async def test_a_dropped_event_never_arrives(exchange: Exchange, fault: dict[str, Any]) -> None:
    ws = await exchange.listener()
    await exchange.faults(**fault)
    placed = await exchange.resting()  # its "new" is dropped
    await exchange.faults(stream_p_drop=0.0, stream_next_drop=0)
    await exchange.http.delete(f"/v2/orders/{placed['id']}")
    exchange.tick(100)

    events = await ws.events_until("canceled")

    assert [e["event"] for e in events] == ["pending_cancel", "canceled"]
    assert (await exchange.figures())["messages"]["dropped"] == 1


async def test_stream_p_drop_drops_every_event_while_on(exchange: Exchange) -> None:
    ws = await exchange.listener()
    await exchange.faults(stream_p_drop=1.0)
    for _ in range(3):
        await exchange.resting()
    await exchange.faults(stream_p_drop=0.0)
    last = await exchange.resting()

    first = await ws.event()

    assert first["order"]["id"] == last["id"]
    assert (await exchange.figures())["messages"]["dropped"] == 3


@pytest.mark.parametrize(
    ("fault", "expected", "duplicated"),
    [
        ({"stream_p_duplicate": 1.0}, ["new", "new", "pending_cancel", "pending_cancel"], 3),
        ({"stream_next_duplicate": 1}, ["new", "new", "pending_cancel", "canceled"], 1),
    ],
)
async def test_a_duplicated_event_arrives_twice_with_one_execution_id(
    exchange: Exchange, fault: dict[str, Any], expected: list[str], duplicated: int
) -> None:
    ws = await exchange.listener()
    await exchange.faults(**fault)
    placed = await exchange.resting()
    await exchange.http.delete(f"/v2/orders/{placed['id']}")
    exchange.tick(100)

    events = [await ws.event() for _ in range(4)]

    assert [e["event"] for e in events] == expected
    assert events[0] == events[1]
    assert (await exchange.figures())["messages"]["duplicated"] == duplicated


async def test_stream_p_reorder_sends_each_held_message_after_the_next(
    exchange: Exchange,
) -> None:
    ws = await exchange.listener()
    await exchange.faults(stream_p_reorder=1.0)
    first = await exchange.resting()  # "new" held back
    await exchange.http.delete(f"/v2/orders/{first['id']}")  # sent, then the held "new"
    exchange.tick(100)  # "canceled" held back: nothing follows it yet
    second = await exchange.resting()  # its "new" goes, then "canceled"

    events = [await ws.event() for _ in range(4)]

    assert [(e["event"], e["order"]["id"]) for e in events] == [
        ("pending_cancel", first["id"]),
        ("new", first["id"]),
        ("new", second["id"]),
        ("canceled", first["id"]),
    ]
    assert (await exchange.figures())["messages"]["reordered"] == 2


async def test_stream_next_reorder_swaps_one_pair(exchange: Exchange) -> None:
    ws = await exchange.listener()
    await exchange.faults(stream_next_reorder=1)
    placed = await exchange.resting()
    await exchange.http.delete(f"/v2/orders/{placed['id']}")
    exchange.tick(100)

    events = [await ws.event() for _ in range(3)]

    assert [e["event"] for e in events] == ["pending_cancel", "new", "canceled"]


async def test_stream_next_disconnect_counts_one_per_connection_closed(
    exchange: Exchange,
) -> None:
    await exchange.faults(stream_next_disconnect=2)
    for _ in range(2):
        ws = await exchange.listener()  # answers are never faulted
        await exchange.resting()
        closed = await ws.expect_closed()
        assert closed.code == 1006  # abrupt: no close frame
    left = (await exchange.http.get("/_sim/faults")).json()["stream_next_disconnect"]
    ws = await exchange.listener()
    placed = await exchange.resting()

    assert left == 0
    assert (await ws.event())["order"]["id"] == placed["id"]
    figures = await exchange.figures()
    assert figures["disconnects"] == {"fault": 2}
    assert len(figures["connections"]) == 1


async def test_stream_next_disconnect_closes_only_the_next_connection_to_send(
    exchange: Exchange,
) -> None:
    one = await exchange.listener()
    two = await exchange.listener()
    await exchange.faults(stream_next_disconnect=1)
    placed = await exchange.resting()

    outcomes: list[int | str] = []
    for ws in (one, two):
        try:
            outcomes.append((await ws.event())["order"]["id"])
        except Closed as closed:
            outcomes.append(closed.code)

    assert sorted(outcomes, key=str) == sorted([1006, placed["id"]], key=str)


async def test_stream_p_disconnect_closes_at_the_first_event(exchange: Exchange) -> None:
    await exchange.faults(stream_p_disconnect=1.0)
    ws = await exchange.listener()
    await exchange.resting()

    assert (await ws.expect_closed()).code == 1006


async def test_a_stall_holds_messages_while_the_connection_stays_open(
    exchange: Exchange,
) -> None:
    ws = await exchange.listener()
    await exchange.faults(stream_next_stall=1, stream_stall_ms=[1000, 1000])
    started = time.monotonic()
    placed = await exchange.resting()
    await exchange.http.delete(f"/v2/orders/{placed['id']}")  # queued behind the stall

    with pytest.raises(NoMessage):
        await ws.receive(timeout=0.2)
    during = await exchange.figures()
    events = [await ws.event(), await ws.event()]

    assert time.monotonic() - started >= 1.0
    assert [e["event"] for e in events] == ["new", "pending_cancel"]
    assert len(during["connections"]) == 1
    assert during["connections"][0]["queued"] == 1  # pending_cancel waits behind "new"
    assert during["messages"]["stalled"] == 1
    assert (await exchange.figures())["disconnects"] == {}


async def test_stream_next_refuse_auth_refuses_valid_credentials(exchange: Exchange) -> None:
    await exchange.faults(stream_next_refuse_auth=1)
    refused = await exchange.connect()
    assert await refused.authenticate(KEY_ID, SECRET_KEY) == UNAUTHORIZED
    assert (await refused.expect_closed()).code == 1008

    await exchange.listener()  # the next one is let in

    figures = await exchange.figures()
    assert figures["auth"] == {"authorized": 1, "unauthorized": 1, "refused": 1}


async def test_wrong_credentials_do_not_use_up_refuse_auth(exchange: Exchange) -> None:
    await exchange.faults(stream_next_refuse_auth=1)
    wrong = await exchange.connect()
    assert await wrong.authenticate(KEY_ID, "wrong") == UNAUTHORIZED

    assert (await exchange.http.get("/_sim/faults")).json()["stream_next_refuse_auth"] == 1


async def test_a_slow_consumer_is_closed_with_1008(exchange: Exchange) -> None:
    ws = await exchange.listener()
    await exchange.faults(stream_max_queue=3, stream_next_stall=1, stream_stall_ms=[60000, 60000])
    for _ in range(5):  # the first is stalled in the writer; four wait: more than 3
        await exchange.place(RESTING)
    exchange.tick(10)

    closed = await ws.expect_closed()

    assert (closed.code, closed.reason) == (1008, "slow consumer: more than 3 unsent messages")
    assert (await exchange.figures())["disconnects"] == {"slow_consumer": 1}


async def test_control_disconnect_closes_every_connection_abruptly(exchange: Exchange) -> None:
    sockets = [await exchange.listener(), await exchange.listener(OTHER_KEY_ID, OTHER_SECRET_KEY)]

    answer = await exchange.http.post("/_sim/stream/disconnect")

    assert answer.json() == {"disconnected": 2}
    assert [(await ws.expect_closed()).code for ws in sockets] == [1006, 1006]
    assert (await exchange.figures())["disconnects"] == {"control": 2}


async def test_control_disconnect_with_a_code_sends_a_close_frame(exchange: Exchange) -> None:
    ws = await exchange.listener()

    answer = await exchange.http.post("/_sim/stream/disconnect", params={"code": 1001})
    refused = await exchange.http.post("/_sim/stream/disconnect", params={"code": 999})

    assert answer.json() == {"disconnected": 1}
    closed = await ws.expect_closed()
    assert (closed.code, closed.reason) == (1001, "disconnected by /_sim/stream/disconnect")
    assert refused.status_code == 422


async def test_a_reset_closes_every_connection_with_1012(exchange: Exchange) -> None:
    ws = await exchange.listener()

    await exchange.http.post("/_sim/reset")

    assert (await ws.expect_closed()).code == 1012
    figures = await exchange.figures()
    assert (figures["opened"], figures["disconnects"]) == (0, {})


async def test_the_stream_figures(exchange: Exchange) -> None:
    ws = await exchange.listener()
    quiet = await exchange.connect(MSGPACK)
    await exchange.faults(stream_next_duplicate=1)
    await exchange.resting()
    await ws.event()
    await ws.event()

    figures = await exchange.figures()

    assert figures["connections"] == [
        {"id": 1, "account": KEY_ID, "streams": ["trade_updates"], "codec": "json",
         "queued": 0, "sent": 4},
        {"id": 2, "account": None, "streams": [], "codec": "msgpack", "queued": 0, "sent": 0},
    ]  # fmt: skip
    assert figures["opened"] == 2
    assert figures["messages"] == {
        "events": 1,
        "sent": 4,
        "dropped": 0,
        "duplicated": 1,
        "reordered": 0,
        "stalled": 0,
    }
    await quiet.close()
    await ws.close()
    assert (await exchange.figures())["disconnects"] == {"client": 2}


async def test_faults_are_refused_when_out_of_range(exchange: Exchange) -> None:
    bad = [
        {"stream_p_drop": 1.5},
        {"stream_next_disconnect": -1},
        {"stream_stall_ms": [500, 100]},
        {"stream_max_queue": 0},
        {"stream_p_everything": 1.0},
    ]
    answers = [await exchange.http.put("/_sim/faults", json=fields) for fields in bad]

    assert [a.status_code for a in answers] == [422] * len(bad)


async def _received_with_drops(clock: FakeClock, sleep: RecordingSleep) -> list[tuple[str, str]]:
    """Sixteen acknowledgements through p_drop 0.5, then a marker: what got through."""
    sim = make_sim(clock, sleep, session_s=0, partial_fill_probability=0.0)
    app = create_app(sim)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://paper.test", headers=AUTH) as http,
        AsgiWebSocket(app) as ws,
    ):
        assert await ws.authenticate(KEY_ID, SECRET_KEY) == AUTHORIZED
        assert await ws.listen("trade_updates") == LISTENING
        await http.put("/_sim/faults", json={"stream_p_drop": 0.5})
        for n in range(16):
            await http.post("/v2/orders", json={**RESTING, "client_order_id": f"o-{n}"})
            clock.tick(10)
            sim.engine.advance()
        await http.put("/_sim/faults", json={"stream_p_drop": 0.0})
        await http.post("/v2/orders", json={**RESTING, "client_order_id": "marker"})
        clock.tick(10)
        sim.engine.advance()
        events = await ws.events_until("new")
        while events[-1]["order"]["client_order_id"] != "marker":
            events.append(await ws.event())
    return [(e["order"]["client_order_id"], e["execution_id"]) for e in events]


async def test_fault_decisions_and_execution_ids_follow_the_seed(sleep: RecordingSleep) -> None:
    first = await _received_with_drops(FakeClock(), sleep)
    second = await _received_with_drops(FakeClock(), sleep)

    assert first == second
    assert 1 < len(first) < 17
