"""What OANDA takes before it is asked: the terms, and units per instrument."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.oanda.rules import (
    Instrument,
    default_time_in_force,
    oanda_time_in_force,
    quote_currency,
    terms_problem,
    units_problem,
)
from brokers.registry import terms_problem as registry_terms_problem
from core.enums import BrokerKind, OrderClass, OrderType, TimeInForce

EUR_USD = Instrument("EUR_USD", 0, Decimal(1), Decimal(100_000_000))
BRENT = Instrument("BCO_USD", 1, Decimal("0.1"), None)


def test_simple_market_limit_and_stop_orders_pass() -> None:
    for kind in (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP):
        for tif in (TimeInForce.GTC, TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK):
            assert terms_problem("EUR_USD", kind, tif, OrderClass.SIMPLE) is None


@pytest.mark.parametrize(
    ("kind", "tif", "order_class", "notional", "words"),
    [
        (OrderType.MARKET, TimeInForce.GTC, OrderClass.BRACKET, None, "exit legs"),
        (OrderType.MARKET, TimeInForce.GTC, OrderClass.SIMPLE, Decimal(100), "notional"),
        (OrderType.STOP_LIMIT, TimeInForce.GTC, OrderClass.SIMPLE, None, "stop_limit"),
        (OrderType.LIMIT, TimeInForce.OPG, OrderClass.SIMPLE, None, "opg"),
    ],
)
def test_terms_oanda_cannot_take_are_refused_with_the_reason(
    kind: OrderType, tif: TimeInForce, order_class: OrderClass, notional: Decimal | None,
    words: str,
) -> None:  # fmt: skip
    problem = terms_problem("EUR_USD", kind, tif, order_class, notional=notional)
    assert problem is not None
    assert words in problem
    assert registry_terms_problem(BrokerKind.OANDA, "EUR_USD", kind, tif, order_class,
                                  notional=notional) == problem  # fmt: skip


def test_a_market_order_is_fill_or_kill_unless_it_asks_immediate_or_cancel() -> None:
    assert oanda_time_in_force(OrderType.MARKET, TimeInForce.GTC) == "FOK"
    assert oanda_time_in_force(OrderType.MARKET, TimeInForce.DAY) == "FOK"
    assert oanda_time_in_force(OrderType.MARKET, TimeInForce.IOC) == "IOC"
    assert oanda_time_in_force(OrderType.LIMIT, TimeInForce.DAY) == "GFD"
    assert oanda_time_in_force(OrderType.STOP, TimeInForce.GTC) == "GTC"
    assert default_time_in_force("EUR_USD") is TimeInForce.GTC


def test_units_follow_the_instruments_precision_and_bounds() -> None:
    assert units_problem(EUR_USD, Decimal(100)) is None
    assert units_problem(EUR_USD, Decimal("100.0")) is None
    fractional = units_problem(EUR_USD, Decimal("100.5"))
    assert fractional is not None
    assert "whole units" in fractional
    assert "100.5" in fractional
    assert units_problem(BRENT, Decimal("2.5")) is None
    finer = units_problem(BRENT, Decimal("2.55"))
    assert finer is not None
    assert "at most 1 decimal places" in finer
    small = units_problem(BRENT, Decimal("0.0"))
    assert small is not None
    assert "minimumTradeSize" in small
    big = units_problem(EUR_USD, Decimal(200_000_000))
    assert big is not None
    assert "maximumOrderUnits 100000000" in big


def test_the_quote_currency_is_the_instruments_last_part() -> None:
    assert quote_currency("USD_JPY") == "JPY"
    assert quote_currency("SPX500_USD") == "USD"
