"""Tradier's account events stream, read without a network: the documented event and
heartbeat shapes, what is unreadable, the session made over REST (its refusals), the
stream's host for each REST host, and a refused session on the socket."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from brokers.base import Unreadable
from brokers.errors import AuthenticationFailed, BrokerUnavailable, MalformedResponse
from brokers.tradier.stream import TradierStream, stream_url
from brokers.tradier.tags import tag_for
from core.enums import OrderStatus, OrderType
from core.reports import StreamEvent

# The docs' sample (account-streaming-responses), as Tradier writes it.
FILLED = (
    b'{"id":1107075,"event":"order","status":"filled","type":"limit","price":10.0,'
    b'"stop_price":0.0,"avg_fill_price":10.0,"exec_quantity":2.0,"last_fill_quantity":0.0,'
    b'"remaining_quantity":0.0,"transaction_date":"2021-08-09T20:05:35.277Z",'
    b'"create_date":"2021-08-09T20:05:35.277Z","account":"6YA"}'
)
HEARTBEAT = '{"event":"heartbeat","status":"active","timestamp":"2025-12-10T18:02:51.028929606Z"}'
TOKEN = "tradier-secret-token"


def stream(handler: Any = None) -> TradierStream:
    transport = None if handler is None else httpx.MockTransport(handler)
    return TradierStream("wss://ws.tradier.com/v1/accounts/events", "https://api.tradier.com",
                         TOKEN, transport=transport)  # fmt: skip


def read(frame: bytes | str) -> list[StreamEvent | Unreadable]:
    return list(stream()._read(frame))


def event(**changes: object) -> bytes:
    data = json.loads(FILLED)
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode()


def test_the_documented_filled_event_is_a_report_without_terms_and_without_a_fill() -> None:
    (found,) = read(FILLED)
    assert isinstance(found, StreamEvent)
    report = found.report
    assert (found.kind, found.fill, found.event_id) == ("order", None, None)
    assert (report.broker_order_id, report.status, report.raw_status) == (
        "1107075", OrderStatus.FILLED, "filled")  # fmt: skip
    assert (report.filled_quantity, report.average_fill_price) == (Decimal("2.0"), Decimal(10))
    assert (report.order_type, report.limit_price, report.stop_price) == (
        OrderType.LIMIT, Decimal("10.0"), None)  # fmt: skip
    assert report.states_terms is False
    assert report.updated_at == datetime(2021, 8, 9, 20, 5, 35, 277000, tzinfo=UTC)
    assert report.filled_at == report.updated_at
    assert found.at == report.updated_at


def test_an_open_event_with_shares_filled_is_partially_filled_and_its_tag_names_our_id() -> None:
    frame = event(status="open", exec_quantity=1.0, remaining_quantity=1.0, avg_fill_price=9.5,
                  tag=tag_for("os-1_b"))  # fmt: skip
    (found,) = read(frame)
    assert isinstance(found, StreamEvent)
    assert found.report.status is OrderStatus.PARTIALLY_FILLED
    assert found.report.quantity == Decimal(2)  # filled plus remaining
    assert found.report.client_order_id == "os-1_b"


def test_a_working_event_is_never_filled_by_its_own_figures() -> None:
    """remaining_quantity 0 on an open order: the worker decides by our quantity."""
    (found,) = read(event(status="open", exec_quantity=2.0, remaining_quantity=0.0))
    assert isinstance(found, StreamEvent)
    assert found.report.status is OrderStatus.PARTIALLY_FILLED


@pytest.mark.parametrize("net", ["debit", "credit", "even"])
def test_a_net_priced_event_has_no_average_of_its_own(net: str) -> None:
    """A multileg order's price is a net of its legs' prices; its legs carry the fills."""
    (found,) = read(event(type=net, avg_fill_price=1.35))
    assert isinstance(found, StreamEvent)
    assert found.report.average_fill_price is None


def test_an_unfilled_event_has_no_average_and_a_foreign_tag_names_no_id() -> None:
    (found,) = read(event(status="pending", exec_quantity=0.0, avg_fill_price=0.0,
                          remaining_quantity=2.0, tag="someone-else"))  # fmt: skip
    assert isinstance(found, StreamEvent)
    assert (found.report.status, found.report.average_fill_price) == (
        OrderStatus.PENDING_NEW, None)  # fmt: skip
    assert found.report.client_order_id is None


def test_heartbeats_and_other_events_say_nothing() -> None:
    assert read(HEARTBEAT) == []
    assert read('{"event":"account","status":"x"}') == []


@pytest.mark.parametrize(
    "frame",
    [b"not json", b"[1]", event(status="bogus"), event(exec_quantity="x"), event(id=None),
     event(create_date="yesterday")],
)  # fmt: skip
def test_malformed_frames_are_unreadable_with_an_excerpt(frame: bytes) -> None:
    (found,) = read(frame)
    assert isinstance(found, Unreadable)
    assert found.reason
    assert found.excerpt


def test_an_error_frame_ends_the_stream_as_unavailable() -> None:
    with pytest.raises(BrokerUnavailable, match="session not found"):
        read('{"error":"session not found"}')


def test_the_session_is_made_with_the_bearer_token_and_its_id_subscribed() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "stream": {
                    "url": "wss://ws.tradier.com/v1/accounts/events",
                    "sessionid": "c8638963-a6d4",
                }
            },
        )

    sent: list[dict[str, object]] = []
    client = stream(handler)
    client._send = sent.append  # type: ignore[method-assign]
    client._subscribe()
    (request,) = seen
    assert (request.method, str(request.url)) == (
        "POST", "https://api.tradier.com/v1/accounts/events/session")  # fmt: skip
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"] == "application/json"
    assert sent == [{"events": ["order"], "sessionid": "c8638963-a6d4", "excludeAccounts": []}]
    assert TOKEN not in repr(client)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [(401, b"Invalid Access Token", AuthenticationFailed),
     (503, b"Service Unavailable", BrokerUnavailable),
     (200, b'{"stream":"null"}', MalformedResponse)],
)  # fmt: skip
def test_a_refused_or_unreadable_session_is_a_named_error(
    status: int, body: bytes, error: type[Exception]
) -> None:
    client = stream(lambda request: httpx.Response(status, content=body))
    with pytest.raises(error) as raised:
        client._subscribe()
    assert TOKEN not in str(raised.value)


def test_an_unreachable_session_host_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(BrokerUnavailable, match="ConnectError"):
        stream(handler)._subscribe()


@pytest.mark.parametrize(
    ("base_url", "url"),
    [("https://api.tradier.com", "wss://ws.tradier.com/v1/accounts/events"),
     ("https://api.tradier.com/v1/", "wss://ws.tradier.com/v1/accounts/events"),
     ("https://sandbox.tradier.com", "wss://sandbox-ws.tradier.com/v1/accounts/events"),
     ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/v1/accounts/events"),
     ("https://paper.example", "wss://paper.example/v1/accounts/events")],
)  # fmt: skip
def test_the_stream_host_follows_the_rest_host(base_url: str, url: str) -> None:
    assert stream_url(base_url) == url


def carrying(accounts: dict[str, str]) -> TradierStream:
    return TradierStream("wss://ws.tradier.com/v1/accounts/events", "https://api.tradier.com",
                         TOKEN, accounts=accounts)  # fmt: skip


def test_only_the_accounts_the_connection_carries_are_read() -> None:
    """One token acts for several accounts; of one account's, its own events are read."""
    mine = carrying({"6YA": "ira"})
    (found,) = mine._read(FILLED)  # the sample is account 6YA's
    assert isinstance(found, StreamEvent)
    assert found.account is None  # the connection's own
    assert list(mine._read(event(account="VA000002"))) == []
    assert len(list(mine._read(event(account=None)))) == 1  # an event naming none is its own


def test_a_connection_carrying_several_accounts_tells_each_event_s_account_by_our_name() -> None:
    shared = carrying({"6YA": "ira", "VA000002": "margin"})
    (ira,) = shared._read(FILLED)
    (margin,) = shared._read(event(account="VA000002", id=7))
    assert isinstance(ira, StreamEvent)
    assert isinstance(margin, StreamEvent)
    assert (ira.account, margin.account) == ("ira", "margin")
    assert list(shared._read(event(account="VA000003"))) == []  # tracked elsewhere, or not
    (unknown,) = shared._read(event(account=None))
    assert isinstance(unknown, Unreadable)  # whose it is cannot be told
    assert "names no account" in unknown.reason
