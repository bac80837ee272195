"""Unit tests for the Alpaca adapter against Alpaca's documented shapes, over respx."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from brokers.alpaca import parse as alpaca_parse
from brokers.alpaca.adapter import AlpacaBroker
from brokers.base import RateLimitInfo
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    BrokerError,
    BrokerUnavailable,
    DuplicateClientOrderId,
    MalformedResponse,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from core.enums import OrderClass, OrderStatus, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest, ReplaceOrderRequest

BASE = "https://paper-api.alpaca.test"
KEY_ID = "PKTESTKEYID"
SECRET = "s3cr3t-Alpaca-Secret-Key-do-not-leak"
NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
ORDER_ID = "61e69015-8549-4bfd-b9c3-01e75843f47d"
CLIENT_ID = "eb9e2aaa-f71a-4f51-b5b4-52a6c565dad4"

# broker-apis.md §1, GET /v2/orders/{id}: note "qty": 1 and "commission": 1.25 are numbers.
DOC_ORDER = (
    '{"id":"61e69015-8549-4bfd-b9c3-01e75843f47d",'
    '"client_order_id":"eb9e2aaa-f71a-4f51-b5b4-52a6c565dad4",'
    '"created_at":"2021-03-16T18:38:01.942282Z",'
    '"updated_at":"2021-03-16T18:38:01.942282Z",'
    '"submitted_at":"2021-03-16T18:38:01.937734Z","filled_at":null,"expired_at":null,'
    '"canceled_at":null,"failed_at":null,"replaced_at":null,"replaced_by":null,'
    '"replaces":null,"asset_id":"904837e3-3b76-47ec-b432-046db621571b","symbol":"AAPL",'
    '"asset_class":"us_equity","notional":null,"qty":1,"filled_qty":"0",'
    '"filled_avg_price":null,"order_class":"simple","order_type":"market",'
    '"type":"market","side":"buy","time_in_force":"day","limit_price":null,'
    '"stop_price":null,"status":"accepted","extended_hours":false,"legs":null,'
    '"position_intent":"buy_to_open","commission":1.25}'
)

# The order inside broker-apis.md's stream fill example, completed with the fields a REST
# order always has: 9-digit fractional seconds and a 7-place average price.
DOC_FILLED_ORDER = {
    "id": "a5be8f5e-fdfa-41f5-a644-7a74fe947a8f",
    "client_order_id": "4642fd68-d59a-47d7-a9ac-e22f536828d1",
    "status": "filled",
    "filled_qty": "1790.86",
    "filled_avg_price": "105.8988475",
    "qty": "1790.86",
    "symbol": "SOLUSD",
    "side": "buy",
    "type": "market",
    "time_in_force": "gtc",
    "created_at": "2022-04-19T17:45:04.918311243Z",
    "updated_at": "2022-04-19T17:45:05.027186306Z",
    "submitted_at": "2022-04-19T17:45:04.913985702Z",
    "filled_at": "2022-04-19T17:45:05.024916716Z",
    "canceled_at": None,
    "limit_price": None,
    "stop_price": None,
    "replaced_by": None,
}

DOC_FILL = {
    "id": "20220202135509981::2d7b7f1a-5c43-4f6b-8b0a-1b4c8f5d2c11",
    "activity_type": "FILL",
    "transaction_time": "2022-02-02T18:55:09.981483915Z",
    "type": "partial_fill",
    "price": "3.14",
    "qty": "2",
    "side": "buy",
    "symbol": "AAPL",
    "leaves_qty": "8",
    "cum_qty": "2",
    "order_id": "904837e3-3b76-47ec-b432-046db621571b",
    "order_status": "partially_filled",
}


def alpaca_order(order_id: str, **fields: Any) -> dict[str, Any]:
    """A JSON-ready Alpaca order with strings for decimals, as the live API sends them."""
    order: dict[str, Any] = {
        "id": order_id,
        "client_order_id": f"c-{order_id}",
        "created_at": "2024-01-02T14:30:00.123456789Z",
        "updated_at": "2024-01-02T14:30:00.223456789Z",
        "submitted_at": "2024-01-02T14:30:00.113456789Z",
        "filled_at": None,
        "canceled_at": None,
        "replaced_by": None,
        "symbol": "AAPL",
        "qty": "10",
        "filled_qty": "0",
        "filled_avg_price": None,
        "type": "limit",
        "side": "buy",
        "time_in_force": "day",
        "limit_price": "185.5",
        "stop_price": None,
        "status": "new",
    }
    order.update(fields)
    return order


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=BASE, assert_all_mocked=True)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def observed() -> list[RateLimitInfo]:
    return []


@pytest.fixture
def make_broker(
    router: respx.Router, sleeps: list[float], observed: list[RateLimitInfo]
) -> Iterator[Callable[..., AlpacaBroker]]:
    clients: list[httpx.Client] = []

    def make(**kw: Any) -> AlpacaBroker:
        client = httpx.Client(base_url=BASE, transport=httpx.MockTransport(router.handler))
        clients.append(client)
        kw.setdefault("sleep", sleeps.append)
        kw.setdefault("observer", observed.append)
        kw.setdefault("now", lambda: NOW)
        return AlpacaBroker(client, key_id=KEY_ID, secret_key=SECRET, **kw)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def broker(make_broker: Callable[..., AlpacaBroker]) -> AlpacaBroker:
    return make_broker()


def request_json(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


def limit_request() -> PlaceOrderRequest:
    return PlaceOrderRequest(
        client_order_id=CLIENT_ID,
        symbol="AAPL",
        side=Side.BUY,
        quantity=Decimal("10"),
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        limit_price=Decimal("185.50"),
    )


# -- reading orders ------------------------------------------------------------------------


def test_get_order_reads_the_documented_fixture(router: respx.Router, broker: AlpacaBroker) -> None:
    route = router.get(f"/v2/orders/{ORDER_ID}").respond(200, text=DOC_ORDER)

    report = broker.get_order(ORDER_ID)

    assert report.broker_order_id == ORDER_ID
    assert report.client_order_id == CLIENT_ID
    assert report.symbol == "AAPL"
    assert report.side is Side.BUY
    assert report.order_type is OrderType.MARKET
    assert report.time_in_force is TimeInForce.DAY
    assert report.quantity == Decimal(1)
    assert isinstance(report.quantity, Decimal)
    assert report.status is OrderStatus.NEW
    assert report.raw_status == "accepted"
    assert report.filled_quantity == Decimal(0)
    assert report.average_fill_price is None
    assert report.created_at == datetime(2021, 3, 16, 18, 38, 1, 942282, tzinfo=UTC)
    assert report.submitted_at == datetime(2021, 3, 16, 18, 38, 1, 937734, tzinfo=UTC)
    assert report.filled_at is None
    assert report.canceled_at is None
    assert report.limit_price is None
    assert report.fees is None
    assert report.raw["commission"] == Decimal("1.25")
    assert isinstance(report.raw["commission"], Decimal)
    sent = route.calls.last.request
    assert sent.headers["APCA-API-KEY-ID"] == KEY_ID
    assert sent.headers["APCA-API-SECRET-KEY"] == SECRET


def test_nanosecond_timestamps_become_aware_utc(router: respx.Router, broker: AlpacaBroker) -> None:
    router.get("/v2/orders/a5be8f5e-fdfa-41f5-a644-7a74fe947a8f").respond(
        200, json=DOC_FILLED_ORDER
    )

    report = broker.get_order("a5be8f5e-fdfa-41f5-a644-7a74fe947a8f")

    assert report.status is OrderStatus.FILLED
    assert report.filled_at == datetime(2022, 4, 19, 17, 45, 5, 24916, tzinfo=UTC)
    assert report.updated_at == datetime(2022, 4, 19, 17, 45, 5, 27186, tzinfo=UTC)
    assert report.filled_at is not None
    assert report.filled_at.utcoffset() == timedelta(0)
    assert report.average_fill_price == Decimal("105.8988475")
    assert report.filled_quantity == report.quantity == Decimal("1790.86")


def test_offset_timestamps_are_converted_to_utc(router: respx.Router, broker: AlpacaBroker) -> None:
    order = alpaca_order("o-1", created_at="2024-01-02T09:30:00.5-05:00")
    router.get("/v2/orders/o-1").respond(200, json=order)

    report = broker.get_order("o-1")

    assert report.created_at == datetime(2024, 1, 2, 14, 30, 0, 500000, tzinfo=UTC)
    assert report.created_at.tzinfo is UTC


def test_order_type_falls_back_to_deprecated_order_type(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    order = alpaca_order("o-1", type=None, order_type="stop_limit", stop_price="180")
    router.get("/v2/orders/o-1").respond(200, json=order)

    report = broker.get_order("o-1")

    assert report.order_type is OrderType.STOP_LIMIT
    assert report.stop_price == Decimal("180")


@pytest.mark.parametrize(
    ("raw_status", "filled_qty", "expected"),
    [
        ("new", "0", OrderStatus.NEW),
        ("accepted", "0", OrderStatus.NEW),
        ("pending_new", "0", OrderStatus.NEW),
        ("pending_review", "0", OrderStatus.NEW),
        ("accepted_for_bidding", "0", OrderStatus.NEW),
        ("held", "0", OrderStatus.NEW),
        ("suspended", "0", OrderStatus.NEW),
        ("calculated", "0", OrderStatus.NEW),
        ("stopped", "0", OrderStatus.NEW),
        ("done_for_day", "0", OrderStatus.NEW),
        ("pending_replace", "0", OrderStatus.NEW),
        # A working status with some, but not all, quantity filled is partially filled.
        ("new", "3", OrderStatus.PARTIALLY_FILLED),
        ("accepted", "0.5", OrderStatus.PARTIALLY_FILLED),
        ("held", "9.999", OrderStatus.PARTIALLY_FILLED),
        ("done_for_day", "4", OrderStatus.PARTIALLY_FILLED),
        ("pending_replace", "1", OrderStatus.PARTIALLY_FILLED),
        # Settlement pending after a full fill: still filled, never back to working.
        ("calculated", "10", OrderStatus.FILLED),
        ("calculated", "4", OrderStatus.PARTIALLY_FILLED),
        ("stopped", "2", OrderStatus.PARTIALLY_FILLED),
        ("suspended", "5", OrderStatus.PARTIALLY_FILLED),
        ("partially_filled", "3", OrderStatus.PARTIALLY_FILLED),
        ("filled", "10", OrderStatus.FILLED),
        ("pending_cancel", "3", OrderStatus.PENDING_CANCEL),
        ("canceled", "3", OrderStatus.CANCELED),
        ("expired", "0", OrderStatus.EXPIRED),
        ("rejected", "0", OrderStatus.REJECTED),
        ("replaced", "0", OrderStatus.REPLACED),
    ],
)
def test_status_table(
    router: respx.Router,
    broker: AlpacaBroker,
    raw_status: str,
    filled_qty: str,
    expected: OrderStatus,
) -> None:
    order = alpaca_order("o-1", status=raw_status, qty="10", filled_qty=filled_qty)
    router.get("/v2/orders/o-1").respond(200, json=order)

    report = broker.get_order("o-1")

    assert report.status is expected
    assert report.raw_status == raw_status


def test_every_documented_status_is_mapped() -> None:
    documented = {
        "new", "partially_filled", "filled", "done_for_day", "canceled", "expired", "replaced",
        "pending_cancel", "pending_replace", "accepted", "pending_new", "accepted_for_bidding",
        "stopped", "rejected", "suspended", "calculated", "held",
        "pending_review",  # alpaca-py's OrderStatus has it
    }  # fmt: skip
    assert set(alpaca_parse.STATUS_MAP) == documented


def test_replaced_order_names_its_replacement(router: respx.Router, broker: AlpacaBroker) -> None:
    order = alpaca_order("o-1", status="replaced", replaced_by="o-2")
    router.get("/v2/orders/o-1").respond(200, json=order)

    report = broker.get_order("o-1")

    assert report.status is OrderStatus.REPLACED
    assert report.replaced_by == "o-2"


@pytest.mark.parametrize(
    ("filled_qty", "filled_avg_price", "expected"),
    [
        ("0", None, None),
        ("0", "0", None),
        ("0", 0, None),
        ("4", "101.25", Decimal("101.25")),
        ("4", 101.25, Decimal("101.25")),
    ],
)
def test_average_fill_price(
    router: respx.Router,
    broker: AlpacaBroker,
    filled_qty: str,
    filled_avg_price: object,
    expected: Decimal | None,
) -> None:
    order = alpaca_order("o-1", status="partially_filled", filled_qty=filled_qty)
    order["filled_avg_price"] = "AVG"
    body = json.dumps(order).replace('"AVG"', json.dumps(filled_avg_price))  # numbers stay numbers
    router.get("/v2/orders/o-1").respond(200, text=body)

    assert broker.get_order("o-1").average_fill_price == expected


def test_decimals_are_exact_whether_strings_or_numbers(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    # 0.1 + 0.2 is 0.30000000000000004 in float; the JSON numbers must never become floats.
    body = json.dumps(alpaca_order("o-1", type="stop_limit", status="partially_filled"))
    body = body.replace('"limit_price": "185.5"', '"limit_price": 0.1')
    body = body.replace('"stop_price": null', '"stop_price": "0.2"')
    body = body.replace('"filled_qty": "0"', '"filled_qty": 0.1')
    body = body.replace('"qty": "10"', '"qty": 0.3')
    router.get("/v2/orders/o-1").respond(200, text=body)

    report = broker.get_order("o-1")

    assert report.limit_price is not None
    assert report.stop_price is not None
    assert report.limit_price + report.stop_price == Decimal("0.3")
    assert report.quantity - report.filled_quantity == Decimal("0.2")
    for value in (report.limit_price, report.stop_price, report.quantity, report.filled_quantity):
        assert type(value) is Decimal
    assert all(type(v) is not float for v in report.raw.values())


@settings(max_examples=60, deadline=None)
@given(
    qty=st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal(10**12), places=9),
    as_number=st.booleans(),
)
def test_quantities_round_trip_exactly(qty: Decimal, as_number: bool) -> None:
    order = alpaca_order("o-1", qty=str(qty))
    body = json.dumps(order)
    if as_number:
        body = body.replace(f'"qty": "{qty}"', f'"qty": {qty}')

    report = alpaca_parse.parse_order(alpaca_parse.loads(body.encode()))

    assert report.quantity == qty
    assert type(report.quantity) is Decimal


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("status", "teleported", "unknown status 'teleported'"),
        ("qty", [1], "qty is list"),
        ("qty", "ten", "qty is not a decimal"),
        ("qty", None, "qty is missing"),
        ("qty", True, "qty is bool"),
        ("filled_qty", "-1", "filled_qty is -1"),
        ("created_at", "yesterday", "created_at is not an RFC 3339 time"),
        ("created_at", "2024-01-02T14:30:00", "created_at has no timezone"),
        ("side", "sideways", "unknown side 'sideways'"),
        ("type", "iceberg", "unknown type 'iceberg'"),
        ("time_in_force", "gtx", "unknown time_in_force 'gtx'"),
        ("id", 17, "id is int"),
    ],
)
def test_unreadable_order_is_malformed_response_with_ids(
    router: respx.Router, broker: AlpacaBroker, field: str, value: object, reason: str
) -> None:
    router.get("/v2/orders/o-1").respond(200, json=alpaca_order("o-1", **{field: value}))

    with pytest.raises(MalformedResponse) as caught:
        broker.get_order("o-1")

    assert caught.value.broker_order_id == "o-1"
    assert caught.value.broker == "alpaca"
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("order_type", "time_in_force"), [("trailing_stop", "day"), ("market", "opg"), ("limit", "cls")]
)
def test_order_kinds_we_do_not_place_are_still_read(
    router: respx.Router, broker: AlpacaBroker, order_type: str, time_in_force: str
) -> None:
    """Orders placed elsewhere must be readable so reconciliation can adopt them."""
    router.get("/v2/orders/o-1").respond(
        200, json=alpaca_order("o-1", type=order_type, time_in_force=time_in_force)
    )
    report = broker.get_order("o-1")
    assert (report.order_type.value, report.time_in_force.value) == (order_type, time_in_force)


@pytest.mark.parametrize("body", ["<html>502 Bad Gateway</html>", "[]", "{", "NaN", '{"qty": NaN}'])
def test_garbage_body_is_malformed_response(
    router: respx.Router, broker: AlpacaBroker, body: str
) -> None:
    router.get("/v2/orders/o-1").respond(200, text=body)

    with pytest.raises(MalformedResponse) as caught:
        broker.get_order("o-1")

    assert caught.value.broker_order_id == "o-1"


def test_malformed_response_quotes_only_an_excerpt(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    router.get("/v2/orders:by_client_order_id").respond(200, text="x" * 20_000)

    with pytest.raises(MalformedResponse) as caught:
        broker.get_order_by_client_id("cid-1")

    assert caught.value.client_order_id == "cid-1"
    assert "xxxxxxxxxx" in str(caught.value)
    assert len(str(caught.value)) < 600


def test_get_order_by_client_id(router: respx.Router, broker: AlpacaBroker) -> None:
    route = router.get(
        "/v2/orders:by_client_order_id", params={"client_order_id": CLIENT_ID}
    ).respond(200, text=DOC_ORDER)

    report = broker.get_order_by_client_id(CLIENT_ID)

    assert report.client_order_id == CLIENT_ID
    assert route.call_count == 1


def test_get_order_not_found(router: respx.Router, broker: AlpacaBroker) -> None:
    router.get("/v2/orders/nope").respond(
        404, json={"code": 40410000, "message": "order not found"}
    )

    with pytest.raises(OrderNotFound) as caught:
        broker.get_order("nope")

    assert caught.value.broker_order_id == "nope"
    assert caught.value.status_code == 404
    assert "order not found" in str(caught.value)


def test_get_order_by_client_id_not_found(router: respx.Router, broker: AlpacaBroker) -> None:
    router.get("/v2/orders:by_client_order_id").respond(404, json={"message": "order not found"})

    with pytest.raises(OrderNotFound) as caught:
        broker.get_order_by_client_id("cid-404")

    assert caught.value.client_order_id == "cid-404"
    assert caught.value.broker_order_id is None


def test_order_ids_are_quoted_into_the_path(router: respx.Router, broker: AlpacaBroker) -> None:
    route = router.get("/v2/orders/a%2F..%2Fpositions").respond(200, json=alpaca_order("a/../x"))

    broker.get_order("a/../positions")

    assert route.call_count == 1
    with pytest.raises(ValueError, match="non-empty"):
        broker.get_order("")


@pytest.mark.parametrize("status", [401, 403])
def test_reads_with_refused_credentials(
    router: respx.Router, broker: AlpacaBroker, status: int
) -> None:
    router.get("/v2/orders/o-1").respond(
        status, json={"code": 40110000, "message": "request is not authorized"}
    )

    with pytest.raises(AuthenticationFailed) as caught:
        broker.get_order("o-1")

    assert caught.value.status_code == status
    assert caught.value.broker_order_id == "o-1"


# -- placing -------------------------------------------------------------------------------


def test_place_sends_decimal_strings(router: respx.Router, broker: AlpacaBroker) -> None:
    route = router.post("/v2/orders").respond(
        200, json=alpaca_order(ORDER_ID, client_order_id=CLIENT_ID, status="accepted")
    )
    request = PlaceOrderRequest(
        client_order_id=CLIENT_ID,
        symbol="AAPL",
        side=Side.SELL,
        quantity=Decimal("1E+2"),
        order_type=OrderType.STOP_LIMIT,
        time_in_force=TimeInForce.GTC,
        limit_price=Decimal("0.10"),
        stop_price=Decimal("0.2000"),
    )

    report = broker.place(request)

    assert report.broker_order_id == ORDER_ID
    assert report.status is OrderStatus.NEW
    assert request_json(route) == {
        "client_order_id": CLIENT_ID,
        "symbol": "AAPL",
        "qty": "100",
        "side": "sell",
        "type": "stop_limit",
        "time_in_force": "gtc",
        "limit_price": "0.10",
        "stop_price": "0.2000",
    }


def test_place_market_order_omits_prices(router: respx.Router, broker: AlpacaBroker) -> None:
    route = router.post("/v2/orders").respond(200, text=DOC_ORDER)

    broker.place(PlaceOrderRequest(CLIENT_ID, "AAPL", Side.BUY, Decimal(1)))

    body = request_json(route)
    assert "limit_price" not in body
    assert "stop_price" not in body
    assert body["type"] == "market"
    assert body["time_in_force"] == "day"


def test_place_duplicate_client_order_id(router: respx.Router, broker: AlpacaBroker) -> None:
    router.post("/v2/orders").respond(
        422, json={"code": 40010001, "message": "client_order_id must be unique"}
    )

    with pytest.raises(DuplicateClientOrderId) as caught:
        broker.place(limit_request())

    assert caught.value.client_order_id == CLIENT_ID
    assert caught.value.status_code == 422


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (422, "qty must be > 0"),
        (403, "insufficient buying power"),
        (400, "invalid symbol"),
    ],
)
def test_place_rejected_carries_broker_message(
    router: respx.Router, broker: AlpacaBroker, status: int, message: str
) -> None:
    route = router.post("/v2/orders").respond(status, json={"code": 40010001, "message": message})

    with pytest.raises(OrderRejected) as caught:
        broker.place(limit_request())

    assert not isinstance(caught.value, DuplicateClientOrderId)
    assert message in str(caught.value)
    assert caught.value.client_order_id == CLIENT_ID
    assert caught.value.status_code == status
    assert route.call_count == 1


def test_place_unauthorized(router: respx.Router, broker: AlpacaBroker) -> None:
    router.post("/v2/orders").respond(401, json={"code": 40110000, "message": "unauthorized."})

    with pytest.raises(AuthenticationFailed) as caught:
        broker.place(limit_request())

    assert caught.value.client_order_id == CLIENT_ID


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
        httpx.Response(500),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(503, json={"message": "service unavailable"}),
        httpx.Response(504),
    ],
    ids=lambda failure: (
        type(failure).__name__ if isinstance(failure, Exception) else str(failure.status_code)
    ),
)
def test_place_never_resubmits_when_the_outcome_is_unknown(
    router: respx.Router,
    broker: AlpacaBroker,
    sleeps: list[float],
    failure: Exception | httpx.Response,
) -> None:
    route = router.post("/v2/orders").mock(
        side_effect=[failure, httpx.Response(200, json=alpaca_order(ORDER_ID))]
    )

    with pytest.raises(AnswerLost) as caught:
        broker.place(limit_request())

    assert route.call_count == 1
    assert sleeps == []
    assert caught.value.client_order_id == CLIENT_ID


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("connect timed out")],
    ids=["ConnectError", "ConnectTimeout"],
)
def test_place_retries_when_the_request_never_left(
    router: respx.Router, broker: AlpacaBroker, sleeps: list[float], failure: Exception
) -> None:
    route = router.post("/v2/orders").mock(
        side_effect=[failure, failure, httpx.Response(200, json=alpaca_order(ORDER_ID))]
    )

    report = broker.place(limit_request())

    assert report.broker_order_id == ORDER_ID
    assert route.call_count == 3
    assert len(sleeps) == 2


def test_place_unreachable_is_broker_unavailable(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    route = router.post("/v2/orders").mock(side_effect=httpx.ConnectError("refused"))

    with pytest.raises(BrokerUnavailable) as caught:
        broker.place(limit_request())

    assert route.call_count == 4
    assert caught.value.client_order_id == CLIENT_ID


def test_place_retries_429_after_the_reset(
    router: respx.Router, broker: AlpacaBroker, sleeps: list[float]
) -> None:
    reset = int(NOW.timestamp()) + 3
    route = router.post("/v2/orders").mock(
        side_effect=[
            httpx.Response(429, headers={"X-Ratelimit-Reset": str(reset)}, text="too many"),
            httpx.Response(200, json=alpaca_order(ORDER_ID)),
        ]
    )

    assert broker.place(limit_request()).broker_order_id == ORDER_ID
    assert route.call_count == 2
    assert sleeps == [3.0]


def test_place_rate_limited_to_the_end(router: respx.Router, broker: AlpacaBroker) -> None:
    reset = int(NOW.timestamp()) + 2
    router.post("/v2/orders").respond(429, headers={"X-Ratelimit-Reset": str(reset)})

    with pytest.raises(RateLimited) as caught:
        broker.place(limit_request())

    assert caught.value.retry_at == NOW + timedelta(seconds=2)
    assert caught.value.client_order_id == CLIENT_ID


def test_place_answered_with_garbage_is_malformed(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    router.post("/v2/orders").respond(200, text="<html>ok</html>")

    with pytest.raises(MalformedResponse) as caught:
        broker.place(limit_request())

    assert caught.value.client_order_id == CLIENT_ID
    assert "<html>ok</html>" in str(caught.value)


# -- retries on idempotent calls -----------------------------------------------------------


def test_read_retries_5xx_then_succeeds(
    router: respx.Router, broker: AlpacaBroker, sleeps: list[float]
) -> None:
    route = router.get("/v2/orders/o-1").mock(
        side_effect=[
            httpx.Response(503),
            httpx.Response(502),
            httpx.Response(200, json=alpaca_order("o-1")),
        ]
    )

    assert broker.get_order("o-1").broker_order_id == "o-1"
    assert route.call_count == 3
    assert len(sleeps) == 2
    assert all(0.1 <= s <= 2.0 for s in sleeps)
    assert sleeps[1] > sleeps[0] - 0.1  # exponential: 0.1 then 0.2, each plus < 0.1 jitter


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.RemoteProtocolError("eof")],
    ids=["ReadTimeout", "ConnectError", "RemoteProtocolError"],
)
def test_read_retries_transport_errors(
    router: respx.Router, broker: AlpacaBroker, failure: Exception
) -> None:
    route = router.get("/v2/orders:by_client_order_id").mock(
        side_effect=[failure, httpx.Response(200, json=alpaca_order("o-1"))]
    )

    assert broker.get_order_by_client_id("c-o-1").broker_order_id == "o-1"
    assert route.call_count == 2


def test_read_exhausted_is_broker_unavailable(
    router: respx.Router, make_broker: Callable[..., AlpacaBroker], sleeps: list[float]
) -> None:
    broker = make_broker(max_attempts=3)
    route = router.get("/v2/orders/o-1").respond(503, json={"message": "maintenance"})

    with pytest.raises(BrokerUnavailable) as caught:
        broker.get_order("o-1")

    assert route.call_count == 3
    assert len(sleeps) == 2
    assert caught.value.broker_order_id == "o-1"
    assert caught.value.status_code == 503
    assert "maintenance" in str(caught.value)


def test_read_transport_exhausted_is_broker_unavailable(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    route = router.get("/v2/positions").mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(BrokerUnavailable):
        broker.list_positions()

    assert route.call_count == 4


def test_429_waits_until_the_reset_header(
    router: respx.Router, broker: AlpacaBroker, sleeps: list[float], observed: list[RateLimitInfo]
) -> None:
    reset = int(NOW.timestamp()) + 3
    limited = {
        "X-Ratelimit-Limit": "200",
        "X-Ratelimit-Remaining": "0",
        "X-Ratelimit-Reset": str(reset),
    }
    ok = {"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": "199", "X-Ratelimit-Reset": "1"}
    router.get("/v2/orders/o-1").mock(
        side_effect=[
            httpx.Response(429, headers=limited, json={"message": "too many requests"}),
            httpx.Response(200, headers=ok, json=alpaca_order("o-1")),
        ]
    )

    broker.get_order("o-1")

    assert sleeps == [3.0]
    assert observed == [
        RateLimitInfo(200, 0, NOW + timedelta(seconds=3), 429),
        RateLimitInfo(200, 199, datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), 200),
    ]


def test_429_honours_retry_after(
    router: respx.Router, broker: AlpacaBroker, sleeps: list[float]
) -> None:
    router.get("/v2/orders/o-1").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "1.5"}),
            httpx.Response(200, json=alpaca_order("o-1")),
        ]
    )

    broker.get_order("o-1")

    assert sleeps == [1.5]


def test_429_wait_is_capped(
    router: respx.Router, make_broker: Callable[..., AlpacaBroker], sleeps: list[float]
) -> None:
    broker = make_broker(max_retry_wait_s=4.0)
    reset = int(NOW.timestamp()) + 3600
    router.get("/v2/orders/o-1").mock(
        side_effect=[
            httpx.Response(429, headers={"X-Ratelimit-Reset": str(reset)}),
            httpx.Response(200, json=alpaca_order("o-1")),
        ]
    )

    broker.get_order("o-1")

    assert sleeps == [4.0]


def test_429_without_a_usable_hint_backs_off(
    router: respx.Router, broker: AlpacaBroker, sleeps: list[float]
) -> None:
    past = int(NOW.timestamp()) - 5
    router.get("/v2/orders/o-1").mock(
        side_effect=[
            httpx.Response(429),
            httpx.Response(429, headers={"X-Ratelimit-Reset": str(past)}),
            httpx.Response(200, json=alpaca_order("o-1")),
        ]
    )

    broker.get_order("o-1")

    assert len(sleeps) == 2
    assert all(0.1 <= s < 0.5 for s in sleeps)


def test_429_exhausted_is_rate_limited(
    router: respx.Router, broker: AlpacaBroker, sleeps: list[float]
) -> None:
    reset = int(NOW.timestamp()) + 1
    route = router.get("/v2/positions").respond(429, headers={"X-Ratelimit-Reset": str(reset)})

    with pytest.raises(RateLimited) as caught:
        broker.list_positions()

    assert route.call_count == 4
    assert sleeps == [1.0, 1.0, 1.0]
    assert caught.value.retry_at == NOW + timedelta(seconds=1)
    assert caught.value.status_code == 429


def test_failing_observer_does_not_fail_the_call(
    router: respx.Router,
    make_broker: Callable[..., AlpacaBroker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def observer(info: RateLimitInfo) -> None:
        raise RuntimeError("bucket is down")

    broker = make_broker(observer=observer)
    router.post("/v2/orders").respond(
        200, headers={"X-Ratelimit-Remaining": "5"}, json=alpaca_order(ORDER_ID)
    )

    with caplog.at_level(logging.ERROR, logger="brokers.alpaca"):
        assert broker.place(limit_request()).broker_order_id == ORDER_ID

    assert "observer failed" in caplog.text


# -- listing orders ------------------------------------------------------------------------


def test_list_orders_sends_asc_limit_and_window(router: respx.Router, broker: AlpacaBroker) -> None:
    route = router.get("/v2/orders").respond(200, json=[alpaca_order("o-1")])

    page = broker.list_orders(
        status="open",
        after=datetime(2024, 1, 2, 9, 30, tzinfo=UTC),
        until=datetime(2024, 1, 2, 16, 0, 0, 250000, tzinfo=UTC),
    )

    assert [o.broker_order_id for o in page.items] == ["o-1"]
    assert page.next_token is None
    assert page.malformed == ()
    assert dict(route.calls.last.request.url.params) == {
        "status": "open",
        "direction": "asc",
        "limit": "500",
        "after": "2024-01-02T09:30:00.000000Z",
        "until": "2024-01-02T16:00:00.250000Z",
    }


def test_list_orders_argument_checks(broker: AlpacaBroker) -> None:
    with pytest.raises(ValueError, match="page_size"):
        broker.list_orders(page_size=501)
    with pytest.raises(ValueError, match="page_size"):
        broker.list_orders(page_size=0)
    with pytest.raises(ValueError, match="naive"):
        broker.list_orders(after=datetime(2024, 1, 2))
    with pytest.raises(ValueError, match="status"):
        broker.list_orders(status="pending")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "token",
    [
        "not a token!",
        "e30",  # base64 of {}
        alpaca_parse.encode_order_token(NOW, ["a"]).replace("e", "f", 3),
        "eyJ2IjoyLCJhdCI6IjIwMjQtMDEtMDJUMTU6MDA6MDBaIiwiaWRzIjpbXX0",  # version 2
        "eyJ2IjoxLCJhdCI6Im5vdyIsImlkcyI6W119",  # at: "now"
    ],
)
def test_list_orders_rejects_malformed_tokens(broker: AlpacaBroker, token: str) -> None:
    with pytest.raises(ValueError, match="malformed list_orders page_token"):
        broker.list_orders(page_token=token)


class FakeOrderBook:
    """Alpaca's GET /v2/orders over a fixed set: exclusive ``after``, ascending, ``limit``."""

    def __init__(self, submitted: list[str]) -> None:
        self.orders = [
            alpaca_order(f"o-{i:03d}", submitted_at=at) for i, at in enumerate(submitted)
        ]
        self.orders.sort(key=lambda o: (_ns(o["submitted_at"]), o["id"]))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        assert params["direction"] == "asc"
        after = params.get("after")
        rows = [o for o in self.orders if after is None or _ns(o["submitted_at"]) > _ns(after)]
        return httpx.Response(200, json=rows[: int(params["limit"])])


def _ns(stamp: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time with up to 9 fraction digits."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    whole = datetime.fromisoformat(head).replace(tzinfo=UTC)
    return int(whole.timestamp()) * 10**9 + int((frac or "0").ljust(9, "0"))


def _collect(broker: AlpacaBroker, page_size: int) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    for _ in range(1000):
        page = broker.list_orders(page_size=page_size, page_token=token)
        ids.extend(o.broker_order_id for o in page.items)
        assert page.malformed == ()
        token = page.next_token
        if token is None:
            return ids
    raise AssertionError("paging did not end")


@pytest.mark.parametrize(
    ("stamps", "page_size", "second_after"),
    [
        pytest.param(
            ["00.000001", "00.000002", "00.000002", "00.000003", "00.000003", "01", "01"],
            3,
            "2024-01-02T14:30:00.000001Z",  # the first page ends at 0.000002; minus 1 µs
            id="identical-stamps",
        ),
        pytest.param(
            ["00.000001500", "00.000002100", "00.000002900", "00.000003", "01"],
            4,
            "2024-01-02T14:30:00.000002Z",  # 0.000003 minus 1 µs re-reads 0.0000021 and 29
            id="nanosecond-stamps",
        ),
    ],
)
def test_list_orders_token_never_skips_or_repeats_ties(
    router: respx.Router,
    broker: AlpacaBroker,
    stamps: list[str],
    page_size: int,
    second_after: str,
) -> None:
    book = FakeOrderBook([f"2024-01-02T14:30:{s}Z" for s in stamps])
    route = router.get("/v2/orders").mock(side_effect=book)

    ids = _collect(broker, page_size=page_size)

    assert ids == [o["id"] for o in book.orders]
    assert route.call_count >= 3
    assert route.calls[1].request.url.params["after"] == second_after


@settings(max_examples=80, deadline=None)
@given(
    offsets_ns=st.lists(st.integers(min_value=0, max_value=4_000), min_size=0, max_size=30),
    sub_microsecond=st.booleans(),
    page_size=st.integers(min_value=1, max_value=8),
)
def test_list_orders_paging_returns_each_order_once(
    offsets_ns: list[int], sub_microsecond: bool, page_size: int
) -> None:
    # Orders land on a few microseconds (some nanoseconds apart), so page boundaries fall
    # inside groups of ties.
    if not sub_microsecond:
        offsets_ns = [ns - ns % 1000 for ns in offsets_ns]
    stamps = [f"2024-01-02T14:30:00.{ns:09d}Z" for ns in offsets_ns]
    # A page re-reads the last microsecond and the one before it; it must hold more than that.
    per_us = [sum(1 for ns in offsets_ns if ns // 1000 in (us - 1, us)) for us in range(6)]
    page_size = max(page_size, max(per_us) + 1)
    book = FakeOrderBook(stamps)
    router = respx.Router(base_url=BASE)
    router.get("/v2/orders").mock(side_effect=book)
    with httpx.Client(base_url=BASE, transport=httpx.MockTransport(router.handler)) as client:
        broker = AlpacaBroker(client, key_id=KEY_ID, secret_key=SECRET, sleep=lambda s: None)

        ids = _collect(broker, page_size)

    assert ids == [o["id"] for o in book.orders]


def test_list_orders_refuses_a_page_that_cannot_advance(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    router.get("/v2/orders").mock(side_effect=FakeOrderBook(["2024-01-02T14:30:00Z"] * 3))
    first = broker.list_orders(page_size=2)
    assert first.next_token is not None

    with pytest.raises(BrokerError, match="share submitted_at"):
        broker.list_orders(page_size=2, page_token=first.next_token)


def test_list_orders_keeps_malformed_items(router: respx.Router, broker: AlpacaBroker) -> None:
    bad_status = alpaca_order("o-2", status="teleported", submitted_at="2024-01-02T14:30:02Z")
    router.get("/v2/orders").respond(
        200,
        json=[
            alpaca_order("o-1", submitted_at="2024-01-02T14:30:01Z"),
            bad_status,
            "not an order",
            alpaca_order("o-3", submitted_at="2024-01-02T14:30:03Z"),
        ],
    )

    page = broker.list_orders(page_size=4)

    assert [o.broker_order_id for o in page.items] == ["o-1", "o-3"]
    assert [m.raw for m in page.malformed] == [bad_status, "not an order"]
    assert "unknown status 'teleported'" in page.malformed[0].reason
    assert page.next_token is not None
    assert alpaca_parse.decode_order_token(page.next_token) == (
        datetime(2024, 1, 2, 14, 30, 3, tzinfo=UTC),
        frozenset({"o-3"}),
    )


def test_list_orders_token_from_a_malformed_last_item(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    last = alpaca_order("o-2", qty="many", submitted_at="2024-01-02T14:30:02Z")
    router.get("/v2/orders").respond(
        200, json=[alpaca_order("o-1", submitted_at="2024-01-02T14:30:01Z"), last]
    )

    page = broker.list_orders(page_size=2)

    assert page.next_token is not None
    assert alpaca_parse.decode_order_token(page.next_token)[1] == frozenset({"o-2"})
    assert len(page.malformed) == 1


def test_list_orders_body_not_a_list(router: respx.Router, broker: AlpacaBroker) -> None:
    router.get("/v2/orders").respond(200, json={"message": "oops"})

    with pytest.raises(MalformedResponse, match="expected an array"):
        broker.list_orders()


def test_list_orders_unauthorized(router: respx.Router, broker: AlpacaBroker) -> None:
    router.get("/v2/orders").respond(401, json={"code": 40110000, "message": "unauthorized."})

    with pytest.raises(AuthenticationFailed):
        broker.list_orders()


# -- cancel --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 204])
def test_cancel_accepted(router: respx.Router, broker: AlpacaBroker, status: int) -> None:
    route = router.delete("/v2/orders/o-1").respond(status)

    broker.cancel("o-1")

    assert route.call_count == 1


def test_cancel_not_found(router: respx.Router, broker: AlpacaBroker) -> None:
    router.delete("/v2/orders/o-1").respond(404, json={"message": "order not found"})

    with pytest.raises(OrderNotFound) as caught:
        broker.cancel("o-1")

    assert caught.value.broker_order_id == "o-1"


def test_cancel_not_cancelable(router: respx.Router, broker: AlpacaBroker) -> None:
    router.delete("/v2/orders/o-1").respond(
        422, json={"code": 42210000, "message": "order is not cancelable"}
    )

    with pytest.raises(OrderNotCancelable) as caught:
        broker.cancel("o-1")

    assert caught.value.broker_order_id == "o-1"
    assert "not cancelable" in str(caught.value)


def test_cancel_is_retried(router: respx.Router, broker: AlpacaBroker) -> None:
    route = router.delete("/v2/orders/o-1").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(503), httpx.Response(204)]
    )

    broker.cancel("o-1")

    assert route.call_count == 3


# -- fills and positions -------------------------------------------------------------------


def test_list_fills_reads_activities(router: respx.Router, broker: AlpacaBroker) -> None:
    route = router.get("/v2/account/activities/FILL").respond(200, json=[DOC_FILL])

    page = broker.list_fills(after=datetime(2022, 2, 2, tzinfo=UTC))

    (fill,) = page.items
    assert fill.broker_fill_id == DOC_FILL["id"]
    assert fill.broker_order_id == DOC_FILL["order_id"]
    assert fill.symbol == "AAPL"
    assert fill.side is Side.BUY
    assert fill.quantity == Decimal(2)
    assert fill.price == Decimal("3.14")
    assert fill.fee == Decimal(0)
    assert fill.filled_at == datetime(2022, 2, 2, 18, 55, 9, 981483, tzinfo=UTC)
    assert page.next_token is None
    assert dict(route.calls.last.request.url.params) == {
        "direction": "asc",
        "page_size": "100",
        "after": "2022-02-02T00:00:00.000000Z",
    }


def test_list_fills_pages_by_last_activity_id(router: respx.Router, broker: AlpacaBroker) -> None:
    fills = [
        {**DOC_FILL, "id": f"2022020213550998{i}::x", "qty": i + 1, "price": 3.1} for i in range(3)
    ]
    fills[2]["side"] = "sell_short"
    route = router.get("/v2/account/activities/FILL").respond(200, json=fills)

    page = broker.list_fills(page_size=3, page_token="20220202135509970::prev")

    assert page.next_token == "20220202135509982::x"
    assert [f.quantity for f in page.items] == [Decimal(1), Decimal(2), Decimal(3)]
    assert page.items[0].price == Decimal("3.1")
    assert page.items[2].side is Side.SELL
    assert route.calls.last.request.url.params["page_token"] == "20220202135509970::prev"
    assert route.calls.last.request.url.params["page_size"] == "3"
    with pytest.raises(ValueError, match="page_size"):
        broker.list_fills(page_size=101)


def test_list_fills_keeps_malformed_items(router: respx.Router, broker: AlpacaBroker) -> None:
    bad = {**DOC_FILL, "id": "2::b", "price": None}
    router.get("/v2/account/activities/FILL").respond(
        200, json=[{**DOC_FILL, "id": "1::a"}, bad, {**DOC_FILL, "id": "3::c"}, {"x": 1}]
    )

    page = broker.list_fills(page_size=4)

    assert [f.broker_fill_id for f in page.items] == ["1::a", "3::c"]
    assert [m.raw for m in page.malformed] == [bad, {"x": 1}]
    assert "price is missing" in page.malformed[0].reason
    # The unreadable last item has no id: the next page starts after the last one that has.
    assert page.next_token == "3::c"


def test_list_positions_signs_shorts(router: respx.Router, broker: AlpacaBroker) -> None:
    router.get("/v2/positions").respond(
        200,
        text="""[
          {"symbol":"SPY","qty":"2","side":"long","avg_entry_price":"412.91","market_value":"723.1"},
          {"symbol":"TSLA","qty":"-5","side":"short","avg_entry_price":"180.125"},
          {"symbol":"ETHUSD","qty":0.5,"side":"short","avg_entry_price":null}
        ]""",
    )

    positions = broker.list_positions()

    assert [(p.symbol, p.quantity, p.average_entry_price) for p in positions] == [
        ("SPY", Decimal(2), Decimal("412.91")),
        ("TSLA", Decimal(-5), Decimal("180.125")),
        ("ETHUSD", Decimal("-0.5"), None),
    ]


def test_list_positions_unreadable_fails_the_call(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    router.get("/v2/positions").respond(200, json=[{"symbol": "SPY", "qty": "2", "side": "up"}])

    with pytest.raises(MalformedResponse, match="unknown position side"):
        broker.list_positions()


# -- the secret ----------------------------------------------------------------------------


def test_secret_never_leaks_into_repr_errors_or_logs(
    router: respx.Router,
    make_broker: Callable[..., AlpacaBroker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = make_broker()
    router.get("/v2/orders/o-401").respond(401, json={"message": "unauthorized."})
    router.get("/v2/orders/o-503").respond(503)
    router.get("/v2/orders/o-bad").respond(200, text="{garbage")
    router.get("/v2/orders/o-down").mock(side_effect=httpx.ConnectError("refused"))
    router.post("/v2/orders").mock(side_effect=httpx.ReadTimeout("slow"))
    errors: list[BaseException] = []

    with caplog.at_level(logging.DEBUG):
        calls: list[Callable[[], object]] = [
            lambda: broker.get_order("o-401"),
            lambda: broker.get_order("o-503"),
            lambda: broker.get_order("o-bad"),
            lambda: broker.get_order("o-down"),
            lambda: broker.place(limit_request()),
        ]
        for call in calls:
            with pytest.raises(BrokerError) as caught:
                call()
            errors.append(caught.value)

    assert [type(e) for e in errors] == [
        AuthenticationFailed,
        BrokerUnavailable,
        MalformedResponse,
        BrokerUnavailable,
        AnswerLost,
    ]
    assert caplog.records, "retries should have been logged"
    assert SECRET in router.calls.last.request.headers.values()  # it was really sent
    texts = [repr(broker), str(broker), repr(broker._auth)]
    texts += [f"{e!s} {e!r} {e.__cause__!r} {vars(e)}" for e in errors]
    texts += [r.getMessage() + str(r.exc_text) for r in caplog.records]
    assert KEY_ID in repr(broker)
    for text in texts:
        assert SECRET not in text


def test_from_url_owns_and_closes_its_client() -> None:
    broker = AlpacaBroker.from_url(
        "https://paper-api.alpaca.test", key_id=KEY_ID, secret_key=SECRET, timeout_s=2.5
    )
    client = broker._client
    assert client.timeout.read == 2.5
    assert str(client.base_url) == "https://paper-api.alpaca.test"
    assert broker.kind == "alpaca"

    broker.close()

    assert client.is_closed


def test_close_leaves_a_callers_client_open(broker: AlpacaBroker) -> None:
    broker.close()

    assert not broker._client.is_closed


# -- every HTTP attempt is told to the request observer --------------------------------------


def test_every_attempt_reaches_the_request_observer_with_a_bounded_endpoint(
    router: respx.Router, make_broker: Callable[..., AlpacaBroker]
) -> None:
    """Order ids never become labels; a 503 retried and a connection lost are counted too."""
    seen: list[tuple[str, int | None]] = []
    broker = make_broker(on_request=lambda endpoint, status, _s: seen.append((endpoint, status)))
    router.get(f"/v2/orders/{ORDER_ID}").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, text=DOC_ORDER)]
    )
    router.get("/v2/positions").mock(side_effect=httpx.ConnectError("refused"))
    broker.get_order(ORDER_ID)
    with pytest.raises(BrokerUnavailable):
        broker.list_positions()
    assert seen[:2] == [("GET /v2/orders/{id}", 503), ("GET /v2/orders/{id}", 200)]
    assert seen[2:] == [("GET /v2/positions", None)] * 4  # every attempt, none answered


def test_a_failing_request_observer_does_not_fail_the_request(
    router: respx.Router, make_broker: Callable[..., AlpacaBroker]
) -> None:
    def broken(_endpoint: str, _status: int | None, _elapsed_s: float) -> None:
        raise RuntimeError("observer bug")

    router.get(f"/v2/orders/{ORDER_ID}").respond(200, text=DOC_ORDER)
    assert make_broker(on_request=broken).get_order(ORDER_ID).broker_order_id == ORDER_ID


# -- replacing an order --------------------------------------------------------------------


def replace_request(**fields: Any) -> ReplaceOrderRequest:
    terms: dict[str, Any] = {
        "client_order_id": "new-1",
        "quantity": Decimal("5"),
        "time_in_force": TimeInForce.GTC,
        "limit_price": Decimal("186.25"),
    }
    return ReplaceOrderRequest(**(terms | fields))


def test_replace_patches_the_order_and_reads_the_new_one(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    new = alpaca_order(
        "o-2",
        client_order_id="new-1",
        qty="5",
        limit_price="186.25",
        status="accepted",
        replaces="o-1",
    )
    route = router.patch("/v2/orders/o-1").respond(200, json=new)

    report = broker.replace("o-1", replace_request())

    assert request_json(route) == {
        "client_order_id": "new-1",
        "qty": "5",
        "time_in_force": "gtc",
        "limit_price": "186.25",
    }
    assert (report.broker_order_id, report.replaces, report.status) == (
        "o-2",
        "o-1",
        OrderStatus.NEW,
    )


def test_replace_sends_a_stop_price_and_no_limit_for_a_stop_order(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    route = router.patch("/v2/orders/o-1").respond(
        200, json=alpaca_order("o-2", type="stop", limit_price=None, stop_price="90")
    )

    broker.replace("o-1", replace_request(limit_price=None, stop_price=Decimal("90.00")))

    assert request_json(route) == {
        "client_order_id": "new-1",
        "qty": "5",
        "time_in_force": "gtc",
        "stop_price": "90.00",
    }


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        (422, "order is not replaceable (status pending_cancel)", OrderRejected),
        (422, "client_order_id must be unique", DuplicateClientOrderId),
        (403, "insufficient buying power", OrderRejected),
        (404, "order not found", OrderRejected),
        (401, "request is not authorized", AuthenticationFailed),
    ],
)
def test_a_refused_replace_names_both_orders(
    router: respx.Router,
    broker: AlpacaBroker,
    status: int,
    message: str,
    error: type[BrokerError],
) -> None:
    router.patch("/v2/orders/o-1").respond(status, json={"code": 1, "message": message})

    with pytest.raises(error) as caught:
        broker.replace("o-1", replace_request())

    assert type(caught.value) is error
    assert (caught.value.broker_order_id, caught.value.client_order_id) == ("o-1", "new-1")
    assert message in str(caught.value)


def test_a_replace_whose_answer_is_lost_is_never_sent_again(
    router: respx.Router, broker: AlpacaBroker, sleeps: list[float]
) -> None:
    route = router.patch("/v2/orders/o-1").mock(
        side_effect=[httpx.Response(504), httpx.Response(200, json=alpaca_order("o-2"))]
    )

    with pytest.raises(AnswerLost):
        broker.replace("o-1", replace_request())

    assert route.call_count == 1
    assert sleeps == []


def test_replace_counts_under_a_bounded_endpoint_label(
    router: respx.Router, make_broker: Callable[..., AlpacaBroker]
) -> None:
    seen: list[str] = []
    broker = make_broker(on_request=lambda endpoint, status, seconds: seen.append(endpoint))
    router.patch("/v2/orders/o-1").respond(200, json=alpaca_order("o-2", replaces="o-1"))

    broker.replace("o-1", replace_request())

    assert seen == ["PATCH /v2/orders/{id}"]


def _bracket(parent_status: str = "new", leg_status: str = "held") -> dict[str, Any]:
    """A bracket as Alpaca answers it: the entry, its two exit legs in ``legs``."""
    take = alpaca_order(
        "o-tp",
        client_order_id="venue-1",
        side="sell",
        type="limit",
        limit_price="200",
        status=leg_status,
        order_class="bracket",
        legs=None,
    )
    stop = alpaca_order("o-sl", client_order_id="venue-2", side="sell", type="stop",
                        limit_price=None, stop_price="180", status=leg_status,
                        order_class="bracket", legs=None)  # fmt: skip
    return alpaca_order(ORDER_ID, type="market", limit_price=None, status=parent_status,
                        order_class="bracket", legs=[take, stop])  # fmt: skip


def test_a_bracket_reads_with_its_legs_each_an_order(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    route = router.get(f"/v2/orders/{ORDER_ID}").respond(200, json=_bracket())

    report = broker.get_order(ORDER_ID)

    assert route.calls.last.request.url.params["nested"] == "true"
    assert report.order_class is OrderClass.BRACKET
    take, stop = report.legs
    assert (take.broker_order_id, take.order_type, take.limit_price) == (
        "o-tp", OrderType.LIMIT, Decimal(200))  # fmt: skip
    assert (stop.broker_order_id, stop.order_type, stop.stop_price) == (
        "o-sl", OrderType.STOP, Decimal(180))  # fmt: skip
    assert {(leg.status, leg.raw_status, leg.side) for leg in report.legs} == {
        (OrderStatus.NEW, "held", Side.SELL)}  # fmt: skip
    assert take.legs == ()


@pytest.mark.parametrize("given", [None, "", "simple"])
def test_an_order_without_a_class_is_simple(
    router: respx.Router, broker: AlpacaBroker, given: str | None
) -> None:
    router.get("/v2/orders/o-1").respond(200, json=alpaca_order("o-1", order_class=given))
    report = broker.get_order("o-1")
    assert report.order_class is OrderClass.SIMPLE
    assert report.legs == ()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"order_class": "mleg"}, "unknown order_class 'mleg'"),
        ({"legs": {"id": "x"}}, "legs is dict"),
        ({"legs": [{"id": "x"}]}, "created_at|qty|symbol"),
    ],
)
def test_unreadable_legs_are_malformed_not_dropped(
    router: respx.Router, broker: AlpacaBroker, fields: dict[str, Any], reason: str
) -> None:
    router.get("/v2/orders/o-1").respond(200, json=alpaca_order("o-1", **fields))
    with pytest.raises(MalformedResponse, match=reason):
        broker.get_order("o-1")


def test_place_sends_the_order_class_and_its_legs(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    route = router.post("/v2/orders").respond(200, json=_bracket(parent_status="accepted"))
    request = PlaceOrderRequest(
        CLIENT_ID, "AAPL", Side.BUY, Decimal(10), order_class=OrderClass.BRACKET,
        take_profit_limit_price=Decimal("200.0"), stop_loss_stop_price=Decimal(180),
        stop_loss_limit_price=Decimal("179.5"),
    )  # fmt: skip

    report = broker.place(request)

    body = request_json(route)
    assert body["order_class"] == "bracket"
    assert body["take_profit"] == {"limit_price": "200.0"}
    assert body["stop_loss"] == {"stop_price": "180", "limit_price": "179.5"}
    assert [leg.broker_order_id for leg in report.legs] == ["o-tp", "o-sl"]


def test_a_simple_placement_sends_no_order_class(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    route = router.post("/v2/orders").respond(200, text=DOC_ORDER)
    broker.place(PlaceOrderRequest(CLIENT_ID, "AAPL", Side.BUY, Decimal(1)))
    assert {"order_class", "take_profit", "stop_loss"}.isdisjoint(request_json(route))


def test_a_crypto_position_reads_under_its_pair_symbol(
    router: respx.Router, broker: AlpacaBroker
) -> None:
    crypto = {"symbol": "BTCUSD", "asset_class": "crypto", "side": "long", "qty": "0.0125",
              "avg_entry_price": "64000.5"}  # fmt: skip
    equity = {"symbol": "AAPL", "asset_class": "us_equity", "side": "long", "qty": "3",
              "avg_entry_price": "190"}  # fmt: skip
    router.get("/v2/positions").respond(200, json=[crypto, equity])

    positions = broker.list_positions()

    assert [(p.symbol, p.quantity) for p in positions] == [
        ("BTC/USD", Decimal("0.0125")), ("AAPL", Decimal(3))]  # fmt: skip
