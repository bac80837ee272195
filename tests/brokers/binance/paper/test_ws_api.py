"""The WebSocket API's user data stream in-process, on the fake clock: signing as
documented, unsubscribing, Binance's error objects, and the stream faults on its events."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from brokers.binance.paper.stream import PATH, signature_payload
from brokers.paper.app import create_app
from brokers.paper.state import Sim
from tests.brokers.binance.paper import API_KEY, SECRET, Signer, make_binance_sim
from tests.brokers.paper import FakeClock, RecordingSleep
from tests.brokers.paper.wsclient import AsgiWebSocket, NoMessage

pytestmark = pytest.mark.anyio
RESTING = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
           "quantity": "0.01", "price": "50000.00"}  # fmt: skip


@dataclass
class Api:
    sim: Sim
    clock: FakeClock
    rest: Signer
    sockets: contextlib.AsyncExitStack

    async def connect(self) -> AsgiWebSocket:
        app = create_app(self.sim)
        return await self.sockets.enter_async_context(AsgiWebSocket(app, path=PATH))

    def subscribe(self, key: str = API_KEY, secret: str = SECRET, **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {
            "apiKey": key,
            "timestamp": int(self.clock().timestamp() * 1000),
            **extra,
        }
        payload = signature_payload(params)
        params["signature"] = hmac.new(secret.encode(), payload.encode(),
                                       hashlib.sha256).hexdigest()  # fmt: skip
        return {"id": "sub-1", "method": "userDataStream.subscribe.signature", "params": params}

    async def subscribed(self) -> AsgiWebSocket:
        ws = await self.connect()
        await ws.send_json(self.subscribe())
        assert (await ws.receive_text())["result"] == {"subscriptionId": 0}
        return ws


@pytest.fixture
async def api(clock: FakeClock, sleep: RecordingSleep) -> AsyncIterator[Api]:
    sim = make_binance_sim(clock, sleep)
    transport = httpx.ASGITransport(app=create_app(sim))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://paper.test") as http,
        contextlib.AsyncExitStack() as sockets,
    ):
        yield Api(sim, clock, Signer(http, clock, API_KEY, SECRET), sockets)


def test_the_documented_signature_example_is_signed_over_this_payload() -> None:
    """web-socket-api.md's HMAC example: its payload and signature."""
    params = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
              "quantity": "0.01000000", "price": "52000.00", "newOrderRespType": "ACK",
              "recvWindow": 100, "timestamp": 1645423376532,
              "apiKey": "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
              "signature": "------ FILL ME ------"}  # fmt: skip
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    signature = hmac.new(secret.encode(), signature_payload(params).encode(), hashlib.sha256)
    assert signature.hexdigest() == (
        "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a")  # fmt: skip


async def test_the_answer_carries_the_subscription_and_the_weight(api: Api) -> None:
    ws = await api.connect()
    await ws.send_json(api.subscribe())
    answer = await ws.receive_text()
    await ws.send_json({"id": 7, "method": "session.subscriptions"})
    listed = await ws.receive_text()

    assert {k: answer[k] for k in ("id", "status", "result")} == {
        "id": "sub-1", "status": 200, "result": {"subscriptionId": 0}}  # fmt: skip
    assert answer["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
    assert (listed["id"], listed["result"]) == (7, [{"subscriptionId": 0}])


async def test_refusals_are_binances_error_objects_and_keep_the_connection(api: Api) -> None:
    ws = await api.connect()
    answers = []
    for request in (
        api.subscribe(key="unknownKey01"),
        api.subscribe(secret="wrong"),
        api.subscribe(timestamp=int(api.clock().timestamp() * 1000) - 6000),
        {"id": 1, "method": "userDataStream.subscribe.signature", "params": {"apiKey": API_KEY}},
        {"id": 2, "method": "userDataStream.subscribe"},
        {"id": 3, "method": "no.such.method"},
    ):
        await ws.send_json(request)
        answers.append(await ws.receive_text())
    await ws.send_text("{not json")
    answers.append(await ws.receive_text())
    await ws.send_json(api.subscribe())
    still = await ws.receive_text()

    assert [(a["status"], a["error"]["code"]) for a in answers] == [
        (401, -2015), (400, -1022), (400, -1021), (400, -1102), (401, -1002), (400, -1020),
        (400, -1135)]  # fmt: skip
    assert [a["id"] for a in answers[3:]] == [1, 2, 3, None]
    assert still["status"] == 200


async def test_unsubscribing_ends_the_stream_with_event_stream_terminated(api: Api) -> None:
    ws = await api.subscribed()
    await ws.send_json({"id": "u", "method": "userDataStream.unsubscribe"})
    answer, ended = await ws.receive_text(), await ws.receive_text()
    await api.rest.ok("POST", "/api/v3/order", **RESTING)

    assert (answer["id"], answer["status"], answer["result"]) == ("u", 200, {})
    assert ended["subscriptionId"] == 0
    assert ended["event"]["e"] == "eventStreamTerminated"
    with pytest.raises(NoMessage):
        await ws.receive_text(timeout=0.2)


async def test_a_dropped_event_is_never_sent_and_a_duplicate_twice(api: Api) -> None:
    ws = await api.subscribed()
    api.sim.update_faults({"stream_next_drop": 1, "stream_next_duplicate": 1})
    await api.rest.ok("POST", "/api/v3/order", **RESTING)
    first, second = await ws.receive_text(), await ws.receive_text()

    # The NEW executionReport was dropped; its outboundAccountPosition came twice.
    assert [first["event"]["e"], second["event"]["e"]] == ["outboundAccountPosition"] * 2
    assert first == second
    assert api.sim.binance_stream.stats.dropped == 1
