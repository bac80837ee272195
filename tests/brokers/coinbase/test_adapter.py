"""CoinbaseBroker against httpx.MockTransport answering with Coinbase's documented shapes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from brokers.base import RateLimitInfo
from brokers.coinbase.adapter import CLIENT_ID_WINDOW, CoinbaseBroker
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    BrokerError,
    BrokerUnavailable,
    MalformedResponse,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import FillReport, PlaceOrderRequest, ReplaceOrderRequest
from tests.brokers.coinbase.test_parse import FILL, ORDER

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())
PEM = KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption(),
).decode()
Handler = Callable[[httpx.Request], httpx.Response]


class Venue:
    """Records every request and answers with the queued responses for its path."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[str, list[httpx.Response | Exception]] = {}

    def on(self, path: str, *answers: httpx.Response | Exception) -> None:
        self.routes.setdefault("/api/v3/brokerage" + path, []).extend(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.routes.get(request.url.path)
        if not queue:
            return httpx.Response(404, json={"error": "NOT_FOUND", "message": "no route"})
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _broker(venue: Venue, **kw: Any) -> CoinbaseBroker:
    client = httpx.Client(base_url="https://api.coinbase.com", transport=httpx.MockTransport(venue))
    kw.setdefault("sleep", lambda _s: None)
    return CoinbaseBroker(
        client, key_name="organizations/o/apiKeys/k", private_key_pem=PEM, now=lambda: NOW, **kw
    )


def _json(value: object, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=value, headers=headers)


def _order(order_id: str, created: datetime, **changes: Any) -> dict[str, Any]:
    order = copy.deepcopy(ORDER)
    order.update(
        order_id=order_id,
        client_order_id=f"c-{order_id}",
        created_time=created.isoformat().replace("+00:00", "Z"),
        **changes,
    )
    return order


def _fill(entry_id: str, at: datetime) -> dict[str, Any]:
    return {**FILL, "entry_id": entry_id, "trade_time": at.isoformat().replace("+00:00", "Z")}


MARKET_BUY = PlaceOrderRequest(
    client_order_id="cid-1", symbol="BTC-USD", side=Side.BUY, quantity=Decimal("0.001")
)
PLACED = {
    "success": True,
    "success_response": {
        "order_id": "0000-000000-000000",
        "product_id": "BTC-USD",
        "side": "BUY",
        "client_order_id": "cid-1",
    },
}


# -- place ------------------------------------------------------------------------------


def test_place_sends_the_order_signed_and_reports_it_pending() -> None:
    venue = Venue()
    venue.on("/orders", _json(PLACED))

    report = _broker(venue).place(MARKET_BUY)

    (request,) = venue.requests
    assert json.loads(request.content) == {
        "client_order_id": "cid-1",
        "product_id": "BTC-USD",
        "side": "BUY",
        "order_configuration": {"market_market_ioc": {"base_size": "0.001"}},
    }
    token = request.headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(
        token,
        KEY.public_key(),
        algorithms=["ES256"],
        options={"verify_exp": False, "verify_nbf": False},
    )
    assert claims["uri"] == "POST api.coinbase.com/api/v3/brokerage/orders"
    assert claims["nbf"] == int(NOW.timestamp())
    assert report.broker_order_id == "0000-000000-000000"
    assert report.client_order_id == "cid-1"
    assert report.status is OrderStatus.PENDING_NEW
    assert (report.order_type, report.time_in_force) == (OrderType.MARKET, TimeInForce.IOC)
    assert report.quantity == Decimal("0.001")
    assert report.filled_quantity == 0
    assert report.created_at == NOW


def test_refused_placement_carries_coinbase_reasons() -> None:
    venue = Venue()
    venue.on(
        "/orders",
        _json(
            {
                "success": False,
                "failure_reason": "UNKNOWN_FAILURE_REASON",
                "order_id": "",
                "error_response": {
                    "error": "INSUFFICIENT_FUND",
                    "message": "Insufficient balance in source account",
                    "error_details": "",
                    "preview_failure_reason": "PREVIEW_INSUFFICIENT_FUND",
                },
            }
        ),
    )

    with pytest.raises(OrderRejected, match="INSUFFICIENT_FUND") as caught:
        _broker(venue).place(MARKET_BUY)

    assert caught.value.client_order_id == "cid-1"


def test_day_limit_is_refused_without_a_request() -> None:
    venue = Venue()
    request = PlaceOrderRequest(
        client_order_id="cid-2",
        symbol="BTC-USD",
        side=Side.BUY,
        quantity=Decimal(1),
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY,
        limit_price=Decimal(1),
    )

    with pytest.raises(OrderRejected, match="DAY"):
        _broker(venue).place(request)

    assert venue.requests == []


@pytest.mark.parametrize(
    "answer",
    [
        _json({"error": "INTERNAL", "message": "internal error"}, 500),
        httpx.ReadTimeout("read timed out"),
        httpx.Response(200, content=b"<html>oops</html>"),
    ],
)
def test_unknown_placement_outcome_is_answer_lost_and_never_resent(
    answer: httpx.Response | Exception,
) -> None:
    venue = Venue()
    venue.on("/orders", answer)

    with pytest.raises(AnswerLost) as caught:
        _broker(venue).place(MARKET_BUY)

    assert len(venue.requests) == 1
    assert caught.value.client_order_id == "cid-1"


def test_placement_not_sent_is_retried() -> None:
    venue = Venue()
    venue.on("/orders", httpx.ConnectError("refused"), _json({}, 429), _json(PLACED))

    report = _broker(venue).place(MARKET_BUY)

    assert report.broker_order_id == "0000-000000-000000"
    assert len(venue.requests) == 3


@pytest.mark.parametrize(("status", "error"), [(400, OrderRejected), (401, AuthenticationFailed)])
def test_placement_4xx(status: int, error: type[BrokerError]) -> None:
    venue = Venue()
    venue.on(
        "/orders",
        _json(
            {"error": "INVALID_ARGUMENT", "message": "bad size", "error_details": "base_size"},
            status,
        ),
    )

    with pytest.raises(error, match="INVALID_ARGUMENT"):
        _broker(venue).place(MARKET_BUY)


def test_replace_is_refused_since_coinbase_edits_in_place() -> None:
    venue = Venue()
    request = ReplaceOrderRequest(
        client_order_id="cid-3",
        quantity=Decimal(1),
        time_in_force=TimeInForce.GTC,
        limit_price=Decimal(2),
    )

    with pytest.raises(OrderRejected, match="edits orders in place"):
        _broker(venue).replace("0000-000000-000000", request)

    assert venue.requests == []


# -- get --------------------------------------------------------------------------------


def test_get_order() -> None:
    venue = Venue()
    venue.on("/orders/historical/0000-000000-000000", _json({"order": ORDER}))

    report = _broker(venue).get_order("0000-000000-000000")

    assert report.broker_order_id == "0000-000000-000000"
    assert report.status is OrderStatus.NEW


def test_get_unknown_order_is_not_found() -> None:
    venue = Venue()
    venue.on(
        "/orders/historical/nope",
        _json({"error": "NOT_FOUND", "message": "order with this orderID was not found"}, 404),
    )

    with pytest.raises(OrderNotFound) as caught:
        _broker(venue).get_order("nope")

    assert caught.value.broker_order_id == "nope"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>bad gateway</html>", "<html>bad gateway</html>"),
        (
            json.dumps({"order": {**ORDER, "status": "UNKNOWN_ORDER_STATUS"}}).encode(),
            "unknown order status",
        ),
    ],
)
def test_unreadable_order_is_malformed(body: bytes, message: str) -> None:
    venue = Venue()
    venue.on("/orders/historical/x", httpx.Response(200, content=body))

    with pytest.raises(MalformedResponse, match=message):
        _broker(venue).get_order("x")


def test_5xx_on_get_is_retried_then_unavailable() -> None:
    venue = Venue()
    venue.on("/orders/historical/x", _json({"error": "unavailable"}, 503))

    with pytest.raises(BrokerUnavailable, match="after 3 attempts"):
        _broker(venue, max_attempts=3).get_order("x")

    assert len(venue.requests) == 3


def test_5xx_then_success() -> None:
    venue = Venue()
    venue.on("/orders/historical/x", _json({}, 502), _json({"order": ORDER}))

    assert _broker(venue).get_order("x").broker_order_id == "0000-000000-000000"


def test_429_out_of_attempts_is_rate_limited_with_retry_after() -> None:
    venue = Venue()
    venue.on(
        "/orders/historical/x", _json({"message": "Too many requests"}, 429, **{"Retry-After": "2"})
    )

    with pytest.raises(RateLimited) as caught:
        _broker(venue, max_attempts=2).get_order("x")

    assert caught.value.retry_at == NOW + timedelta(seconds=2)


# -- hooks ------------------------------------------------------------------------------


def test_gate_before_every_attempt_with_the_cost() -> None:
    venue = Venue()
    venue.on("/orders/historical/x", _json({}, 500), _json({"order": ORDER}))
    costs: list[int] = []

    _broker(venue, gate=costs.append).get_order("x")

    assert costs == [1, 1]


def test_gate_refusal_sends_nothing() -> None:
    venue = Venue()

    def closed(cost: int) -> None:
        raise RateLimited("budget spent", broker="coinbase")

    with pytest.raises(RateLimited, match="budget spent"):
        _broker(venue, gate=closed).place(MARKET_BUY)

    assert venue.requests == []


def test_observer_and_on_request_hear_every_answer() -> None:
    venue = Venue()
    headers = {
        "x-ratelimit-limit": "30",
        "x-ratelimit-remaining": "29",
        "x-ratelimit-reset": str(int(NOW.timestamp()) + 1),
    }
    venue.on("/orders/historical/abc", _json({"order": ORDER}, **headers))
    seen: list[RateLimitInfo] = []
    calls: list[tuple[str, int | None]] = []

    _broker(
        venue,
        observer=seen.append,
        on_request=lambda label, status, _s: calls.append((label, status)),
    ).get_order("abc")

    assert seen == [
        RateLimitInfo(
            limit=30, remaining=29, reset_at=NOW + timedelta(seconds=1), status_code=200, window_s=1
        )
    ]
    assert calls == [("GET /orders/historical/{id}", 200)]


def test_relative_reset_is_read_as_seconds() -> None:
    venue = Venue()
    venue.on("/orders/historical/abc", _json({"order": ORDER}, **{"x-ratelimit-reset": "0.5"}))
    seen: list[RateLimitInfo] = []

    _broker(venue, observer=seen.append).get_order("abc")

    assert seen[0].reset_at == NOW + timedelta(seconds=0.5)


# -- lookup by client id ----------------------------------------------------------------


def test_lookup_by_client_id_lists_the_recent_window_and_follows_the_cursor() -> None:
    venue = Venue()
    newer = _order("o-2", NOW - timedelta(seconds=5))
    wanted = _order("o-1", NOW - timedelta(seconds=30))
    venue.on(
        "/orders/historical/batch",
        _json({"orders": [newer], "has_next": True, "cursor": "p2"}),
        _json({"orders": [wanted], "has_next": False, "cursor": ""}),
    )

    report = _broker(venue).get_order_by_client_id("c-o-1", symbol="BTC-USD")

    assert report.broker_order_id == "o-1"
    first, second = venue.requests
    assert first.url.params["start_date"] == (NOW - CLIENT_ID_WINDOW).isoformat(
        timespec="microseconds"
    ).replace("+00:00", "Z")
    assert first.url.params.get_list("product_ids") == ["BTC-USD"]
    assert "cursor" not in first.url.params
    assert second.url.params["cursor"] == "p2"


def test_lookup_by_unknown_client_id_is_not_found() -> None:
    venue = Venue()
    venue.on("/orders/historical/batch", _json({"orders": [ORDER], "has_next": False}))

    with pytest.raises(OrderNotFound) as caught:
        _broker(venue).get_order_by_client_id("never-sent")

    assert caught.value.client_order_id == "never-sent"


def test_lookup_that_cannot_read_the_whole_window_is_no_proof_of_absence() -> None:
    venue = Venue()
    venue.on(
        "/orders/historical/batch", _json({"orders": [ORDER], "has_next": True, "cursor": "n"})
    )

    with pytest.raises(BrokerError, match="pages of orders") as caught:
        _broker(venue).get_order_by_client_id("never-sent")

    assert not isinstance(caught.value, OrderNotFound)
    assert len(venue.requests) == 10


# -- lists ------------------------------------------------------------------------------


def test_list_orders_oldest_first_across_coinbase_pages() -> None:
    t = NOW - timedelta(hours=1)
    orders = [_order(f"o-{i}", t + timedelta(seconds=i)) for i in range(5)]
    venue = Venue()
    venue.on(
        "/orders/historical/batch",
        _json({"orders": orders[:2:-1], "has_next": True, "cursor": "c2"}),  # o-4, o-3
        _json({"orders": orders[2::-1], "has_next": False, "cursor": ""}),
    )

    page = _broker(venue).list_orders(after=t - timedelta(minutes=1), page_size=10)

    assert [r.broker_order_id for r in page.items] == ["o-0", "o-1", "o-2", "o-3", "o-4"]
    assert page.next_token is None
    assert venue.requests[0].url.params["start_date"] == "2026-12-04T08:58:59.000000Z"


def test_list_orders_pages_with_a_token_and_no_repeats() -> None:
    t = NOW - timedelta(hours=1)
    same = [_order(f"o-{i}", t) for i in range(3)]  # one timestamp: ties by id
    later = _order("o-9", t + timedelta(seconds=1))
    venue = Venue()
    venue.on("/orders/historical/batch", _json({"orders": [later, *same], "has_next": False}))
    broker = _broker(venue)
    until = NOW - timedelta(minutes=1)

    first = broker.list_orders(status="open", until=until, page_size=2)
    assert first.next_token is not None
    second = broker.list_orders(status="open", page_token=first.next_token, page_size=2)

    ids = [r.broker_order_id for r in first.items + second.items]
    assert ids == ["o-0", "o-1", "o-2", "o-9"]
    assert second.next_token is None
    params = venue.requests[1].url.params
    assert params["end_date"] == "2026-12-04T09:59:00.000000Z"  # the until kept in the token
    assert params["start_date"] == "2026-12-04T08:59:59.000000Z"


def test_open_and_closed_are_told_apart_by_status() -> None:
    t = NOW - timedelta(hours=1)
    statuses = [
        "OPEN",
        "PENDING",
        "FILLED",
        "CANCEL_QUEUED",
        "CANCELLED",
        "EXPIRED",
        "FAILED",
        "QUEUED",
        "EDIT_QUEUED",
    ]
    orders = [_order(f"o-{i}", t + timedelta(seconds=i), status=s) for i, s in enumerate(statuses)]
    venue = Venue()
    venue.on("/orders/historical/batch", _json({"orders": orders[::-1], "has_next": False}))
    broker = _broker(venue)

    open_page = broker.list_orders(status="open")
    closed_page = broker.list_orders(status="closed")

    assert [r.raw_status for r in open_page.items] == [
        "OPEN",
        "PENDING",
        "CANCEL_QUEUED",
        "QUEUED",
        "EDIT_QUEUED",
    ]
    assert [r.raw_status for r in closed_page.items] == ["FILLED", "CANCELLED", "EXPIRED", "FAILED"]
    assert "order_status" not in venue.requests[0].url.params


def test_unreadable_orders_are_malformed_items() -> None:
    t = NOW - timedelta(hours=1)
    bad_status = _order("o-1", t, status="UNKNOWN_ORDER_STATUS")
    no_time = {"order_id": "o-2"}
    venue = Venue()
    venue.on(
        "/orders/historical/batch",
        _json({"orders": [bad_status, no_time, _order("o-3", t)], "has_next": False}),
    )

    page = _broker(venue).list_orders()

    assert [r.broker_order_id for r in page.items] == ["o-3"]
    assert [m.raw for m in page.malformed] == [bad_status, no_time]


def test_list_fills_and_the_cursor_after_a_fill() -> None:
    t = NOW - timedelta(minutes=5)
    fills = [_fill("e-1", t), _fill("e-2", t), _fill("e-3", t), _fill("e-4", t + timedelta(1))]
    venue = Venue()
    venue.on("/orders/historical/fills", _json({"fills": fills[::-1], "cursor": ""}))
    broker = _broker(venue)

    first = broker.list_fills(page_size=2)
    cursor = broker.fill_cursor(first.items[-1])
    rest = broker.list_fills(page_token=cursor)

    assert [f.broker_fill_id for f in first.items] == ["e-1", "e-2"]
    assert [f.broker_fill_id for f in rest.items] == ["e-3", "e-4"]
    assert all(isinstance(f, FillReport) for f in rest.items)
    assert venue.requests[1].url.params["start_sequence_timestamp"] == (
        "2026-12-04T09:54:59.000000Z"
    )


def test_list_orders_refuses_bad_arguments() -> None:
    broker = _broker(Venue())

    with pytest.raises(ValueError, match="status"):
        broker.list_orders(status="working")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="page token"):
        broker.list_orders(page_token="garbage")
    with pytest.raises(ValueError, match="page_size"):
        broker.list_fills(page_size=0)


def test_list_positions_reads_every_account_page() -> None:
    btc = {
        "currency": "BTC",
        "available_balance": {"value": "0.5", "currency": "BTC"},
        "hold": {"value": "0.25", "currency": "BTC"},
    }
    eth = {
        "currency": "ETH",
        "available_balance": {"value": "0", "currency": "ETH"},
        "hold": {"value": "0", "currency": "ETH"},
    }
    usd = {
        "currency": "USD",
        "available_balance": {"value": "100.5", "currency": "USD"},
        "hold": {"value": "0", "currency": "USD"},
    }
    venue = Venue()
    venue.on(
        "/accounts",
        _json({"accounts": [btc, eth], "has_next": True, "cursor": "n"}),
        _json({"accounts": [usd], "has_next": False, "cursor": "", "size": 1}),
    )

    positions = _broker(venue).list_positions()

    assert [(p.symbol, p.quantity) for p in positions] == [
        ("BTC", Decimal("0.75")),
        ("USD", Decimal("100.5")),
    ]


def test_unreadable_account_fails_the_positions() -> None:
    venue = Venue()
    venue.on("/accounts", _json({"accounts": [{"currency": "BTC"}], "has_next": False}))

    with pytest.raises(MalformedResponse, match="available_balance"):
        _broker(venue).list_positions()


# -- cancel -----------------------------------------------------------------------------


def _cancel_answer(success: bool, reason: str) -> httpx.Response:
    return _json({"results": [{"success": success, "failure_reason": reason, "order_id": "o-1"}]})


def test_cancel_sends_the_id_to_batch_cancel() -> None:
    venue = Venue()
    venue.on("/orders/batch_cancel", _cancel_answer(True, "UNKNOWN_CANCEL_FAILURE_REASON"))

    _broker(venue).cancel("o-1")

    (request,) = venue.requests
    assert request.method == "POST"
    assert json.loads(request.content) == {"order_ids": ["o-1"]}


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("UNKNOWN_CANCEL_ORDER", OrderNotFound),
        ("ORDER_IS_FULLY_FILLED", OrderNotCancelable),
        ("ORDER_IS_BEING_REPLACED", OrderNotCancelable),
        ("COMMANDER_REJECTED_CANCEL_ORDER", OrderNotCancelable),
        ("INVALID_CANCEL_REQUEST", BrokerError),
    ],
)
def test_cancel_failures(reason: str, error: type[BrokerError]) -> None:
    venue = Venue()
    venue.on("/orders/batch_cancel", _cancel_answer(False, reason))

    with pytest.raises(error, match=reason) as caught:
        _broker(venue).cancel("o-1")

    assert caught.value.broker_order_id == "o-1"


def test_a_cancel_already_requested_is_no_error() -> None:
    venue = Venue()
    venue.on("/orders/batch_cancel", _cancel_answer(False, "DUPLICATE_CANCEL_REQUEST"))

    _broker(venue).cancel("o-1")


# -- secrets and lifecycle --------------------------------------------------------------


def test_the_private_key_never_shows() -> None:
    venue = Venue()
    venue.on("/orders/historical/x", _json({"error": "UNAUTHENTICATED", "message": "bad jwt"}, 401))
    broker = _broker(venue)

    with pytest.raises(AuthenticationFailed) as caught:
        broker.get_order("x")

    secret = PEM.splitlines()[1]
    assert secret not in repr(broker)
    assert secret not in str(caught.value)
    assert "organizations/o/apiKeys/k" in repr(broker)


def test_from_url_owns_and_closes_its_client() -> None:
    broker = CoinbaseBroker.from_url(
        "https://api.coinbase.com", key_name="k", private_key_pem=PEM, timeout_s=1.0
    )

    broker.close()

    assert broker._client.is_closed


def test_retry_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        _broker(Venue(), max_attempts=0)
    with pytest.raises(ValueError, match="max_retry_wait_s"):
        _broker(Venue(), max_retry_wait_s=-1)


def test_429_waits_for_the_stated_reset_capped() -> None:
    venue = Venue()
    venue.on(
        "/orders/historical/x", _json({}, 429, **{"Retry-After": "30"}), _json({"order": ORDER})
    )
    waits: list[float] = []

    _broker(venue, sleep=waits.append, max_retry_wait_s=5.0).get_order("x")

    assert waits == [5.0]


def test_a_product_is_held_in_its_base_and_paid_with_its_quote() -> None:
    broker = _broker(Venue())
    assert (broker.holding_of("BTC-USD"), broker.quoted_in("BTC-USD")) == ("BTC", "USD")
    assert broker.quoted_in("BTC") is None  # not a product: nothing is paid with
