"""The trade_updates stream of a real exchange process over real sockets (uvicorn), with the
``websockets`` client: what goes over the wire — binary frames, MessagePack, a close with no
close frame."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import msgpack
import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.sync.client import ClientConnection, connect

from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration
DEADLINE_S = 10.0
MARKET = {"symbol": "AAPL", "qty": "4", "side": "buy", "type": "market", "time_in_force": "day"}
RESTING = {**MARKET, "type": "limit", "limit_price": "1.00", "time_in_force": "gtc"}


@pytest.fixture
def client(paper_exchange: PaperExchange) -> Iterator[httpx.Client]:
    paper_exchange.freeze_market()
    paper_exchange.set_price("AAPL", "190.00")
    with httpx.Client(
        base_url=paper_exchange.base_url, headers=paper_exchange.headers, timeout=10
    ) as client:
        yield client


def _open(
    paper_exchange: PaperExchange, *, packed: bool = False
) -> Iterator[tuple[ClientConnection, Any]]:
    """A connection authenticated and listening, and the decoder of its frames."""
    headers = {"Content-Type": "application/msgpack"} if packed else {}
    with connect(paper_exchange.stream_url, additional_headers=headers) as ws:

        def decode(frame: bytes | str) -> Any:
            assert isinstance(frame, bytes), f"a text frame: {frame!r}"
            return msgpack.unpackb(frame, raw=False) if packed else json.loads(frame)

        def send(message: dict[str, Any]) -> None:
            ws.send(msgpack.packb(message) if packed else json.dumps(message))

        key = {"key_id": paper_exchange.key_id, "secret_key": paper_exchange.secret_key}
        send({"action": "authenticate", "data": key})
        assert decode(ws.recv(DEADLINE_S))["data"]["status"] == "authorized"
        send({"action": "listen", "data": {"streams": ["trade_updates"]}})
        assert decode(ws.recv(DEADLINE_S)) == {
            "stream": "listening",
            "data": {"streams": ["trade_updates"]},
        }
        yield ws, decode


@pytest.fixture
def stream(paper_exchange: PaperExchange) -> Iterator[tuple[ClientConnection, Any]]:
    yield from _open(paper_exchange)


@pytest.fixture
def packed_stream(paper_exchange: PaperExchange) -> Iterator[tuple[ClientConnection, Any]]:
    yield from _open(paper_exchange, packed=True)


def _until_fill(ws: ClientConnection, decode: Any, order_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        message = decode(ws.recv(DEADLINE_S))
        assert message["stream"] == "trade_updates"
        events.append(message["data"])
        if message["data"]["event"] == "fill" and message["data"]["order"]["id"] == order_id:
            return events


def test_a_fill_arrives_in_binary_json_frames(
    paper_exchange: PaperExchange, client: httpx.Client, stream: tuple[ClientConnection, Any]
) -> None:
    ws, decode = stream
    placed = client.post("/v2/orders", json=MARKET).raise_for_status().json()

    events = _until_fill(ws, decode, placed["id"])

    assert events[0]["event"] == "new"
    assert events[-1]["order"] == client.get(f"/v2/orders/{placed['id']}").json()
    assert events[-1]["position_qty"] == "4"
    assert events[-1]["order"]["status"] == "filled"


def test_msgpack_over_the_wire(
    paper_exchange: PaperExchange,
    client: httpx.Client,
    packed_stream: tuple[ClientConnection, Any],
) -> None:
    ws, decode = packed_stream
    placed = client.post("/v2/orders", json=MARKET).raise_for_status().json()

    events = _until_fill(ws, decode, placed["id"])

    assert events[-1]["order"] == client.get(f"/v2/orders/{placed['id']}").json()
    assert paper_exchange.stream_stats()["connections"][0]["codec"] == "msgpack"


def test_control_disconnect_closes_the_socket_without_a_close_frame(
    paper_exchange: PaperExchange, stream: tuple[ClientConnection, Any]
) -> None:
    ws, _ = stream

    assert paper_exchange.disconnect_streams() == 1
    with pytest.raises(ConnectionClosedError) as closed:
        ws.recv(DEADLINE_S)

    assert closed.value.rcvd is None  # no close frame: the client sees 1006
    paper_exchange.wait_for(lambda: paper_exchange.stream_stats()["connections"] == [])
    assert paper_exchange.stream_stats()["disconnects"] == {"control": 1}


def test_a_disconnect_fault_closes_the_socket_at_the_next_event(
    paper_exchange: PaperExchange, client: httpx.Client, stream: tuple[ClientConnection, Any]
) -> None:
    ws, _ = stream
    paper_exchange.set_faults(stream_next_disconnect=1)
    client.post("/v2/orders", json=RESTING).raise_for_status()

    with pytest.raises(ConnectionClosedError) as closed:
        ws.recv(DEADLINE_S)

    assert closed.value.rcvd is None


def test_a_slow_consumer_gets_a_1008_close_frame(
    paper_exchange: PaperExchange, client: httpx.Client, stream: tuple[ClientConnection, Any]
) -> None:
    ws, _ = stream
    paper_exchange.set_faults(
        stream_max_queue=2, stream_next_stall=1, stream_stall_ms=[30000, 30000]
    )
    for _ in range(4):
        client.post("/v2/orders", json=RESTING).raise_for_status()

    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(DEADLINE_S)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason == "slow consumer: more than 2 unsent messages"
