"""Notional orders at Alpaca: placed with ``notional`` and no ``qty``, read back with
``"qty": null`` (broker-apis.md, "Notional orders"), on REST and on the stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from brokers.alpaca.adapter import AlpacaBroker
from brokers.alpaca.parse import ParseError, parse_order
from brokers.alpaca.stream import parse_event
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest
from tests.brokers.alpaca.test_adapter import BASE, CLIENT_ID, DOC_ORDER, ORDER_ID

# broker-apis.md §1's GET /v2/orders/{id} fixture as a notional order: "notional": "500"
# with "qty": null (Alpaca answers a notional order so).
DOC_NOTIONAL_ORDER = json.dumps({**json.loads(DOC_ORDER), "notional": "500", "qty": None})


def _notional(**fields: Any) -> dict[str, Any]:
    return {**json.loads(DOC_NOTIONAL_ORDER), **fields}


FILLED_AT = "2021-03-16T18:38:02.1Z"
FILLED = _notional(status="filled", filled_qty="2.666666666", filled_avg_price="187.5",
                   filled_at=FILLED_AT, updated_at=FILLED_AT)  # fmt: skip


@pytest.fixture
def broker() -> Iterator[tuple[AlpacaBroker, respx.Router]]:
    router = respx.Router(base_url=BASE, assert_all_mocked=True)
    client = httpx.Client(base_url=BASE, transport=httpx.MockTransport(router.handler))
    yield AlpacaBroker(client, key_id="PKTEST", secret_key="secret", sleep=lambda _: None), router
    client.close()


def test_a_notional_order_is_placed_with_notional_and_no_qty(
    broker: tuple[AlpacaBroker, respx.Router],
) -> None:
    adapter, router = broker
    route = router.post("/v2/orders").respond(200, text=DOC_NOTIONAL_ORDER)

    report = adapter.place(PlaceOrderRequest(CLIENT_ID, "AAPL", Side.BUY, None,
                                             notional=Decimal("500.00")))  # fmt: skip

    assert json.loads(route.calls[-1].request.content) == {
        "client_order_id": CLIENT_ID, "symbol": "AAPL", "notional": "500.00", "side": "buy",
        "type": "market", "time_in_force": "day",
    }  # fmt: skip
    assert (report.quantity, report.notional) == (None, Decimal(500))
    assert report.status is OrderStatus.NEW


def test_the_documented_notional_order_is_read_with_no_quantity(
    broker: tuple[AlpacaBroker, respx.Router],
) -> None:
    adapter, router = broker
    router.get(f"/v2/orders/{ORDER_ID}").respond(200, text=DOC_NOTIONAL_ORDER)

    report = adapter.get_order(ORDER_ID)

    assert report.quantity is None
    assert report.notional == Decimal(500)
    assert type(report.notional) is Decimal
    assert (report.status, report.raw_status) == (OrderStatus.NEW, "accepted")
    assert (report.order_type, report.time_in_force) == (OrderType.MARKET, TimeInForce.DAY)
    assert report.filled_quantity == 0


def test_a_filled_notional_order_is_filled_with_its_fractional_quantity() -> None:
    report = parse_order(FILLED)

    assert report.status is OrderStatus.FILLED
    assert report.filled_quantity == Decimal("2.666666666")
    assert report.average_fill_price == Decimal("187.5")


def test_a_qty_alpaca_shows_for_a_notional_order_is_not_its_term() -> None:
    assert parse_order(_notional(qty="2.666666666")).quantity is None


@pytest.mark.parametrize(
    ("raw_status", "status"),
    [("calculated", OrderStatus.FILLED), ("done_for_day", OrderStatus.PARTIALLY_FILLED),
     ("new", OrderStatus.PARTIALLY_FILLED), ("partially_filled", OrderStatus.PARTIALLY_FILLED)],
)  # fmt: skip
def test_a_working_status_with_fills_has_no_quantity_to_reach(
    raw_status: str, status: OrderStatus
) -> None:
    report = parse_order(_notional(status=raw_status, filled_qty="1", filled_avg_price="187.5"))

    assert report.status is status


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"notional": "0"}, "notional is 0, expected > 0"),
        ({"notional": "-5"}, "notional is -5, expected > 0"),
        ({"notional": "lots"}, "notional is not a decimal"),
        ({"notional": None}, "qty is missing or null"),
    ],
)
def test_an_unreadable_notional_order_says_why(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_order(_notional(**fields))


def test_a_streamed_fill_of_a_notional_order_is_read() -> None:
    event = parse_event({
        "event": "fill", "execution_id": "e-1", "order": FILLED, "price": "187.5",
        "qty": "2.666666666", "position_qty": "2.666666666",
        "timestamp": "2021-03-16T18:38:02.1Z",
    })  # fmt: skip

    assert event.report.notional == Decimal(500)
    assert event.fill is not None
    assert (event.fill.quantity, event.fill.cum_quantity) == (Decimal("2.666666666"),) * 2
