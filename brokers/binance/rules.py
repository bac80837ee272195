"""What Binance Spot takes before it is asked: simple orders only (no exit legs), market,
limit, stop-loss and stop-loss-limit, limits good till canceled, immediate-or-cancel or
fill-or-kill (Binance has no day orders), and an amount of money only on a market order.

Pure functions of the terms, so a placement is refused before its row is written and the
API answers 422 before it sends anything; the adapter maps the same tables onto the wire.
"""

from __future__ import annotations

from decimal import Decimal

from core.enums import Intent, OrderClass, OrderType, TimeInForce

ORDER_TYPES: dict[OrderType, str] = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.STOP: "STOP_LOSS",
    OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT",
}
LIMIT_TYPES = (OrderType.LIMIT, OrderType.STOP_LIMIT)  # the ones that carry a time in force
TIMES_IN_FORCE: dict[TimeInForce, str] = {
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
}


def default_time_in_force(symbol: str) -> TimeInForce:
    """Binance has no ``day``: an order that names none is good till canceled."""
    return TimeInForce.GTC


def terms_problem(
    symbol: str, order_type: OrderType, time_in_force: TimeInForce, order_class: OrderClass,
    *, quantity: Decimal | None = None, notional: Decimal | None = None,
    intent: Intent | None = None,
) -> str | None:  # fmt: skip
    """Why Binance Spot would refuse these terms, or None."""
    if order_class is not OrderClass.SIMPLE:
        return "Binance Spot takes no exit legs here (order_class simple only)"
    if order_type not in ORDER_TYPES:
        return f"Binance Spot has no {order_type.value} orders (market, limit, stop, stop_limit)"
    if notional is not None and order_type is not OrderType.MARKET:
        return f"a notional order must be market, not {order_type.value}"
    if order_type in LIMIT_TYPES and time_in_force not in TIMES_IN_FORCE:
        return (f"{symbol}: Binance's time in force is gtc, ioc or fok, "
                f"not {time_in_force.value}")  # fmt: skip
    return None
