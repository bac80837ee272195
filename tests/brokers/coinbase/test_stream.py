"""The ``user`` channel client against a local WebSocket server playing Coinbase: the
subscription it sends (a JWT without ``uri``, checked with the key's public key), events in
order, frames before the acknowledgement kept, lost messages and refusals reported."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import jwt
import pytest
from websockets.sync.server import ServerConnection, serve

from brokers.base import Unreadable
from brokers.coinbase.stream import CoinbaseStream, stream_url
from brokers.errors import AuthenticationFailed, BrokerUnavailable
from core.enums import OrderStatus
from core.reports import StreamEvent
from tests.brokers.coinbase.test_adapter import KEY, PEM
from tests.brokers.coinbase.test_stream_parse import STREAM_ORDER

KEY_NAME = "organizations/o/apiKeys/k"
Script = Callable[[ServerConnection, list[dict[str, Any]]], None]


def _envelope(channel: str, sequence: int, events: list[dict[str, Any]]) -> str:
    return json.dumps({"channel": channel, "client_id": "", "timestamp": "2024-06-21T18:30:00Z",
                       "sequence_num": sequence, "events": events})  # fmt: skip


def _ack(sequence: int) -> str:
    channels = {"user": ["u-1"], "heartbeats": ["heartbeats"]}
    return _envelope("subscriptions", sequence, [{"subscriptions": channels}])


def _heartbeat(sequence: int) -> str:
    return _envelope("heartbeats", sequence, [{"current_time": "now", "heartbeat_counter": 1}])


def _user(sequence: int, kind: str, **changes: str) -> str:
    order = {**copy.deepcopy(STREAM_ORDER), **changes}
    return _envelope("user", sequence, [{"type": kind, "orders": [order]}])


@pytest.fixture
def venue() -> Iterator[Callable[[Script], tuple[str, list[dict[str, Any]]]]]:
    """Starts a server running ``script`` on each connection after reading the two
    subscriptions; returns its URL and the subscriptions it received."""
    servers = []

    def start(script: Script) -> tuple[str, list[dict[str, Any]]]:
        received: list[dict[str, Any]] = []

        def handler(connection: ServerConnection) -> None:
            for _ in range(2):
                received.append(json.loads(connection.recv(timeout=5)))
            script(connection, received)

        server = serve(handler, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"ws://127.0.0.1:{server.socket.getsockname()[1]}", received

    yield start
    for server in servers:
        server.shutdown()


def _items(stream: CoinbaseStream, count: int) -> list[StreamEvent | Unreadable]:
    found: list[StreamEvent | Unreadable] = []
    for item in stream.events(idle_s=5):
        assert item is not None, "the server went quiet"
        found.append(item)
        if len(found) == count:
            return found
    return found


def test_subscribes_with_a_jwt_without_uri_and_reads_snapshot_then_updates(
    venue: Callable[[Script], tuple[str, list[dict[str, Any]]]],
) -> None:
    def script(connection: ServerConnection, _: list[dict[str, Any]]) -> None:
        connection.send(_user(1, "snapshot", status="OPEN", cumulative_quantity="0",
                              leaves_quantity="0.01", avg_price="0"))  # fmt: skip
        connection.send(_ack(2))  # the snapshot may come before the acknowledgement
        connection.send(_heartbeat(3))
        connection.send(_user(4, "update"))
        connection.recv(timeout=10)  # hold the connection until the client leaves

    url, received = venue(script)
    with CoinbaseStream(url, KEY_NAME, PEM) as stream:
        snapshot, update = _items(stream, 2)

    assert [(m["type"], m["channel"]) for m in received] == [
        ("subscribe", "user"), ("subscribe", "heartbeats")]  # fmt: skip
    claims = jwt.decode(received[0]["jwt"], KEY.public_key(), algorithms=["ES256"])
    assert claims["sub"] == KEY_NAME
    assert "uri" not in claims  # a subscription names no request
    assert jwt.get_unverified_header(received[0]["jwt"])["kid"] == KEY_NAME
    assert isinstance(snapshot, StreamEvent)
    assert isinstance(update, StreamEvent)
    assert (snapshot.kind, snapshot.report.status) == ("snapshot", OrderStatus.NEW)
    assert (update.kind, update.report.status) == ("update", OrderStatus.FILLED)
    assert update.report.filled_quantity == Decimal("0.01")
    assert update.fill is None  # the REST listing records fills, once, by entry_id


def test_a_gap_in_the_sequence_is_reported_as_lost_news(
    venue: Callable[[Script], tuple[str, list[dict[str, Any]]]],
) -> None:
    def script(connection: ServerConnection, _: list[dict[str, Any]]) -> None:
        connection.send(_ack(1))
        connection.send(_heartbeat(2))
        connection.send(_user(5, "update"))  # 3 and 4 never came
        connection.recv(timeout=10)

    url, _ = venue(script)
    with CoinbaseStream(url, KEY_NAME, PEM) as stream:
        lost, event = _items(stream, 2)
    assert isinstance(lost, Unreadable)
    assert "sequence_num 5 after 2" in lost.reason
    assert isinstance(event, StreamEvent)


def test_a_duplicate_or_a_late_message_is_read_and_is_no_gap(
    venue: Callable[[Script], tuple[str, list[dict[str, Any]]]],
) -> None:
    def script(connection: ServerConnection, _: list[dict[str, Any]]) -> None:
        connection.send(_ack(1))
        connection.send(_user(2, "update"))
        connection.send(_user(2, "update"))  # the same again
        connection.send(_user(4, "update"))
        connection.send(_user(3, "update"))  # came late
        connection.send(_user(5, "update"))
        connection.recv(timeout=10)

    url, _ = venue(script)
    with CoinbaseStream(url, KEY_NAME, PEM) as stream:
        items = _items(stream, 6)
    kinds = [type(item).__name__ for item in items]
    assert kinds == ["StreamEvent", "StreamEvent", "Unreadable", "StreamEvent", "StreamEvent",
                     "StreamEvent"]  # fmt: skip
    gap = items[2]
    assert isinstance(gap, Unreadable)
    assert "sequence_num 4 after 2" in gap.reason  # 3 was missing when 4 came: one report


def test_an_unreadable_order_is_kept_and_the_rest_of_the_message_read(
    venue: Callable[[Script], tuple[str, list[dict[str, Any]]]],
) -> None:
    broken = {**STREAM_ORDER, "order_side": "SIDEWAYS"}
    message = json.loads(_user(2, "update"))
    message["events"][0]["orders"].append(broken)

    def script(connection: ServerConnection, _: list[dict[str, Any]]) -> None:
        connection.send(_ack(1))
        connection.send(json.dumps(message))
        connection.send(b"\x00not json")
        connection.recv(timeout=10)

    url, _ = venue(script)
    with CoinbaseStream(url, KEY_NAME, PEM) as stream:
        event, bad_order, bad_frame = _items(stream, 3)
    assert isinstance(event, StreamEvent)
    assert isinstance(bad_order, Unreadable)
    assert "order_side" in bad_order.reason
    assert isinstance(bad_frame, Unreadable)


def test_a_refused_key_is_an_authentication_failure(
    venue: Callable[[Script], tuple[str, list[dict[str, Any]]]],
) -> None:
    def script(connection: ServerConnection, _: list[dict[str, Any]]) -> None:
        connection.send(json.dumps({"type": "error", "message": "authentication failure"}))

    url, _ = venue(script)
    with pytest.raises(AuthenticationFailed, match="authentication failure"):
        CoinbaseStream(url, KEY_NAME, PEM).open()


def test_a_connection_lost_is_broker_unavailable(
    venue: Callable[[Script], tuple[str, list[dict[str, Any]]]],
) -> None:
    def script(connection: ServerConnection, _: list[dict[str, Any]]) -> None:
        connection.send(_ack(1))
        connection.close()

    url, _ = venue(script)
    with CoinbaseStream(url, KEY_NAME, PEM) as stream, pytest.raises(BrokerUnavailable):
        list(stream.events(idle_s=5))


def test_nothing_listening_is_broker_unavailable() -> None:
    with pytest.raises(BrokerUnavailable):
        CoinbaseStream("ws://127.0.0.1:9", KEY_NAME, PEM, open_timeout_s=2).open()


def test_the_stream_url_and_a_repr_without_the_key() -> None:
    assert stream_url("https://api.coinbase.com") == "wss://advanced-trade-ws-user.coinbase.com"
    assert stream_url("http://127.0.0.1:8765") == "ws://127.0.0.1:8765/ws/user"
    assert "PRIVATE" not in repr(CoinbaseStream("ws://x", KEY_NAME, PEM))
