"""The ``user`` channel message (docs' example shape)."""

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

STREAM_ORDER: dict[str, Any] = {
    "avg_price": "50000",
    "cancel_reason": "",
    "client_order_id": "XXX",
    "completion_percentage": "100.00",
    "contract_expiry_type": "UNKNOWN_CONTRACT_EXPIRY_TYPE",
    "cumulative_quantity": "0.01",
    "filled_value": "500",
    "leaves_quantity": "0",
    "limit_price": "50000",
    "number_of_fills": "1",
    "order_id": "YYY",
    "order_side": "BUY",
    "order_type": "LIMIT",
    "outstanding_hold_amount": "0",
    "post_only": "false",
    "product_id": "BTC-USD",
    "product_type": "SPOT",
    "reject_reason": "",
    "retail_portfolio_id": "ZZZ",
    "risk_managed_by": "UNKNOWN_RISK_MANAGEMENT_TYPE",
    "status": "FILLED",
    "stop_price": "",
    "time_in_force": "GOOD_UNTIL_CANCELLED",
    "total_fees": "2",
    "total_value_after_fees": "502",
    "trigger_status": "INVALID_ORDER_TYPE",
    "creation_time": "2024-06-21T18:29:36.669224Z",
    "end_time": "0001-01-01T00:00:00Z",
    "start_time": "0001-01-01T00:00:00Z",
}
AT = datetime(2023, 2, 9, 20, 33, 57, 609931, tzinfo=UTC)


def _message(*orders: dict[str, Any], kind: str = "update", sequence: int = 7) -> bytes:
    return json.dumps(
        {
            "channel": "user",
            "client_id": "",
            "timestamp": "2023-02-09T20:33:57.609931Z",
            "sequence_num": sequence,
            "events": [{"type": kind, "orders": list(orders)}],
        }
    ).encode()


def _order(**changes: Any) -> dict[str, Any]:
    order = copy.deepcopy(STREAM_ORDER)
    order.update(changes)
    return order


def test_update_event_becomes_an_order_report() -> None:
    events, malformed = parse.parse_user_message(_message(STREAM_ORDER))

    assert malformed == []
    (event,) = events
    assert (event.kind, event.at, event.event_id) == ("update", AT, "7:YYY")
    report = event.report
    assert report.broker_order_id == "YYY"
    assert report.client_order_id == "XXX"
    assert report.side is Side.BUY
    assert (report.order_type, report.time_in_force) == (OrderType.LIMIT, TimeInForce.GTC)
    assert report.status is OrderStatus.FILLED
    assert not report.states_terms  # filled + left is not the order's size once it ended
    assert report.quantity == Decimal("0.01")
    assert report.filled_quantity == Decimal("0.01")
    assert report.average_fill_price == Decimal("50000")
    assert report.fees == Decimal("2")
    assert report.stop_price is None
    assert report.filled_at == AT


def test_snapshot_of_open_orders_with_mixed_case_type() -> None:
    order = _order(
        status="OPEN",
        cumulative_quantity="0",
        leaves_quantity="0.001",
        avg_price="0",
        order_type="Limit",
    )

    events, _ = parse.parse_user_message(_message(order, kind="snapshot"))

    report = events[0].report
    assert events[0].kind == "snapshot"
    assert report.status is OrderStatus.NEW
    assert report.quantity == Decimal("0.001")
    assert report.average_fill_price is None


def test_unreadable_order_is_kept_apart_and_the_rest_read() -> None:
    bad = _order(status="UNKNOWN_ORDER_STATUS")

    events, malformed = parse.parse_user_message(_message(bad, _order(order_id="ok")))

    assert [e.report.broker_order_id for e in events] == ["ok"]
    assert [m.raw for m in malformed] == [bad]


def test_other_channel_is_an_error() -> None:
    with pytest.raises(ParseError, match="channel"):
        parse.parse_user_message(json.dumps({"channel": "heartbeats"}).encode())
