"""Alpaca's rules on terms: crypto pairs, their time in force, types and classes, and the
position symbols written without the slash."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.alpaca.rules import default_time_in_force, pair_symbol, terms_problem
from core.enums import OrderClass, OrderType, TimeInForce


@pytest.mark.parametrize(
    ("position", "pair"),
    [("BTCUSD", "BTC/USD"), ("BTCUSDT", "BTC/USDT"), ("ETHBTC", "ETH/BTC"),
     ("USDTUSD", "USDT/USD"), ("SOLUSDC", "SOL/USDC"), ("BTC/USD", "BTC/USD"), ("USD", "USD")],
)  # fmt: skip
def test_a_crypto_position_symbol_is_the_pair_its_orders_name(position: str, pair: str) -> None:
    assert pair_symbol(position) == pair


def test_crypto_defaults_to_good_till_canceled_equities_to_day() -> None:
    assert default_time_in_force("BTC/USD") is TimeInForce.GTC
    assert default_time_in_force("AAPL") is TimeInForce.DAY


@pytest.mark.parametrize(
    ("terms", "problem"),
    [
        (("BTC/USD", OrderType.MARKET, TimeInForce.GTC, OrderClass.SIMPLE), None),
        (("BTC/USD", OrderType.STOP_LIMIT, TimeInForce.IOC, OrderClass.SIMPLE), None),
        (("AAPL", OrderType.STOP, TimeInForce.DAY, OrderClass.BRACKET), None),
        (("BTC/USD", OrderType.MARKET, TimeInForce.DAY, OrderClass.SIMPLE),
         "BTC/USD is crypto: time_in_force must be gtc or ioc, not day"),
        (("ETH/USD", OrderType.LIMIT, TimeInForce.FOK, OrderClass.SIMPLE), "not fok"),
        (("ETH/USD", OrderType.STOP, TimeInForce.GTC, OrderClass.SIMPLE),
         "order_type must be market, limit or stop_limit"),
        (("ETH/USD", OrderType.MARKET, TimeInForce.GTC, OrderClass.BRACKET), "no exit legs"),
    ],
)  # fmt: skip
def test_terms_alpaca_refuses_are_named(
    terms: tuple[str, OrderType, TimeInForce, OrderClass], problem: str | None
) -> None:
    found = terms_problem(*terms)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


M, L, STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP
DAY, GTC, IOC = TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC
SIMPLE, BRACKET = OrderClass.SIMPLE, OrderClass.BRACKET


@pytest.mark.parametrize(
    ("terms", "size", "problem"),
    [
        (("AAPL", M, DAY, SIMPLE), {"notional": "500"}, None),
        (("BTC/USD", M, GTC, SIMPLE), {"notional": "500"}, None),
        (("BTC/USD", M, IOC, SIMPLE), {"notional": "0.5"}, None),
        (("AAPL", L, DAY, SIMPLE), {"notional": "500"},
         "a notional order must be market, not limit"),
        (("BTC/USD", STOP, GTC, SIMPLE), {"notional": "5"},
         "a notional order must be market, not stop"),
        (("AAPL", M, DAY, BRACKET), {"notional": "500"},
         "a notional order takes no exit legs (order_class simple only)"),
        (("AAPL", M, GTC, SIMPLE), {"notional": "500"},
         "a notional order of AAPL must be day, not gtc"),
        (("BTC/USD", M, DAY, SIMPLE), {"notional": "500"},
         "BTC/USD is crypto: time_in_force must be gtc or ioc, not day"),
        (("AAPL", M, DAY, SIMPLE), {"quantity": "0.5"}, None),
        (("AAPL", L, GTC, SIMPLE), {"quantity": "10"}, None),
        (("AAPL", L, GTC, SIMPLE), {"quantity": "10.000"}, None),  # whole shares
        (("AAPL", L, DAY, SIMPLE), {"quantity": "0.5"},
         "a fractional quantity of AAPL (0.5) must be a market order, day, not limit, day"),
        (("AAPL", M, GTC, SIMPLE), {"quantity": "1.25"},
         "a fractional quantity of AAPL (1.25) must be a market order, day, not market, gtc"),
        (("BTC/USD", L, GTC, SIMPLE), {"quantity": "0.001"}, None),  # crypto: any
    ],
)  # fmt: skip
def test_notional_and_fractional_terms_alpaca_refuses_are_named(
    terms: tuple[str, OrderType, TimeInForce, OrderClass], size: dict[str, str],
    problem: str | None,
) -> None:  # fmt: skip
    amounts = {name: Decimal(value) for name, value in size.items()}
    assert terms_problem(*terms, **amounts) == problem
