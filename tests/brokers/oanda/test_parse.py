"""OANDA v20 JSON -> reports, on the documented shapes (payloads.py cites each)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from brokers.oanda import parse
from brokers.values import ParseError
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from tests.brokers.oanda import payloads as p


def _body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_a_pending_limit_order_is_new_with_its_signed_units_as_side() -> None:
    report = parse.parse_order(p.PENDING_LIMIT["order"])
    assert report.broker_order_id == "2309"
    assert report.side is Side.SELL
    assert report.quantity == Decimal(100)
    assert report.order_type is OrderType.LIMIT
    assert report.limit_price == Decimal("1.20000")
    assert report.time_in_force is TimeInForce.GTC
    assert report.status is OrderStatus.NEW
    assert report.raw_status == "PENDING"
    assert report.filled_quantity == 0
    assert report.average_fill_price is None
    assert report.created_at == datetime(2016, 10, 25, 21, 7, 21, 65554, tzinfo=UTC)


def test_a_market_order_filled_in_its_create_answer_carries_the_fill() -> None:
    report = parse.parse_created(_body(p.MARKET_FILLED), "USD")
    assert report.broker_order_id == "6368"
    assert report.client_order_id == "cid-1"
    assert report.status is OrderStatus.FILLED
    assert report.filled_quantity == Decimal(100)
    assert report.time_in_force is TimeInForce.FOK
    (fill,) = report.fills
    assert fill.broker_fill_id == "6369"
    assert fill.broker_order_id == "6368"
    # The trade's own price, not the deprecated ``price`` of the transaction.
    assert fill.price == Decimal("1.07201") == report.average_fill_price
    assert fill.fee == Decimal("0.0500")
    assert fill.fee_asset is None
    assert fill.raw["tradeOpened"]["tradeID"] == "6369"


def test_a_market_order_cancelled_at_creation_is_rejected_with_oandas_reason() -> None:
    report = parse.parse_created(_body(p.MARKET_HALTED), "USD")
    assert report.status is OrderStatus.REJECTED
    assert report.reject_reason == "MARKET_HALTED"
    assert report.filled_quantity == 0
    assert report.fills == ()
    assert report.canceled_at is not None


def test_an_ioc_partly_filled_then_cancelled_is_canceled_with_what_filled() -> None:
    body = copy.deepcopy(p.MARKET_HALTED)
    body["orderCreateTransaction"]["timeInForce"] = "IOC"
    body["orderCancelTransaction"]["reason"] = "INSUFFICIENT_LIQUIDITY"
    body["orderFillTransaction"] = p.fill(6369, 6368, units="40")
    report = parse.parse_created(_body(body), "USD")
    assert report.status is OrderStatus.CANCELED
    assert report.filled_quantity == Decimal(40)


def test_a_limit_order_created_unfilled_is_new() -> None:
    report = parse.parse_created(_body(p.LIMIT_CREATED), "USD")
    assert report.status is OrderStatus.NEW
    assert report.broker_order_id == "2304"
    assert report.limit_price == Decimal("1.20000")
    assert report.side is Side.SELL


def test_a_replace_answer_reads_the_new_order_not_the_old_ones_cancel() -> None:
    body = copy.deepcopy(p.LIMIT_CREATED)
    body["orderCreateTransaction"]["replacesOrderID"] = "2300"
    body["orderCancelTransaction"] = {"type": "ORDER_CANCEL", "orderID": "2300", "id": "2303",
                                      "reason": "CLIENT_REQUEST_REPLACED", "batchID": "2303",
                                      "time": "2016-10-24T21:48:18.593753865Z"}  # fmt: skip
    report = parse.parse_created(_body(body), "USD")
    assert report.status is OrderStatus.NEW
    assert report.replaces == "2300"


@pytest.mark.parametrize(
    ("order", "cancel", "status"),
    [
        ({"replacedByOrderID": "2400"}, None, OrderStatus.REPLACED),
        ({}, {"reason": "CLIENT_REQUEST", "batchID": "9000"}, OrderStatus.CANCELED),
        ({}, {"reason": "TIME_IN_FORCE_EXPIRED", "batchID": "9000"}, OrderStatus.EXPIRED),
        ({}, {"reason": "INSUFFICIENT_MARGIN", "batchID": "2309"}, OrderStatus.REJECTED),
        ({}, {"reason": "LINKED_TRADE_CLOSED", "batchID": "9000"}, OrderStatus.CANCELED),
        ({}, None, OrderStatus.CANCELED),
        ({"type": "MARKET", "timeInForce": "FOK"}, None, OrderStatus.REJECTED),
    ],
)
def test_a_cancelled_order_reads_by_how_it_ended(
    order: dict[str, Any], cancel: dict[str, Any] | None, status: OrderStatus
) -> None:
    raw = {**p.PENDING_LIMIT["order"], "state": "CANCELLED", **order}
    outcome = parse.Outcome(cancel=None if cancel is None else {"time": raw["createTime"],
                                                                **cancel})  # fmt: skip
    assert parse.parse_order(raw, outcome).status is status


def test_a_filled_order_without_its_fill_counts_its_units() -> None:
    raw = {**p.PENDING_LIMIT["order"], "state": "FILLED", "fillingTransactionID": "2310"}
    report = parse.parse_order(raw)
    assert report.status is OrderStatus.FILLED
    assert report.filled_quantity == Decimal(100)
    assert report.average_fill_price is None


def test_triggered_is_still_open_and_unknown_states_are_malformed() -> None:
    raw = {**p.PENDING_LIMIT["order"], "state": "TRIGGERED"}
    assert parse.parse_order(raw).status is OrderStatus.NEW
    with pytest.raises(ParseError, match="unknown order state 'HELD'"):
        parse.parse_order({**raw, "state": "HELD"})
    with pytest.raises(ParseError, match="units is 0"):
        parse.parse_order({**raw, "units": "0"})


def test_market_if_touched_reads_as_a_stop_and_gtd_as_gtc() -> None:
    raw = {**p.PENDING_LIMIT["order"], "type": "MARKET_IF_TOUCHED", "timeInForce": "GTD"}
    report = parse.parse_order(raw)
    assert report.order_type is OrderType.STOP
    assert report.stop_price == Decimal("1.20000")
    assert report.time_in_force is TimeInForce.GTC
    assert report.raw["type"] == "MARKET_IF_TOUCHED"


def test_a_closing_fill_without_trade_prices_uses_the_transaction_price() -> None:
    fill = parse.parse_fill(p.FILL_CLOSE, "USD")
    assert fill.side is Side.SELL
    assert fill.quantity == Decimal(100)
    assert fill.price == Decimal("1.09289")
    assert fill.fee == 0
    assert fill.raw["tradesClosed"][0]["realizedPL"] == "-0.1455"


def test_a_fill_weighs_the_prices_of_the_trades_it_closed_and_opened() -> None:
    raw = p.fill(
        10,
        9,
        units="300",
        tradesClosed=[{"tradeID": "5", "units": "-100", "price": "1.10000", "realizedPL": "1.0"}],
    )
    raw["tradeOpened"] = {"tradeID": "10", "units": "200", "price": "1.10300"}
    assert parse.parse_fill(raw, "USD").price == Decimal("1.10200")


def test_a_commission_in_another_home_currency_is_a_fee_in_that_currency() -> None:
    raw = p.fill(10, 9, instrument="USD_JPY")
    fill = parse.parse_fill(raw, "USD")
    assert fill.fee == 0
    assert fill.fee_asset == "USD"
    assert fill.fee_asset_amount == Decimal("0.05")
    assert parse.parse_fill(p.fill(10, 9), "USD").fee == Decimal("0.05")


def test_positions_net_long_and_short_units() -> None:
    (position,) = parse.parse_positions(_body(p.OPEN_POSITIONS))
    assert position.symbol == "EUR_USD"
    assert position.quantity == Decimal(-100)
    assert position.average_entry_price == Decimal("1.09322")
    hedged = copy.deepcopy(p.OPEN_POSITIONS)
    hedged["positions"][0]["long"].update(units="300", averagePrice="1.08")
    (both,) = parse.parse_positions(_body(hedged))
    assert both.quantity == Decimal(200)
    assert both.average_entry_price is None


def test_instrument_units_rules_and_the_home_currency() -> None:
    instrument = parse.parse_instrument(_body(p.INSTRUMENTS), "EUR_USD")
    assert instrument is not None
    assert instrument.trade_units_precision == 0
    assert instrument.maximum_order_units == Decimal(100_000_000)
    assert parse.parse_instrument(_body(p.INSTRUMENTS), "XAU_USD") is None
    assert parse.home_currency(_body(p.SUMMARY)) == "USD"


def test_the_first_fill_page_is_read_from_the_idrange_urls_from() -> None:
    assert parse.first_page_start(_body(p.transactions_summary(6369, 6400))) == (6369, 6400)
    assert parse.first_page_start(_body(p.transactions_summary(None, 6400))) == (None, 6400)


def test_error_bodies_give_the_reason_and_message() -> None:
    body = _body(p.reject("INSUFFICIENT_MARGIN", "Insufficient margin"))
    assert parse.reject_reason(body) == "INSUFFICIENT_MARGIN"
    assert parse.error_message(body, 400) == "INSUFFICIENT_MARGIN: Insufficient margin"
    assert parse.error_message(_body(p.UNAUTHORIZED), 401) == (
        "Insufficient authorization to perform request."
    )
    assert parse.error_message(b"<html>bad gateway</html>", 502) == "<html>bad gateway</html>"
