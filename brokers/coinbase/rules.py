"""What Coinbase Advanced Trade takes before it is asked: the orders its Create Order body
has a form for (``build.order_configuration``), judged before the row is written so the API
answers 422 before it sends anything. Coinbase has no day orders."""

from __future__ import annotations

from decimal import Decimal

from brokers.coinbase.build import Unplaceable, order_configuration
from core.enums import Intent, OrderClass, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest

_ANY = Decimal(1)  # prices and sizes are checked elsewhere: only the terms' form counts here


def default_time_in_force(symbol: str) -> TimeInForce:
    """An order that names no time in force is good till canceled (a market order's is
    immediate-or-cancel at Coinbase whatever it says here)."""
    return TimeInForce.GTC


def terms_problem(
    symbol: str, order_type: OrderType, time_in_force: TimeInForce, order_class: OrderClass,
    *, quantity: Decimal | None = None, notional: Decimal | None = None,
    intent: Intent | None = None,
) -> str | None:  # fmt: skip
    """Why Coinbase would refuse these terms, or None."""
    request = PlaceOrderRequest(
        client_order_id="terms", symbol=symbol, side=Side.BUY,
        quantity=None if notional is not None else _ANY, notional=notional,
        order_type=order_type, time_in_force=time_in_force, limit_price=_ANY,
        stop_price=_ANY, order_class=order_class,
    )  # fmt: skip
    try:
        order_configuration(request)
    except Unplaceable as refusal:
        return str(refusal)
    return None
