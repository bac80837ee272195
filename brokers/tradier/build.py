"""PlaceOrderRequest → Tradier's form-encoded order body, or a refusal naming what cannot
be expressed (place-equity-order docs: ``class``, ``symbol``, ``side``, ``quantity``,
``type``, ``duration``, ``price``, ``stop``, ``tag``).

Only equity orders are placed. An option order's side says whether it opens or closes
(``buy_to_open``, ``sell_to_close``...), which an order's buy/sell does not; an equity sell
is ``sell`` (of shares held), never ``sell_short``, and a buy ``buy``, never
``buy_to_cover``, for the same reason. Tradier's oto/oco/otoco classes take indexed legs of
their own and are not built yet.
"""

from __future__ import annotations

import re
from decimal import Decimal

from brokers.tradier.tags import tag_for
from brokers.values import decimal_str
from core.enums import OrderClass, OrderType, TimeInForce
from core.reports import PlaceOrderRequest

# OCC option symbol: root, expiry YYMMDD, C or P, strike times 1000 in 8 digits.
OCC_SYMBOL = re.compile(r"^([A-Z0-9.]{1,6})(\d{6})([CP])(\d{8})$")
DURATIONS = {TimeInForce.DAY: "day", TimeInForce.GTC: "gtc"}
TYPES = {
    OrderType.MARKET: "market",
    OrderType.LIMIT: "limit",
    OrderType.STOP: "stop",
    OrderType.STOP_LIMIT: "stop_limit",
}


class Unplaceable(ValueError):
    """An order ordersync cannot express at Tradier; refused with OrderRejected."""


def is_option(symbol: str) -> bool:
    return OCC_SYMBOL.fullmatch(symbol) is not None


def terms_refusal(
    symbol: str, order_type: OrderType, time_in_force: TimeInForce, order_class: OrderClass,
    quantity: Decimal | None, notional: Decimal | None,
) -> str | None:  # fmt: skip
    """Why Tradier cannot be asked for these terms, or None."""
    if is_option(symbol):
        return (f"{symbol} is an option: Tradier needs buy_to_open/buy_to_close/sell_to_open/"
                "sell_to_close, which buy or sell does not say; option orders are not placed "
                "on Tradier")  # fmt: skip
    if notional is not None:
        return "Tradier takes a number of shares, not an amount of money (no notional orders)"
    if order_class is not OrderClass.SIMPLE:
        return f"order class {order_class.value} is not placed on Tradier (simple orders only)"
    if order_type not in TYPES:
        return f"order type {order_type.value} is not placed on Tradier"
    if time_in_force not in DURATIONS:
        return f"time in force {time_in_force.value} does not exist on Tradier (day or gtc)"
    if quantity is not None and quantity != quantity.to_integral_value():
        return f"Tradier trades whole shares: quantity {quantity} of {symbol} is fractional"
    return None


def place_form(request: PlaceOrderRequest) -> dict[str, str]:
    """The body of ``POST /v1/accounts/{account_id}/orders``; Unplaceable when it has none."""
    refusal = terms_refusal(
        request.symbol, request.order_type, request.time_in_force, request.order_class,
        request.quantity, request.notional,
    )  # fmt: skip
    if refusal is not None:
        raise Unplaceable(refusal)
    if request.quantity is None or request.quantity <= 0:
        raise Unplaceable(f"quantity must be a positive number of shares, got {request.quantity}")
    form = {
        "class": "equity",
        "symbol": request.symbol,
        "side": request.side.value,
        "quantity": decimal_str(request.quantity.normalize()),
        "type": TYPES[request.order_type],
        "duration": DURATIONS[request.time_in_force],
        "tag": tag_for(request.client_order_id),
    }
    if request.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        if request.limit_price is None:
            raise Unplaceable(f"a {request.order_type.value} order needs a limit price")
        form["price"] = decimal_str(request.limit_price)
    if request.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        if request.stop_price is None:
            raise Unplaceable(f"a {request.order_type.value} order needs a stop price")
        form["stop"] = decimal_str(request.stop_price)
    return form
