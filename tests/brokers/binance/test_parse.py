"""Binance's documented payloads -> normalized reports."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokers.binance import parse
from core.enums import OrderStatus, OrderType, Side, TimeInForce

# broker-apis.md §Binance, GET /api/v3/order (rest-api.md).
DOC_ORDER = (
    '{"symbol":"LTCBTC","orderId":1,"orderListId":-1,"clientOrderId":"myOrder1","price":"0.1",'
    '"origQty":"1.0","executedQty":"0.0","cummulativeQuoteQty":"0.0","status":"NEW",'
    '"timeInForce":"GTC","type":"LIMIT","side":"BUY","stopPrice":"0.0","icebergQty":"0.0",'
    '"time":1499827319559,"updateTime":1499827319559,"isWorking":true,'
    '"workingTime":1499827319559,"origQuoteOrderQty":"0.000000","selfTradePreventionMode":"NONE"}'
)
# rest-api.md, POST /api/v3/order response FULL (two of its fills).
DOC_FULL = (
    '{"symbol":"BTCUSDT","orderId":28,"orderListId":-1,"clientOrderId":"6gCrw2kRUAF9CvJDGP16IP",'
    '"transactTime":1507725176595,"price":"0.00000000","origQty":"10.00000000",'
    '"executedQty":"10.00000000","origQuoteOrderQty":"0.000000",'
    '"cummulativeQuoteQty":"10.00000000","status":"FILLED","timeInForce":"GTC","type":"MARKET",'
    '"side":"SELL","workingTime":1507725176595,"selfTradePreventionMode":"NONE","fills":['
    '{"price":"4000.00000000","qty":"1.00000000","commission":"4.00000000",'
    '"commissionAsset":"USDT","tradeId":56},'
    '{"price":"3999.00000000","qty":"5.00000000","commission":"19.99500000",'
    '"commissionAsset":"USDT","tradeId":57}]}'
)
# rest-api.md, DELETE /api/v3/order response.
DOC_CANCEL = (
    '{"symbol":"LTCBTC","origClientOrderId":"myOrder1","orderId":4,"orderListId":-1,'
    '"clientOrderId":"cancelMyOrder1","transactTime":1684804350068,"price":"2.00000000",'
    '"origQty":"1.00000000","executedQty":"0.00000000","origQuoteOrderQty":"0.000000",'
    '"cummulativeQuoteQty":"0.00000000","status":"CANCELED","timeInForce":"GTC","type":"LIMIT",'
    '"side":"BUY","selfTradePreventionMode":"NONE"}'
)
# rest-api.md, GET /api/v3/myTrades.
DOC_TRADE = (
    '{"symbol":"BNBBTC","id":28457,"orderId":100234,"orderListId":-1,"price":"4.00000100",'
    '"qty":"12.00000000","quoteQty":"48.000012","commission":"10.10000000",'
    '"commissionAsset":"BNB","time":1499865549590,"isBuyer":true,"isMaker":false,'
    '"isBestMatch":true}'
)
# user-data-stream.md, executionReport (a trade of the documented shape).
DOC_EXECUTION = (
    '{"e":"executionReport","E":1499405658658,"s":"ETHBTC","c":"mUvoqJxFIILMdfAW5iGSOW",'
    '"S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000","p":"0.10264410","P":"0.00000000",'
    '"F":"0.00000000","g":-1,"C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":4293153,'
    '"l":"0.40000000","z":"0.40000000","L":"0.10264410","n":"0.00040000","N":"ETH",'
    '"T":1499405658657,"t":1234,"v":3,"I":8641984,"w":false,"m":false,"M":true,'
    '"O":1499405658650,"Z":"0.04105764","Y":"0.04105764","Q":"0.00000000",'
    '"W":1499405658657,"V":"NONE"}'
)


def _load(text: str) -> object:
    return parse.loads(text.encode())


def test_documented_order() -> None:
    order = parse.parse_order(_load(DOC_ORDER))
    assert order.broker_order_id == "LTCBTC:1"
    assert order.client_order_id == "myOrder1"
    assert (order.side, order.order_type, order.time_in_force) == (
        Side.BUY, OrderType.LIMIT, TimeInForce.GTC,
    )  # fmt: skip
    assert (order.status, order.raw_status) == (OrderStatus.NEW, "NEW")
    assert order.quantity == Decimal("1.0")
    assert order.limit_price == Decimal("0.1")
    assert order.stop_price is None  # "0.0": not a stop order
    assert order.average_fill_price is None  # nothing filled
    assert order.created_at == datetime(2017, 7, 12, 2, 41, 59, 559000, tzinfo=UTC)
    assert order.notional is None


def test_full_placement_answer_carries_its_fills_with_fees() -> None:
    order = parse.parse_order(_load(DOC_FULL))
    assert order.status is OrderStatus.FILLED
    assert order.average_fill_price == Decimal(1)  # 10 quote / 10 executed
    assert [f.broker_fill_id for f in order.fills] == ["BTCUSDT:56", "BTCUSDT:57"]
    first = order.fills[0]
    assert (first.broker_order_id, first.side, first.price, first.quantity) == (
        "BTCUSDT:28", Side.SELL, Decimal("4000.00000000"), Decimal("1.00000000"),
    )  # fmt: skip
    assert (first.fee, first.fee_asset) == (Decimal("4.00000000"), "USDT")
    assert order.filled_at == first.filled_at == datetime.fromtimestamp(1507725176.595, UTC)


def test_a_cancel_answer_names_the_order_s_own_client_id() -> None:
    order = parse.parse_order(_load(DOC_CANCEL))
    assert order.client_order_id == "myOrder1"  # not the cancel request's id
    assert order.status is OrderStatus.CANCELED
    assert order.canceled_at is not None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("EXPIRED_IN_MATCH", OrderStatus.EXPIRED), ("PENDING_NEW", OrderStatus.PENDING_NEW),
     ("PARTIALLY_FILLED", OrderStatus.PARTIALLY_FILLED), ("REJECTED", OrderStatus.REJECTED)],
)  # fmt: skip
def test_statuses_keep_the_raw_one(raw: str, expected: OrderStatus) -> None:
    order = parse.parse_order({**json.loads(DOC_ORDER), "status": raw})
    assert (order.status, order.raw_status) == (expected, raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("LIMIT_MAKER", OrderType.LIMIT), ("TAKE_PROFIT", OrderType.STOP),
     ("TAKE_PROFIT_LIMIT", OrderType.STOP_LIMIT), ("STOP_LOSS", OrderType.STOP)],
)  # fmt: skip
def test_types_read_back_as_the_closest_core_type(raw: str, expected: OrderType) -> None:
    assert parse.parse_order({**json.loads(DOC_ORDER), "type": raw}).order_type is expected


def test_a_negative_quote_sum_means_the_average_is_unknown() -> None:
    raw = {**json.loads(DOC_ORDER), "executedQty": "1.0", "cummulativeQuoteQty": "-1.00000000"}
    assert parse.parse_order(raw).average_fill_price is None


def test_a_quote_amount_order_has_a_notional_and_no_quantity() -> None:
    raw = {**json.loads(DOC_ORDER), "type": "MARKET", "origQty": "0.00000000",
           "origQuoteOrderQty": "100.00000000"}  # fmt: skip
    order = parse.parse_order(raw)
    assert (order.quantity, order.notional) == (None, Decimal(100))


def test_a_missing_field_is_a_parse_error_naming_it() -> None:
    raw = json.loads(DOC_ORDER)
    del raw["executedQty"]
    with pytest.raises(parse.ParseError, match="executedQty"):
        parse.parse_order(raw)


def test_documented_trade() -> None:
    fill = parse.parse_trade(_load(DOC_TRADE))
    assert (fill.broker_fill_id, fill.broker_order_id) == ("BNBBTC:28457", "BNBBTC:100234")
    assert (fill.side, fill.quantity, fill.price) == (
        Side.BUY, Decimal(12), Decimal("4.00000100"),
    )  # fmt: skip
    assert (fill.fee, fill.fee_asset, fill.cum_quantity) == (Decimal("10.1"), "BNB", None)


def test_balances_held_become_positions_in_the_asset() -> None:
    account = {"balances": [
        {"asset": "BTC", "free": "4723846.89208129", "locked": "0.00000000"},
        {"asset": "LTC", "free": "0.00000000", "locked": "0.00000000"},
        {"asset": "USDT", "free": "1.5", "locked": "2.5"},
    ]}  # fmt: skip
    positions = parse.parse_balances(account)
    assert [(p.symbol, p.quantity) for p in positions] == [
        ("BTC", Decimal("4723846.89208129")), ("USDT", Decimal(4)),
    ]  # fmt: skip
    assert all(p.average_entry_price is None for p in positions)


@pytest.mark.parametrize("bad", ["", "BTCUSDT", "BTCUSDT:", ":28", "BTCUSDT:x1"])
def test_split_id_refuses_malformed_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="SYMBOL:id"):
        parse.split_id(bad)


def test_split_id() -> None:
    assert parse.split_id("BTCUSDT:28") == ("BTCUSDT", 28)


def test_error_body() -> None:
    assert parse.error_body(b'{"code":-2013,"msg":"Order does not exist."}') == (
        -2013, "Order does not exist.",
    )  # fmt: skip
    assert parse.error_body(b"<html>bad gateway</html>") == (None, "<html>bad gateway</html>")


def test_execution_report_trade_builds_the_fill() -> None:
    event = parse.parse_execution_report(_load(DOC_EXECUTION))
    assert (event.kind, event.event_id) == ("TRADE", "ETHBTC:4293153:8641984")
    assert event.report.status is OrderStatus.PARTIALLY_FILLED
    assert event.report.client_order_id == "mUvoqJxFIILMdfAW5iGSOW"
    assert event.report.average_fill_price == Decimal("0.04105764") / Decimal("0.4")
    fill = event.fill
    assert fill is not None
    assert (fill.broker_fill_id, fill.broker_order_id) == ("ETHBTC:1234", "ETHBTC:4293153")
    assert (fill.quantity, fill.price, fill.cum_quantity) == (
        Decimal("0.4"), Decimal("0.10264410"), Decimal("0.4"),
    )  # fmt: skip
    assert (fill.fee, fill.fee_asset) == (Decimal("0.0004"), "ETH")


def test_execution_report_without_a_trade_has_no_fill() -> None:
    raw = {**json.loads(DOC_EXECUTION), "x": "NEW", "X": "NEW", "t": -1, "l": "0", "z": "0",
           "Z": "0", "N": None}  # fmt: skip
    event = parse.parse_execution_report(raw)
    assert event.fill is None
    assert event.report.average_fill_price is None


def test_execution_report_cancel_names_the_order_s_client_id() -> None:
    raw = {**json.loads(DOC_EXECUTION), "x": "CANCELED", "X": "CANCELED",
           "c": "cancelRequest1", "C": "original1"}  # fmt: skip
    assert parse.parse_execution_report(raw).report.client_order_id == "original1"


@pytest.mark.parametrize(
    ("asset", "fee", "fee_quantity", "fee_asset", "fee_asset_amount"),
    [("USDT", "0.5", "0", None, "0"), ("BTC", "0", "0.5", None, "0"),
     ("BNB", "0", "0", "BNB", "0.5"), (None, "0.5", "0", None, "0")],
)  # fmt: skip
def test_a_commission_is_sorted_into_money_the_asset_traded_or_a_third_asset(
    asset: str | None, fee: str, fee_quantity: str, fee_asset: str | None,
    fee_asset_amount: str,
) -> None:  # fmt: skip
    raw = replace(parse.parse_trade(json.loads(DOC_TRADE)), fee=Decimal("0.5"), fee_asset=asset)
    sorted_ = parse.sort_fee(raw, "BTC", "USDT")
    assert (sorted_.fee, sorted_.fee_quantity, sorted_.fee_asset, sorted_.fee_asset_amount) == (
        Decimal(fee), Decimal(fee_quantity), fee_asset, Decimal(fee_asset_amount))  # fmt: skip
