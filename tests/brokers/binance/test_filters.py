"""exchangeInfo filters checked before placing: each names the filter and the values."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from brokers.binance import filters
from brokers.binance.parse import ParseError
from core.enums import OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest

# Shaped as rest-api.md's exchangeInfo example, with BTCUSDT's filters.
EXCHANGE_INFO = json.loads("""
{"timezone":"UTC","serverTime":1565246363776,
 "rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000},
  {"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":50}],
 "exchangeFilters":[],
 "symbols":[{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","baseAssetPrecision":8,
  "quoteAsset":"USDT","quotePrecision":8,"orderTypes":["LIMIT","MARKET"],
  "filters":[
   {"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1000000.00000000","tickSize":"0.01000000"},
   {"filterType":"LOT_SIZE","minQty":"0.00010000","maxQty":"9000.00000000","stepSize":"0.00001000"},
   {"filterType":"MARKET_LOT_SIZE","minQty":"0.00000000","maxQty":"100.00000000","stepSize":"0.00000000"},
   {"filterType":"NOTIONAL","minNotional":"5.00000000","applyMinToMarket":true,
    "maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5}]}]}
""")
RULES = filters.parse_symbol_rules(EXCHANGE_INFO, "BTCUSDT")


def _order(
    quantity: str | None = "0.001",
    order_type: OrderType = OrderType.LIMIT,
    price: str | None = "50000",
    notional: str | None = None,
) -> PlaceOrderRequest:
    return PlaceOrderRequest(
        client_order_id="c1", symbol="BTCUSDT", side=Side.BUY,
        quantity=None if quantity is None else Decimal(quantity), order_type=order_type,
        time_in_force=TimeInForce.GTC, limit_price=None if price is None else Decimal(price),
        notional=None if notional is None else Decimal(notional),
    )  # fmt: skip


def test_rules_name_the_assets_and_the_weight_limit() -> None:
    assert (RULES.base_asset, RULES.quote_asset) == ("BTC", "USDT")
    assert filters.weight_limit(EXCHANGE_INFO) == 6000


def test_an_unlisted_symbol_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="ETHBTC"):
        filters.parse_symbol_rules(EXCHANGE_INFO, "ETHBTC")


def test_a_good_limit_order_passes() -> None:
    assert filters.check_order(RULES, _order()) is None


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_order(quantity="0.00001"), "LOT_SIZE: quantity 0.00001 is below minQty 0.0001"),
        (_order(quantity="9001"), "LOT_SIZE: quantity 9001 is above maxQty 9000"),
        (_order(quantity="0.000105"),
         "LOT_SIZE: quantity 0.000105 is not a multiple of stepSize 0.00001"),
        (_order(price="50000.005"),
         "PRICE_FILTER: price 50000.005 is not a multiple of tickSize 0.01"),
        (_order(price="0.001", quantity="1"), "PRICE_FILTER: price 0.001 is below minPrice 0.01"),
        (_order(quantity="0.0001", price="100"), "NOTIONAL: notional 0.01 is below minNotional 5"),
        (_order(quantity="101", order_type=OrderType.MARKET, price=None),
         "MARKET_LOT_SIZE: quantity 101 is above maxQty 100"),
        (_order(quantity=None, order_type=OrderType.MARKET, price=None, notional="1"),
         "NOTIONAL: notional 1 is below minNotional 5"),
    ],
)  # fmt: skip
def test_a_broken_filter_is_named_with_its_values(
    request_: PlaceOrderRequest, message: str
) -> None:
    assert filters.check_order(RULES, request_) == message


def test_a_market_order_by_quantity_skips_the_notional_check() -> None:
    """Its price is not known before it fills."""
    assert filters.check_order(RULES, _order("0.0001", OrderType.MARKET, None)) is None


def test_zero_figures_turn_a_check_off() -> None:
    # MARKET_LOT_SIZE has minQty 0 and stepSize 0: only maxQty applies.
    assert filters.check_order(RULES, _order("0.00011", OrderType.MARKET, None)) is None
