"""The paper exchange's Tradier account events stream over a real socket: the session made
over REST (the token checked, one per token, 5 minutes to connect), the subscription
checked (a refused session is Tradier's error and a closed connection), an order event per
change of the token's accounts' orders (less those excluded), heartbeats, the stream
faults, and ordersync's own client reading it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from brokers.tradier.adapter import TradierBroker
from brokers.tradier.stream import TradierStream, stream_url
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest, StreamEvent
from tests.brokers.tradier.paper import ACCOUNT, OTHER_ACCOUNT, OTHER_TOKEN, TOKEN
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration
EVENT_FIELDS = {"id", "event", "status", "type", "price", "stop_price", "avg_fill_price",
                "exec_quantity", "last_fill_quantity", "remaining_quantity",
                "transaction_date", "create_date", "account"}  # fmt: skip


@pytest.fixture
def exchange(tradier_exchange: PaperExchange) -> PaperExchange:
    tradier_exchange.set_faults(fill_delay_ms=[0, 0], partial_fill_probability=0.0)
    return tradier_exchange


def session(exchange: PaperExchange, token: str = TOKEN) -> str:
    answer = httpx.post(f"{exchange.base_url}/v1/accounts/events/session",
                        headers={"Authorization": f"Bearer {token}",
                                 "Accept": "application/json"}, timeout=10)  # fmt: skip
    answer.raise_for_status()
    stream = answer.json()["stream"]
    assert stream["url"] == stream_url(exchange.base_url)
    return str(stream["sessionid"])


@pytest.fixture
def ws(exchange: PaperExchange) -> Iterator[ClientConnection]:
    with connect(stream_url(exchange.base_url), open_timeout=5) as socket:
        yield socket


def subscribe(socket: ClientConnection, session_id: str, exclude: list[str] | None = None) -> None:
    socket.send(json.dumps({"events": ["order"], "sessionid": session_id,
                            "excludeAccounts": exclude or []}))  # fmt: skip


def read(socket: ClientConnection, timeout_s: float = 5) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(socket.recv(timeout=timeout_s), parse_float=Decimal)
    return message


def subscribed(exchange: PaperExchange, count: int = 1) -> None:
    """Until ``count`` connections have subscribed (Tradier acknowledges nothing)."""
    exchange.wait_for(lambda: exchange.stream_stats()["tradier"]["auth"]["authorized"] >= count)


def place(exchange: PaperExchange, account: str = ACCOUNT, token: str = TOKEN,
          price: str = "150") -> int:  # fmt: skip
    """A limit buy of 2 AAPL below the market (it rests), tagged."""
    answer = httpx.post(f"{exchange.base_url}/v1/accounts/{account}/orders",
                        headers={"Authorization": f"Bearer {token}",
                                 "Accept": "application/json"},
                        data={"class": "equity", "symbol": "AAPL", "side": "buy", "quantity": "2",
                              "type": "limit", "duration": "gtc", "price": price,
                              "tag": "oc-t1"}, timeout=10)  # fmt: skip
    answer.raise_for_status()
    return int(answer.json()["order"]["id"])


def engine_id(exchange: PaperExchange, tradier_id: int) -> str:
    found = [o for o in exchange.truth() if o.get("tradier", {}).get("id") == tradier_id]
    return str(found[0]["id"])


def events_until(socket: ClientConnection, status: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1].get("status") != status:
        seen.append(read(socket))
    return seen


def refused(socket: ClientConnection) -> tuple[dict[str, Any], int | None]:
    """The error a refused subscription gets, and the close code that follows it."""
    error = read(socket)
    with pytest.raises(ConnectionClosed) as closed:
        read(socket)
    return error, closed.value.rcvd.code if closed.value.rcvd else None


def test_the_session_route_checks_the_token(exchange: PaperExchange) -> None:
    answer = httpx.post(f"{exchange.base_url}/v1/accounts/events/session",
                        headers={"Authorization": "Bearer nope"}, timeout=10)  # fmt: skip
    assert (answer.status_code, answer.text) == (401, "Invalid Access Token")
    assert session(exchange) != session(exchange)  # a new id each time
    assert exchange.truth() == []  # no account route took it for an account "events"


def test_each_change_of_the_tokens_orders_is_an_order_event(
    exchange: PaperExchange, ws: ClientConnection
) -> None:
    subscribe(ws, session(exchange))
    subscribed(exchange)
    place(exchange, OTHER_ACCOUNT, OTHER_TOKEN)  # another token's account: not streamed
    order_id = place(exchange)
    pending, opened = read(ws), read(ws)
    exchange.force_fill(engine_id(exchange, order_id), qty="1", price="150")
    partial = read(ws)
    exchange.force_fill(engine_id(exchange, order_id), qty="1", price="151")
    filled = read(ws)

    assert set(pending) == EVENT_FIELDS | {"tag"}
    assert [e["status"] for e in (pending, opened, partial, filled)] == [
        "pending", "open", "partially_filled", "filled"]  # fmt: skip
    assert {e["id"] for e in (pending, opened, partial, filled)} == {order_id}
    assert (pending["event"], pending["type"], pending["account"], pending["tag"]) == (
        "order", "limit", ACCOUNT, "oc-t1")  # fmt: skip
    assert (pending["price"], pending["stop_price"]) == (Decimal(150), Decimal(0))
    assert (partial["exec_quantity"], partial["remaining_quantity"]) == (1, 1)
    assert (filled["exec_quantity"], filled["avg_fill_price"]) == (2, Decimal("150.5"))
    assert (filled["last_fill_quantity"], filled["remaining_quantity"]) == (1, 0)


def test_excluded_accounts_are_not_streamed(exchange: PaperExchange, ws: ClientConnection) -> None:
    subscribe(ws, session(exchange), exclude=[ACCOUNT])
    subscribed(exchange)
    place(exchange)
    exchange.set_faults(tradier_heartbeat_s=0.2)
    assert read(ws)["event"] == "heartbeat"  # the order's events never came before it


def test_heartbeats_come_while_subscribed(exchange: PaperExchange, ws: ClientConnection) -> None:
    exchange.set_faults(tradier_heartbeat_s=0.2)
    subscribe(ws, session(exchange))
    beats = [read(ws), read(ws)]
    assert [set(b) for b in beats] == [{"event", "status", "timestamp"}] * 2
    assert {(b["event"], b["status"]) for b in beats} == {("heartbeat", "active")}
    assert beats[0]["timestamp"].endswith("Z")


@pytest.mark.parametrize("payload", ['{"events":["order"],"sessionid":"unknown"}',
                                     '{"events":["order"]}'])  # fmt: skip
def test_an_unknown_session_is_refused_and_the_connection_closed(
    exchange: PaperExchange, ws: ClientConnection, payload: str
) -> None:
    ws.send(payload)
    assert refused(ws) == ({"error": "session not found"}, 1008)


def test_an_unreadable_payload_is_refused(exchange: PaperExchange, ws: ClientConnection) -> None:
    ws.send('{"events":["trade"],"sessionid":"x"}')
    assert refused(ws) == ({"error": "invalid payload"}, 1008)


def test_a_session_not_connected_in_time_has_expired(
    exchange: PaperExchange, ws: ClientConnection
) -> None:
    exchange.set_faults(tradier_stream_session_s=0)
    subscribe(ws, session(exchange))
    assert refused(ws) == ({"error": "session not found"}, 1008)


def test_a_new_session_ends_the_old_one_and_its_connection(
    exchange: PaperExchange, ws: ClientConnection
) -> None:
    old = session(exchange)
    subscribe(ws, old)
    subscribed(exchange)
    session(exchange)  # the token's new session
    with pytest.raises(ConnectionClosed) as closed:
        read(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    with connect(stream_url(exchange.base_url), open_timeout=5) as again:
        subscribe(again, old)
        assert refused(again) == ({"error": "session not found"}, 1008)


def test_a_session_serves_one_connection(exchange: PaperExchange, ws: ClientConnection) -> None:
    used = session(exchange)
    subscribe(ws, used)
    subscribed(exchange)
    with connect(stream_url(exchange.base_url), open_timeout=5) as second:
        subscribe(second, used)
        assert refused(second) == ({"error": "session not found"}, 1008)


def test_stream_faults_drop_duplicate_and_disconnect(
    exchange: PaperExchange, ws: ClientConnection
) -> None:
    subscribe(ws, session(exchange))
    subscribed(exchange)
    exchange.set_faults(stream_next_drop=1, stream_next_duplicate=1)
    order_id = place(exchange)  # "pending" dropped, "open" sent twice
    first, second = read(ws), read(ws)
    exchange.set_faults(stream_next_disconnect=1)
    exchange.force_fill(engine_id(exchange, order_id), price="150")
    with pytest.raises(ConnectionClosed):
        read(ws)

    assert first == second
    assert first["status"] == "open"
    stats = exchange.stream_stats()["tradier"]
    assert (stats["messages"]["dropped"], stats["messages"]["duplicated"]) == (1, 1)
    exchange.wait_for(lambda: exchange.stream_stats()["tradier"]["disconnects"].get("fault"))


def test_ordersync_reads_the_paper_stream(exchange: PaperExchange) -> None:
    adapter = TradierBroker.from_url(exchange.base_url, account_number=ACCOUNT,
                                     access_token=TOKEN)  # fmt: skip
    stream = TradierStream(stream_url(exchange.base_url), exchange.base_url, TOKEN)
    try:
        with stream:
            subscribed(exchange)
            request = PlaceOrderRequest("os-77", "AAPL", Side.BUY, Decimal(2), OrderType.MARKET,
                                        TimeInForce.DAY)  # fmt: skip
            placed = adapter.place(request)
            found: list[StreamEvent] = []
            for item in stream.events(5):
                assert isinstance(item, StreamEvent)
                found.append(item)
                if item.report.status is OrderStatus.FILLED:
                    break
    finally:
        adapter.close()
    reports = [e.report for e in found]
    assert {r.broker_order_id for r in reports} == {placed.broker_order_id}
    assert {r.client_order_id for r in reports} == {"os-77"}
    (fill,) = exchange.truth_order(engine_id(exchange, int(placed.broker_order_id)))["fills"]
    assert (reports[-1].filled_quantity, reports[-1].average_fill_price) == (
        2, Decimal(fill["price"]))  # fmt: skip
    assert not any(r.states_terms for r in reports)
