"""Tradier's documented JSON → reports. Fixtures are Tradier's own samples: the order list
of docs.tradier.com/docs/orders (also in documentation.tradier.com get-account-orders and
jiak94/asynctradier@5dcb3f8 tests), the positions of jiak94/asynctradier's tests, the
errors of documentation.tradier.com/brokerage-api/overview/errors and prurph/tradierpy."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from brokers.tradier import parse
from brokers.tradier.tags import tag_for
from brokers.values import ParseError, loads
from core.enums import OrderClass, OrderStatus, OrderType, Side, TimeInForce

# docs.tradier.com/docs/orders, first order (the Get Order sample too).
EQUITY: dict[str, Any] = {
    "id": 228175, "type": "limit", "symbol": "AAPL", "side": "buy", "quantity": 50.00000000,
    "status": "expired", "duration": "pre", "price": 22.0, "avg_fill_price": 0.00000000,
    "exec_quantity": 0.00000000, "last_fill_price": 0.00000000, "last_fill_quantity": 0.00000000,
    "remaining_quantity": 0.00000000, "create_date": "2018-06-01T12:02:29.682Z",
    "transaction_date": "2018-06-01T12:30:02.385Z", "class": "equity",
}  # fmt: skip
# docs.tradier.com/docs/orders, second order.
OPTION: dict[str, Any] = {
    "id": 228749, "type": "market", "symbol": "SPY", "side": "buy_to_open",
    "quantity": 1.00000000, "status": "expired", "duration": "pre",
    "avg_fill_price": 0.00000000, "exec_quantity": 0.00000000, "last_fill_price": 0.00000000,
    "last_fill_quantity": 0.00000000, "remaining_quantity": 0.00000000,
    "create_date": "2018-06-06T20:16:17.342Z", "transaction_date": "2018-06-06T20:16:17.357Z",
    "class": "option", "option_symbol": "SPY180720C00274000",
}  # fmt: skip
# docs.tradier.com/docs/orders, third order (a combo: an equity leg and an option leg).
COMBO: dict[str, Any] = {
    "id": 229063, "type": "debit", "symbol": "SPY", "side": "buy", "quantity": 1.00000000,
    "status": "canceled", "duration": "pre", "price": 42.0, "avg_fill_price": 0.00,
    "exec_quantity": 0.00000000, "last_fill_price": 0.00000000,
    "last_fill_quantity": 0.00000000, "remaining_quantity": 0.00000000,
    "create_date": "2018-06-12T21:13:36.076Z", "transaction_date": "2018-06-12T21:18:41.604Z",
    "class": "combo", "num_legs": 2, "strategy": "covered call",
    "leg": [
        {"id": 229064, "type": "debit", "symbol": "SPY", "side": "buy",
         "quantity": 100.00000000, "status": "canceled", "duration": "pre", "price": 42.0,
         "avg_fill_price": 0.00000000, "exec_quantity": 0.00000000,
         "last_fill_price": 0.00000000, "last_fill_quantity": 0.00000000,
         "remaining_quantity": 0.00000000, "create_date": "2018-06-12T21:13:36.076Z",
         "transaction_date": "2018-06-12T21:18:41.587Z", "class": "equity"},
        {"id": 229065, "type": "debit", "symbol": "SPY", "side": "sell_to_close",
         "quantity": 1.00000000, "status": "canceled", "duration": "pre", "price": 42.0,
         "avg_fill_price": 0.00000000, "exec_quantity": 0.00000000,
         "last_fill_price": 0.00000000, "last_fill_quantity": 0.00000000,
         "remaining_quantity": 0.00000000, "create_date": "2018-06-12T21:13:36.076Z",
         "transaction_date": "2018-06-12T21:18:41.593Z", "class": "option",
         "option_symbol": "SPY180720C00274000"},
    ],
}  # fmt: skip
# A filled two-leg multileg order, shaped as the docs' order fields and prurph/tradierpy's
# MultilegOrderResponse describe it (the legs' own avg_fill_price are their prices).
MULTILEG: dict[str, Any] = {
    "id": 300100, "type": "debit", "symbol": "SPY", "side": "buy", "quantity": 1.0,
    "status": "filled", "duration": "day", "price": 1.25, "avg_fill_price": 1.20,
    "exec_quantity": 1.0, "last_fill_price": 1.20, "last_fill_quantity": 1.0,
    "remaining_quantity": 0.0, "create_date": "2024-01-10T15:00:00.000Z",
    "transaction_date": "2024-01-10T15:00:01.500Z", "class": "multileg", "num_legs": 2,
    "strategy": "spread", "tag": "oc-spread-2D1",
    "leg": [
        {"id": 300101, "type": "debit", "symbol": "SPY", "side": "buy_to_open",
         "quantity": 1.0, "status": "filled", "duration": "day", "price": 1.25,
         "avg_fill_price": 3.10, "exec_quantity": 1.0, "last_fill_price": 3.10,
         "last_fill_quantity": 1.0, "remaining_quantity": 0.0,
         "create_date": "2024-01-10T15:00:00.000Z",
         "transaction_date": "2024-01-10T15:00:01.500Z", "class": "option",
         "option_symbol": "SPY240119C00470000"},
        {"id": 300102, "type": "debit", "symbol": "SPY", "side": "sell_to_open",
         "quantity": 1.0, "status": "filled", "duration": "day", "price": 1.25,
         "avg_fill_price": 1.90, "exec_quantity": 1.0, "last_fill_price": 1.90,
         "last_fill_quantity": 1.0, "remaining_quantity": 0.0,
         "create_date": "2024-01-10T15:00:00.000Z",
         "transaction_date": "2024-01-10T15:00:01.500Z", "class": "option",
         "option_symbol": "SPY240119C00475000"},
    ],
}  # fmt: skip


def body(value: object) -> bytes:
    return json.dumps(value, default=str).encode()  # a Decimal as a decimal string


def read(value: object) -> Any:
    """As the adapter reads a body: JSON numbers as Decimal."""
    return loads(body(value))


def order(**changes: Any) -> Any:
    """The docs' equity order, changed, as read from JSON."""
    return read({**EQUITY, **changes})


def test_the_documented_equity_order() -> None:
    report = parse.parse_order(read(EQUITY))

    assert report.broker_order_id == "228175"
    assert (report.symbol, report.side, report.order_type) == ("AAPL", Side.BUY, OrderType.LIMIT)
    assert report.quantity == Decimal("50")
    assert isinstance(report.quantity, Decimal)
    assert (report.status, report.raw_status) == (OrderStatus.EXPIRED, "expired")
    assert report.time_in_force is TimeInForce.DAY  # "pre": a day order of the pre-market
    assert report.limit_price == Decimal("22.0")
    assert report.stop_price is None
    assert report.filled_quantity == 0
    assert report.average_fill_price is None
    assert report.created_at == datetime(2018, 6, 1, 12, 2, 29, 682000, tzinfo=UTC)
    assert report.updated_at == datetime(2018, 6, 1, 12, 30, 2, 385000, tzinfo=UTC)
    assert report.client_order_id is None
    assert report.fees is None
    assert report.order_class is OrderClass.SIMPLE
    assert report.legs == ()
    assert report.raw["duration"] == "pre"


def test_an_option_order_is_reported_under_its_occ_symbol() -> None:
    report = parse.parse_order(read(OPTION))

    assert report.symbol == "SPY180720C00274000"
    assert (report.side, report.order_type) == (Side.BUY, OrderType.MARKET)
    assert report.limit_price is None


def test_a_combo_order_comes_with_its_legs() -> None:
    report = parse.parse_order(read(COMBO))

    assert report.status is OrderStatus.CANCELED
    assert report.canceled_at == datetime(2018, 6, 12, 21, 18, 41, 604000, tzinfo=UTC)
    assert report.order_type is OrderType.LIMIT
    assert report.limit_price == Decimal("42.0")
    equity, option = report.legs
    assert (equity.broker_order_id, equity.symbol, equity.side) == ("229064", "SPY", Side.BUY)
    assert equity.quantity == 100
    assert (option.broker_order_id, option.symbol, option.side) == (
        "229065", "SPY180720C00274000", Side.SELL,
    )  # fmt: skip


def test_a_multileg_order_leaves_its_fills_to_its_legs() -> None:
    """Its avg_fill_price is a net debit, no price of SPY: a fill derived from it would be a
    phantom SPY trade, so it reports none; each leg carries its own price."""
    report = parse.parse_order(read(MULTILEG))

    assert report.client_order_id == "spread-1"
    assert report.status is OrderStatus.FILLED
    assert report.filled_quantity == 1
    assert report.average_fill_price is None
    first, second = report.legs
    assert (first.symbol, first.side, first.average_fill_price) == (
        "SPY240119C00470000", Side.BUY, Decimal("3.10"),
    )  # fmt: skip
    assert (second.symbol, second.side, second.average_fill_price) == (
        "SPY240119C00475000", Side.SELL, Decimal("1.90"),
    )  # fmt: skip
    assert first.filled_at == datetime(2024, 1, 10, 15, 0, 1, 500000, tzinfo=UTC)


def test_a_single_leg_object_is_one_leg() -> None:
    combo = copy.deepcopy(COMBO)
    combo["leg"] = combo["leg"][0]

    assert len(parse.parse_order(read(combo)).legs) == 1


def test_our_tag_reads_back_as_our_client_order_id_and_another_is_dropped() -> None:
    ours = parse.parse_order(order(tag=tag_for("entry_7.a:b")))
    theirs = parse.parse_order(order(tag="my-tag-example-1"))

    assert ours.client_order_id == "entry_7.a:b"
    assert theirs.client_order_id is None
    assert theirs.raw["tag"] == "my-tag-example-1"


@pytest.mark.parametrize(
    ("raw_status", "executed", "expected"),
    [
        ("pending", "0", OrderStatus.PENDING_NEW),
        ("open", "0", OrderStatus.NEW),
        ("open", "20", OrderStatus.PARTIALLY_FILLED),
        ("partially_filled", "20", OrderStatus.PARTIALLY_FILLED),
        ("partially_filled", "50", OrderStatus.FILLED),
        ("filled", "50", OrderStatus.FILLED),
        ("expired", "0", OrderStatus.EXPIRED),
        ("canceled", "10", OrderStatus.CANCELED),
        ("rejected", "0", OrderStatus.REJECTED),
        ("error", "0", OrderStatus.REJECTED),
        ("calculated", "0", OrderStatus.NEW),
        ("accepted_for_bidding", "0", OrderStatus.NEW),
        ("held", "0", OrderStatus.NEW),
    ],
)
def test_statuses(raw_status: str, executed: str, expected: OrderStatus) -> None:
    report = parse.parse_order(order(status=raw_status, exec_quantity=Decimal(executed)))

    assert report.status is expected
    assert report.raw_status == raw_status


def test_a_partial_fill_carries_the_cumulative_figures_the_worker_derives_fills_from() -> None:
    report = parse.parse_order(read({**EQUITY, **dict(
        status="partially_filled", exec_quantity=20.0, avg_fill_price=21.95,
        last_fill_price=21.9, last_fill_quantity=5.0, remaining_quantity=30.0, duration="gtc",
    )}))  # fmt: skip

    assert report.filled_quantity == Decimal("20.0")
    assert report.average_fill_price == Decimal("21.95")
    assert report.updated_at == datetime(2018, 6, 1, 12, 30, 2, 385000, tzinfo=UTC)
    assert report.time_in_force is TimeInForce.GTC
    assert report.raw["last_fill_quantity"] == Decimal("5.0")


def test_a_rejected_order_says_why() -> None:
    report = parse.parse_order(order(status="rejected", reason_description="Not enough BP"))

    assert report.reject_reason == "Not enough BP"


def test_stop_orders_read_stop_price_and_zero_stop_of_a_limit_is_none() -> None:
    stop_limit = parse.parse_order(order(type="stop_limit", price=22.0, stop_price=21.5))
    limit = parse.parse_order(order(stop_price=0.0))

    assert (stop_limit.order_type, stop_limit.stop_price) == (OrderType.STOP_LIMIT, Decimal("21.5"))
    assert limit.stop_price is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"status": "weird"}, "unknown status 'weird'"),
        ({"side": "sideways"}, "unknown side"),
        ({"duration": "ioc"}, "unknown duration"),
        ({"class": "future"}, "unknown class"),
        ({"quantity": 0}, "quantity is 0"),
        ({"exec_quantity": "x"}, "exec_quantity is not a decimal"),
        ({"create_date": None}, "create_date"),
        ({"id": None}, "id is missing"),
    ],
)
def test_an_unreadable_order_names_what_is_wrong(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse.parse_order(order(**changes))


def test_lists_come_as_null_one_object_or_a_list() -> None:
    assert parse.listing(body({"orders": "null"}), "orders", "order") == []
    assert parse.listing(body({"orders": {"order": EQUITY}}), "orders", "order") == [EQUITY]
    both = parse.listing(body({"orders": {"order": [EQUITY, OPTION]}}), "orders", "order")
    assert [o["id"] for o in both] == [228175, 228749]  # type: ignore[index]
    with pytest.raises(ParseError, match="no 'orders'"):
        parse.listing(body({"order": EQUITY}), "orders", "order")
    with pytest.raises(ParseError, match=r"orders\.order is int"):
        parse.listing(body({"orders": {"order": 3}}), "orders", "order")


# jiak94/asynctradier tests (the docs' positions sample).
POSITIONS = {"positions": {"position": [
    {"cost_basis": 207.01, "date_acquired": "2018-08-08T14:41:11.405Z", "id": 130089,
     "quantity": 1.00000000, "symbol": "AAPL"},
    {"cost_basis": 1870.70, "date_acquired": "2018-08-08T14:42:00.774Z", "id": 130090,
     "quantity": 1.00000000, "symbol": "AMZN"},
]}}  # fmt: skip


def test_positions_read_their_entry_price_from_the_cost_basis() -> None:
    raw = parse.listing(body(POSITIONS), "positions", "position")
    aapl, amzn = (parse.parse_position(p) for p in raw)  # read as Decimal by listing

    assert (aapl.symbol, aapl.quantity, aapl.average_entry_price) == (
        "AAPL", Decimal("1"), Decimal("207.01"),
    )  # fmt: skip
    assert amzn.average_entry_price == Decimal("1870.70")


def test_a_short_and_an_option_position() -> None:
    short = parse.parse_position({"cost_basis": Decimal("-1500"), "quantity": Decimal("-10"),
                                  "symbol": "XYZ", "id": 1})  # fmt: skip
    option = parse.parse_position({"cost_basis": Decimal("620"), "quantity": Decimal("2"),
                                   "symbol": "SPY240119C00470000", "id": 2})  # fmt: skip

    assert (short.quantity, short.average_entry_price) == (Decimal("-10"), Decimal("150"))
    assert option.average_entry_price == Decimal("3.1")  # per share of 100-share contracts


def test_acknowledgements_and_refusals_in_200() -> None:
    placed = parse.acknowledgement(body(
        {"order": {"id": 257459, "status": "ok", "partner_id": "c4998eb7-06e8-4820-a7ab"}}
    ))  # fmt: skip
    refused = parse.acknowledgement(body(
        {"errors": {"error": ["Backoffice rejected override of the order.",
                              "UnexpectedBuyToCoverOrder"]}}
    ))  # fmt: skip
    one = parse.acknowledgement(body({"errors": {"error": "DayTradingBuyingPowerExceeded"}}))

    assert placed == parse.Acknowledged("257459")
    assert refused.order_id is None
    assert (
        refused.refusal == "Backoffice rejected override of the order.; UnexpectedBuyToCoverOrder"
    )
    assert one.refusal == "DayTradingBuyingPowerExceeded"
    with pytest.raises(ParseError, match="order is NoneType"):
        parse.acknowledgement(body({"something": "else"}))


@pytest.mark.parametrize(
    ("raw", "status", "expected"),
    [
        (body({"errors": {"error": ["IncorrectOrderQuantity"]}}), 400,
         "HTTP 400: IncorrectOrderQuantity"),
        (body({"fault": {"faultstring": "Invalid Access Token",
                         "detail": {"errorcode": "keymanagement.service.invalid_access_token"}}}),
         401, "HTTP 401: Invalid Access Token (keymanagement.service.invalid_access_token)"),
        (b"Order is already in a final state", 400, "HTTP 400: Order is already in a final state"),
        (b"", 502, "HTTP 502"),
    ],
)  # fmt: skip
def test_refusal_messages_in_each_shape(raw: bytes, status: int, expected: str) -> None:
    assert parse.message(raw, status) == expected
