"""What Alpaca takes before it is asked: crypto pairs trade around the clock as simple
market, limit or stop-limit orders, good till canceled or immediate-or-cancel; a notional
order (an amount of money, its quantity Alpaca's to work out) is a simple market order, day
for equities; an equity order for a fractional quantity is a market order, day.

Pure functions of the terms, so a placement is refused (or given a crypto default) before
its row is written, and the API answers 422 before it sends anything.
"""

from __future__ import annotations

from decimal import Decimal

from core.enums import Intent, OrderClass, OrderType, TimeInForce

CRYPTO_TIFS = (TimeInForce.GTC, TimeInForce.IOC)
CRYPTO_TYPES = (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_LIMIT)
# Quote currencies of Alpaca's pairs, longest first so BTCUSDT splits as BTC/USDT.
_QUOTES = ("USDT", "USDC", "USD", "BTC")


def is_crypto(symbol: str) -> bool:
    """Alpaca writes a crypto pair ``BASE/QUOTE`` in orders and fills (``BTC/USD``)."""
    return "/" in symbol


def pair_symbol(symbol: str) -> str:
    """A crypto position's ``BTCUSD`` as the ``BTC/USD`` its orders and fills say."""
    if "/" in symbol:
        return symbol
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return f"{symbol[: -len(quote)]}/{quote}"
    return symbol


def default_time_in_force(symbol: str) -> TimeInForce:
    """``day`` does not exist for crypto: an order that names none is good till canceled."""
    return TimeInForce.GTC if is_crypto(symbol) else TimeInForce.DAY


def terms_problem(
    symbol: str, order_type: OrderType, time_in_force: TimeInForce, order_class: OrderClass,
    *, quantity: Decimal | None = None, notional: Decimal | None = None,
    intent: Intent | None = None,
) -> str | None:  # fmt: skip
    """Why Alpaca would refuse these terms, or None."""
    if notional is not None:
        if order_type is not OrderType.MARKET:
            return f"a notional order must be market, not {order_type.value}"
        if order_class is not OrderClass.SIMPLE:
            return "a notional order takes no exit legs (order_class simple only)"
    if not is_crypto(symbol):
        return _equity_problem(symbol, order_type, time_in_force, quantity, notional)
    if time_in_force not in CRYPTO_TIFS:
        return f"{symbol} is crypto: time_in_force must be gtc or ioc, not {time_in_force.value}"
    if order_type not in CRYPTO_TYPES:
        return f"{symbol} is crypto: order_type must be market, limit or stop_limit"
    if order_class is not OrderClass.SIMPLE:
        return f"{symbol} is crypto: no exit legs (order_class simple only)"
    return None


def _equity_problem(
    symbol: str, order_type: OrderType, time_in_force: TimeInForce, quantity: Decimal | None,
    notional: Decimal | None,
) -> str | None:  # fmt: skip
    """Equities take fractional shares, and notional orders, as market orders for the day."""
    if notional is not None and time_in_force is not TimeInForce.DAY:
        return f"a notional order of {symbol} must be day, not {time_in_force.value}"
    fractional = quantity is not None and quantity != quantity.to_integral_value()
    if fractional and (order_type is not OrderType.MARKET or time_in_force is not TimeInForce.DAY):
        return (f"a fractional quantity of {symbol} ({quantity}) must be a market order, day, "
                f"not {order_type.value}, {time_in_force.value}")  # fmt: skip
    return None
