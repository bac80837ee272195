"""What OANDA v20 takes before it is asked: simple market, limit and stop orders by a whole
number of units (a quantity, never an amount of money), with the time in force each type
has at OANDA. Pure functions of the terms, so a placement is refused before its row is
written; the adapter maps the same tables onto the wire.

OANDA's market-if-touched orders are read (as ``stop``: a touched price sends a market
order) but not placed: ordersync's order types have no such type. A stop-limit has no
OANDA form (a STOP's ``priceBound`` cancels what it cannot fill; it never rests).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.enums import Intent, OrderClass, OrderType, TimeInForce

ORDER_TYPES: dict[OrderType, str] = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.STOP: "STOP",
}
# Ours -> OANDA's for limit and stop orders: a day order is OANDA's good-for-day (GFD).
TIMES_IN_FORCE: dict[TimeInForce, str] = {
    TimeInForce.GTC: "GTC",
    TimeInForce.DAY: "GFD",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
}
# A market order is fill-or-kill (OANDA's default) or immediate-or-cancel; one that names
# gtc or day (ordersync's defaults) is sent as FOK, which is what a market order does anyway.
MARKET_TIMES_IN_FORCE: dict[TimeInForce, str] = {
    TimeInForce.FOK: "FOK",
    TimeInForce.IOC: "IOC",
    TimeInForce.GTC: "FOK",
    TimeInForce.DAY: "FOK",
}


def default_time_in_force(symbol: str) -> TimeInForce:
    """OANDA's default for limit and stop orders is good till cancelled."""
    return TimeInForce.GTC


def terms_problem(
    symbol: str, order_type: OrderType, time_in_force: TimeInForce, order_class: OrderClass,
    *, quantity: Decimal | None = None, notional: Decimal | None = None,
    intent: Intent | None = None,
) -> str | None:  # fmt: skip
    """Why OANDA would refuse these terms, or None (units per instrument are checked by the
    adapter against ``/instruments``)."""
    if order_class is not OrderClass.SIMPLE:
        return "OANDA takes no exit legs here (order_class simple only)"
    if notional is not None:
        return "OANDA orders name units, not an amount of money (no notional orders)"
    if order_type not in ORDER_TYPES:
        return f"OANDA has no {order_type.value} orders here (market, limit or stop)"
    if time_in_force not in TIMES_IN_FORCE:
        return f"{symbol}: OANDA's time in force is gtc, day, ioc or fok, not {time_in_force.value}"
    return None


def oanda_time_in_force(order_type: OrderType, time_in_force: TimeInForce) -> str:
    """The ``timeInForce`` to send; KeyError for terms ``terms_problem`` refuses."""
    table = MARKET_TIMES_IN_FORCE if order_type is OrderType.MARKET else TIMES_IN_FORCE
    return table[time_in_force]


@dataclass(frozen=True, slots=True)
class Instrument:
    """What ``GET /accounts/{id}/instruments`` says of one instrument's units."""

    name: str
    trade_units_precision: int  # decimal places units may have (0: whole units)
    minimum_trade_size: Decimal
    maximum_order_units: Decimal | None  # None or 0: no stated maximum


def units_problem(instrument: Instrument, quantity: Decimal) -> str | None:
    """Why OANDA would refuse ``quantity`` units of ``instrument``, or None."""
    name = instrument.name
    places = instrument.trade_units_precision
    if quantity != quantity.quantize(Decimal(1).scaleb(-places)):
        whole = "whole units" if places == 0 else f"at most {places} decimal places"
        return (f"{name} trades in {whole} (tradeUnitsPrecision {places}); "
                f"{_show(quantity)} units cannot be sent")  # fmt: skip
    if quantity <= 0 or quantity < instrument.minimum_trade_size:
        return (f"{name}: {_show(quantity)} units is below minimumTradeSize "
                f"{_show(instrument.minimum_trade_size)}")  # fmt: skip
    maximum = instrument.maximum_order_units
    if maximum and quantity > maximum:
        return f"{name}: {_show(quantity)} units is above maximumOrderUnits {_show(maximum)}"
    return None


def quote_currency(instrument: str) -> str:
    """The currency an instrument is priced in: ``EUR_USD`` -> USD, ``SPX500_USD`` -> USD."""
    return instrument.rsplit("_", 1)[-1]


def _show(value: Decimal) -> str:
    return format(value.normalize(), "f")
