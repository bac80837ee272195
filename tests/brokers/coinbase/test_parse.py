"""Coinbase JSON → normalized reports, on the documented payloads (docs' placeholder ids)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from brokers.coinbase import parse
from brokers.coinbase.values import ParseError
from core.enums import OrderStatus, OrderType, Side, TimeInForce

# GET /orders/historical/{id} (docs example shape, trimmed as in the reference fixture).
ORDER: dict[str, Any] = {
    "order_id": "0000-000000-000000",
    "product_id": "BTC-USD",
    "user_id": "2222-000000-000000",
    "order_configuration": {
        "limit_limit_gtc": {"base_size": "0.001", "limit_price": "10000.00", "post_only": False}
    },
    "side": "BUY",
    "client_order_id": "11111-000000-000000",
    "status": "OPEN",
    "time_in_force": "GOOD_UNTIL_CANCELLED",
    "created_time": "2021-05-31T09:59:59.000Z",
    "completion_percentage": "0",
    "filled_size": "0",
    "average_filled_price": "0",
    "fee": "",
    "number_of_fills": "0",
    "filled_value": "0",
    "pending_cancel": False,
    "size_in_quote": False,
    "total_fees": "0",
    "size_inclusive_of_fees": False,
    "total_value_after_fees": "0",
    "trigger_status": "INVALID_ORDER_TYPE",
    "order_type": "LIMIT",
    "reject_reason": "REJECT_REASON_UNSPECIFIED",
    "settled": False,
    "product_type": "SPOT",
    "reject_message": "",
    "cancel_message": "",
    "order_placement_source": "RETAIL_ADVANCED",
    "outstanding_hold_amount": "10.00",
    "is_liquidation": False,
    "last_fill_time": None,
}
# GET /orders/historical/fills, one item (docs example shape).
FILL: dict[str, Any] = {
    "entry_id": "22222-2222222-22222222",
    "trade_id": "1111-11111-111111",
    "order_id": "0000-000000-000000",
    "trade_time": "2021-05-31T09:59:59.123456Z",
    "trade_type": "FILL",
    "price": "10000.00",
    "size": "0.001",
    "commission": "1.25",
    "product_id": "BTC-USD",
    "sequence_timestamp": "2021-05-31T09:59:59.200Z",
    "liquidity_indicator": "MAKER",
    "size_in_quote": False,
    "user_id": "3333-333333-3333333",
    "side": "BUY",
    "retail_portfolio_id": "4444-444444-4444444",
}
# GET /accounts, one item.
ACCOUNT: dict[str, Any] = {
    "uuid": "8bfc20d7-f7c6-4422-bf07-8243ca4169fe",
    "name": "BTC Wallet",
    "currency": "BTC",
    "available_balance": {"value": "1.23", "currency": "BTC"},
    "default": False,
    "active": True,
    "created_at": "2021-05-31T09:59:59.000Z",
    "updated_at": "2021-05-31T09:59:59.000Z",
    "deleted_at": None,
    "type": "ACCOUNT_TYPE_CRYPTO",
    "ready": True,
    "hold": {"value": "0.02", "currency": "BTC"},
    "retail_portfolio_id": "b87a2d3f-8a1e-49b3-a4ea-402d8c389379",
}


def _order(**changes: Any) -> dict[str, Any]:
    order = copy.deepcopy(ORDER)
    order.update(changes)
    return order


def test_open_limit_order() -> None:
    report = parse.parse_order(ORDER)

    assert report.broker_order_id == "0000-000000-000000"
    assert report.client_order_id == "11111-000000-000000"
    assert report.symbol == "BTC-USD"
    assert report.side is Side.BUY
    assert (report.order_type, report.time_in_force) == (OrderType.LIMIT, TimeInForce.GTC)
    assert report.quantity == Decimal("0.001")
    assert report.limit_price == Decimal("10000.00")
    assert report.status is OrderStatus.NEW
    assert report.raw_status == "OPEN"
    assert report.filled_quantity == 0
    assert report.average_fill_price is None  # Coinbase writes "0" when nothing filled
    assert report.created_at == datetime(2021, 5, 31, 9, 59, 59, tzinfo=UTC)
    assert report.reject_reason is None
    assert report.fees == 0


def test_partly_filled_open_order() -> None:
    report = parse.parse_order(
        _order(
            filled_size="0.0004",
            average_filled_price="9999.5",
            total_fees="0.02",
            last_fill_time="2021-05-31T10:00:01.5Z",
        )
    )

    assert report.status is OrderStatus.PARTIALLY_FILLED
    assert report.filled_quantity == Decimal("0.0004")
    assert report.average_fill_price == Decimal("9999.5")
    assert report.fees == Decimal("0.02")
    assert report.updated_at == datetime(2021, 5, 31, 10, 0, 1, 500000, tzinfo=UTC)
    assert report.filled_at is None


@pytest.mark.parametrize(
    ("raw", "filled", "expected"),
    [
        ("PENDING", "0", OrderStatus.PENDING_NEW),
        ("QUEUED", "0", OrderStatus.PENDING_NEW),
        ("OPEN", "0", OrderStatus.NEW),
        ("OPEN", "0.0001", OrderStatus.PARTIALLY_FILLED),
        ("EDIT_QUEUED", "0", OrderStatus.NEW),
        ("CANCEL_QUEUED", "0.0001", OrderStatus.PENDING_CANCEL),
        ("FILLED", "0.001", OrderStatus.FILLED),
        ("CANCELLED", "0.0001", OrderStatus.CANCELED),
        ("EXPIRED", "0", OrderStatus.EXPIRED),
        ("FAILED", "0", OrderStatus.REJECTED),
    ],
)
def test_every_status(raw: str, filled: str, expected: OrderStatus) -> None:
    report = parse.parse_order(_order(status=raw, filled_size=filled))

    assert report.status is expected
    assert report.raw_status == raw


def test_open_order_with_a_cancel_pending_is_pending_cancel() -> None:
    assert parse.parse_order(_order(pending_cancel=True)).status is OrderStatus.PENDING_CANCEL


@pytest.mark.parametrize("raw", ["UNKNOWN_ORDER_STATUS", "open", "SOMETHING_NEW"])
def test_unknown_status_is_an_error_not_a_guess(raw: str) -> None:
    with pytest.raises(ParseError, match="unknown order status"):
        parse.parse_order(_order(status=raw))


def test_filled_order_has_its_fill_time() -> None:
    report = parse.parse_order(
        _order(
            status="FILLED",
            filled_size="0.001",
            average_filled_price="10000",
            last_fill_time="2021-05-31T10:00:00Z",
        )
    )

    assert report.filled_at == datetime(2021, 5, 31, 10, tzinfo=UTC)


def test_failed_order_keeps_its_reason() -> None:
    report = parse.parse_order(
        _order(
            status="FAILED",
            reject_reason="INSUFFICIENT_FUNDS",
            reject_message="Insufficient balance in source account",
        )
    )

    assert report.status is OrderStatus.REJECTED
    assert report.reject_reason == "Insufficient balance in source account"


@pytest.mark.parametrize(
    ("config", "kind", "tif", "quantity", "notional", "stop"),
    [
        (
            {"market_market_ioc": {"quote_size": "10.00"}},
            OrderType.MARKET,
            TimeInForce.IOC,
            None,
            Decimal("10.00"),
            None,
        ),
        (
            {"market_market_ioc": {"base_size": "0.001"}},
            OrderType.MARKET,
            TimeInForce.IOC,
            Decimal("0.001"),
            None,
            None,
        ),
        (
            {"sor_limit_ioc": {"base_size": "0.001", "limit_price": "10000.00"}},
            OrderType.LIMIT,
            TimeInForce.IOC,
            Decimal("0.001"),
            None,
            None,
        ),
        (
            {"limit_limit_fok": {"base_size": "0.001", "limit_price": "10000.00"}},
            OrderType.LIMIT,
            TimeInForce.FOK,
            Decimal("0.001"),
            None,
            None,
        ),
        (
            {
                "limit_limit_gtd": {
                    "base_size": "0.001",
                    "limit_price": "10000.00",
                    "end_time": "2021-05-31T09:59:59.000Z",
                    "post_only": False,
                }
            },
            OrderType.LIMIT,
            TimeInForce.DAY,
            Decimal("0.001"),
            None,
            None,
        ),
        (
            {
                "stop_limit_stop_limit_gtc": {
                    "base_size": "0.001",
                    "limit_price": "10000.00",
                    "stop_price": "20000.00",
                    "stop_direction": "STOP_DIRECTION_STOP_UP",
                }
            },
            OrderType.STOP_LIMIT,
            TimeInForce.GTC,
            Decimal("0.001"),
            None,
            Decimal("20000.00"),
        ),
    ],
)
def test_order_configurations(
    config: dict[str, Any],
    kind: OrderType,
    tif: TimeInForce,
    quantity: Decimal | None,
    notional: Decimal | None,
    stop: Decimal | None,
) -> None:
    report = parse.parse_order(_order(order_configuration=config))

    assert (report.order_type, report.time_in_force) == (kind, tif)
    assert (report.quantity, report.notional, report.stop_price) == (quantity, notional, stop)


def test_unknown_configuration_is_an_error() -> None:
    config = {
        "trigger_bracket_gtc": {"base_size": "1", "limit_price": "1", "stop_trigger_price": "1"}
    }
    with pytest.raises(ParseError, match="order_configuration"):
        parse.parse_order(_order(order_configuration=config))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("order_id", None, "order_id"),
        ("side", "BUYSELL", "side"),
        ("created_time", "yesterday", "created_time"),
        ("created_time", "2021-05-31T09:59:59", "no timezone"),
        ("filled_size", "lots", "filled_size"),
        ("filled_size", 0.5, "filled_size"),  # a float is never money
    ],
)
def test_unreadable_fields_are_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse.parse_order(_order(**{field: value}))


def test_get_order_answer_is_wrapped_in_order() -> None:
    body = json.dumps({"order": ORDER}).encode()

    assert parse.parse_order_answer(body).broker_order_id == "0000-000000-000000"


def test_fill() -> None:
    fill = parse.parse_fill(FILL)

    assert fill.broker_fill_id == "22222-2222222-22222222"
    assert fill.broker_order_id == "0000-000000-000000"
    assert fill.symbol == "BTC-USD"
    assert fill.side is Side.BUY
    assert (fill.quantity, fill.price) == (Decimal("0.001"), Decimal("10000.00"))
    assert (fill.fee, fill.fee_asset) == (Decimal("1.25"), None)  # money, in the quote (USD)
    assert fill.filled_at == datetime(2021, 5, 31, 9, 59, 59, 123456, tzinfo=UTC)


def test_fill_sized_in_quote_is_converted_to_base() -> None:
    fill = parse.parse_fill({**FILL, "size": "25.00", "price": "50000", "size_in_quote": True})

    assert fill.quantity == Decimal("0.0005")
    assert fill.price == Decimal("50000")


@pytest.mark.parametrize("trade_type", ["REVERSAL", "CORRECTION", "SYNTHETIC"])
def test_a_fill_that_changes_another_is_not_an_execution(trade_type: str) -> None:
    with pytest.raises(ParseError, match="not an execution"):
        parse.parse_fill({**FILL, "trade_type": trade_type})


def test_fill_without_entry_id_is_an_error() -> None:
    with pytest.raises(ParseError, match="entry_id"):
        parse.parse_fill({**FILL, "entry_id": ""})


def test_account_is_a_position_of_available_plus_hold() -> None:
    position = parse.parse_position(ACCOUNT)

    assert position is not None
    assert (position.symbol, position.quantity) == ("BTC", Decimal("1.25"))
    assert position.average_entry_price is None


def test_empty_account_is_no_position() -> None:
    empty = {
        **ACCOUNT,
        "available_balance": {"value": "0", "currency": "BTC"},
        "hold": {"value": "0", "currency": "BTC"},
    }

    assert parse.parse_position(empty) is None


def test_listing_follows_has_next_and_cursor() -> None:
    more = json.dumps({"orders": [ORDER], "has_next": True, "cursor": "789100"}).encode()
    last = json.dumps({"orders": [ORDER], "has_next": False, "cursor": ""}).encode()
    fills = json.dumps({"fills": [FILL], "cursor": ""}).encode()

    assert parse.listing(more, "orders") == ([ORDER], "789100")
    assert parse.listing(last, "orders") == ([ORDER], None)
    assert parse.listing(fills, "fills")[1] is None


def test_placed_success_and_failure() -> None:
    success = {
        "success": True,
        "success_response": {
            "order_id": "11111-00000-000000",
            "product_id": "BTC-USD",
            "side": "BUY",
            "client_order_id": "c-1",
        },
    }
    failure = {
        "success": False,
        "failure_reason": "UNKNOWN_FAILURE_REASON",
        "error_response": {
            "error": "INSUFFICIENT_FUND",
            "message": "Insufficient balance in source account",
            "error_details": "",
            "preview_failure_reason": "PREVIEW_INSUFFICIENT_FUND",
        },
    }

    assert parse.parse_placed(json.dumps(success).encode()).order_id == "11111-00000-000000"
    refused = parse.parse_placed(json.dumps(failure).encode())
    assert refused.order_id is None
    assert refused.reason == (
        "INSUFFICIENT_FUND; Insufficient balance in source account; PREVIEW_INSUFFICIENT_FUND"
    )


def test_cancel_results() -> None:
    ok = {
        "results": [
            {
                "success": True,
                "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON",
                "order_id": "0000-00000",
            }
        ]
    }
    gone = {
        "results": [
            {"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": "0000-00000"}
        ]
    }

    assert parse.parse_cancel(json.dumps(ok).encode(), "0000-00000") is None
    assert parse.parse_cancel(json.dumps(gone).encode(), "0000-00000") == "UNKNOWN_CANCEL_ORDER"


def test_error_message_from_coinbase_error_body() -> None:
    body = json.dumps(
        {
            "error": "NOT_FOUND",
            "error_details": "order with this orderID was not found",
            "message": "order with this orderID was not found",
        }
    ).encode()

    message = parse.error_message(body, 404)

    assert message.startswith("HTTP 404: NOT_FOUND")
    assert parse.error_message(b"<html>bad gateway</html>", 502) == (
        "HTTP 502: <html>bad gateway</html>"
    )
