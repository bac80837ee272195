"""PlaceOrderRequest → Create Order body, and the orders Coinbase has no form for."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from brokers.coinbase import build
from core.enums import OrderClass, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest


def _request(**changes: Any) -> PlaceOrderRequest:
    base: dict[str, Any] = {
        "client_order_id": "c-1",
        "symbol": "BTC-USD",
        "side": Side.BUY,
        "quantity": Decimal("0.001"),
    }
    return PlaceOrderRequest(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, {"market_market_ioc": {"base_size": "0.001"}}),
        (
            {"quantity": None, "notional": Decimal("10.00")},
            {"market_market_ioc": {"quote_size": "10.00"}},
        ),
        (
            {
                "order_type": OrderType.LIMIT,
                "time_in_force": TimeInForce.GTC,
                "limit_price": Decimal("10000"),
            },
            {"limit_limit_gtc": {"base_size": "0.001", "limit_price": "10000", "post_only": False}},
        ),
        (
            {
                "order_type": OrderType.LIMIT,
                "time_in_force": TimeInForce.FOK,
                "limit_price": Decimal("10000"),
            },
            {"limit_limit_fok": {"base_size": "0.001", "limit_price": "10000"}},
        ),
        (
            {
                "order_type": OrderType.LIMIT,
                "time_in_force": TimeInForce.IOC,
                "limit_price": Decimal("10000"),
            },
            {"sor_limit_ioc": {"base_size": "0.001", "limit_price": "10000"}},
        ),
        (
            {
                "order_type": OrderType.STOP_LIMIT,
                "time_in_force": TimeInForce.GTC,
                "limit_price": Decimal("20100"),
                "stop_price": Decimal("20000"),
            },
            {
                "stop_limit_stop_limit_gtc": {
                    "base_size": "0.001",
                    "limit_price": "20100",
                    "stop_price": "20000",
                    "stop_direction": "STOP_DIRECTION_STOP_UP",
                }
            },
        ),
        (
            {
                "side": Side.SELL,
                "order_type": OrderType.STOP_LIMIT,
                "time_in_force": TimeInForce.GTC,
                "limit_price": Decimal("9900"),
                "stop_price": Decimal("10000"),
            },
            {
                "stop_limit_stop_limit_gtc": {
                    "base_size": "0.001",
                    "limit_price": "9900",
                    "stop_price": "10000",
                    "stop_direction": "STOP_DIRECTION_STOP_DOWN",
                }
            },
        ),
    ],
)
def test_configuration(changes: dict[str, Any], expected: dict[str, Any]) -> None:
    assert build.order_configuration(_request(**changes)) == expected


def test_body_names_the_client_id_product_and_side() -> None:
    body = build.place_body(_request(side=Side.SELL, quantity=Decimal("1E-8")))

    assert body["client_order_id"] == "c-1"
    assert body["product_id"] == "BTC-USD"
    assert body["side"] == "SELL"
    assert body["order_configuration"] == {"market_market_ioc": {"base_size": "0.00000001"}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"order_type": OrderType.LIMIT, "limit_price": Decimal(1)}, "time in force DAY"),
        (
            {
                "order_type": OrderType.LIMIT,
                "time_in_force": TimeInForce.OPG,
                "limit_price": Decimal(1),
            },
            "time in force opg",
        ),
        (
            {
                "order_type": OrderType.STOP_LIMIT,
                "time_in_force": TimeInForce.IOC,
                "limit_price": Decimal(1),
                "stop_price": Decimal(1),
            },
            "stop_limit",
        ),
        ({"order_type": OrderType.STOP, "stop_price": Decimal(1)}, "order type stop"),
        ({"order_class": OrderClass.BRACKET}, "order class bracket"),
        (
            {
                "order_type": OrderType.LIMIT,
                "time_in_force": TimeInForce.GTC,
                "limit_price": Decimal(1),
                "quantity": None,
                "notional": Decimal(5),
            },
            "notional",
        ),
        ({"quantity": None}, "give a quantity"),
    ],
)
def test_orders_coinbase_cannot_take(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(build.Unplaceable, match=message):
        build.order_configuration(_request(**changes))
