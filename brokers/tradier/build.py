"""PlaceOrderRequest → Tradier's form-encoded order body, or a refusal naming what cannot
be expressed (place-equity-order and place-option-order docs: ``class``, ``symbol``,
``option_symbol``, ``side``, ``quantity``, ``type``, ``duration``, ``price``, ``stop``,
``tag``).

Tradier's side words say whether an order opens or closes a position, which buy or sell
does not: what the account holds and the order's intent say it (``side_word``). An option
(an OCC symbol) is placed only with an intent. Tradier's oto/oco/otoco classes
take indexed legs of their own and are not built yet.
"""

from __future__ import annotations

from decimal import Decimal

from brokers.tradier.tags import tag_for
from brokers.values import decimal_str
from core.enums import Intent, OrderClass, OrderType, Side, TimeInForce
from core.instruments import is_option, option_parts
from core.reports import PlaceOrderRequest

DURATIONS = {TimeInForce.DAY: "day", TimeInForce.GTC: "gtc"}
TYPES = {
    OrderType.MARKET: "market",
    OrderType.LIMIT: "limit",
    OrderType.STOP: "stop",
    OrderType.STOP_LIMIT: "stop_limit",
}


class Unplaceable(ValueError):
    """An order ordersync cannot express at Tradier; refused with OrderRejected."""


_CLOSE = {Side.BUY: "buy_to_cover", Side.SELL: "sell"}
_OPEN = {Side.BUY: "buy", Side.SELL: "sell_short"}


def side_word(symbol: str, side: Side, intent: Intent | None, held: Decimal | None) -> str:
    """Tradier's side for an order of ``symbol``: it closes when it reduces the position
    held (Tradier's positions are the account's net), or is an exit; it opens when it is an
    entry, or an option's (checked to have an intent first); else a plain buy or sell."""
    reduces = held is not None and (held < 0 if side is Side.BUY else held > 0)
    closes = reduces or intent is Intent.EXIT
    if is_option(symbol):
        return f"{side.value}_to_{'close' if closes else 'open'}"
    if closes:
        return _CLOSE[side]
    return _OPEN[side] if intent is Intent.ENTRY else side.value


def terms_refusal(
    symbol: str, order_type: OrderType, time_in_force: TimeInForce, order_class: OrderClass,
    quantity: Decimal | None, notional: Decimal | None, intent: Intent | None = None,
) -> str | None:  # fmt: skip
    """Why Tradier cannot be asked for these terms, or None."""
    if is_option(symbol) and option_parts(symbol) is None:
        return f"{symbol} is not an option symbol: its expiry is not a date"
    if is_option(symbol) and intent is None:
        return (f"{symbol} is an option: Tradier needs to know whether the order opens or "
                "closes a position (buy_to_open, sell_to_close...), so an option order "
                "needs intent ENTRY or EXIT")  # fmt: skip
    if notional is not None:
        return "Tradier takes a number of shares, not an amount of money (no notional orders)"
    if order_class is not OrderClass.SIMPLE:
        return f"order class {order_class.value} is not placed on Tradier (simple orders only)"
    if order_type not in TYPES:
        return f"order type {order_type.value} is not placed on Tradier"
    if time_in_force not in DURATIONS:
        return f"time in force {time_in_force.value} does not exist on Tradier (day or gtc)"
    if quantity is not None and quantity != quantity.to_integral_value():
        unit = "contracts" if is_option(symbol) else "shares"
        return f"Tradier trades whole {unit}: quantity {quantity} of {symbol} is fractional"
    return None


def place_form(request: PlaceOrderRequest) -> dict[str, str]:
    """The body of ``POST /v1/accounts/{account_id}/orders``; Unplaceable when it has none."""
    refusal = terms_refusal(
        request.symbol, request.order_type, request.time_in_force, request.order_class,
        request.quantity, request.notional, request.intent,
    )  # fmt: skip
    if refusal is not None:
        raise Unplaceable(refusal)
    if request.quantity is None or request.quantity <= 0:
        raise Unplaceable(f"quantity must be a positive number, got {request.quantity}")
    option = option_parts(request.symbol)
    form = {
        "class": "equity" if option is None else "option",
        "symbol": request.symbol if option is None else option[0],
        "side": side_word(request.symbol, request.side, request.intent, request.held),
        "quantity": decimal_str(request.quantity.normalize()),
        "type": TYPES[request.order_type],
        "duration": DURATIONS[request.time_in_force],
        "tag": tag_for(request.client_order_id),
    }
    if option is not None:
        form["option_symbol"] = request.symbol
    if form["side"] == "sell_short" and form["duration"] == "gtc":  # [3P: QuantConnect LEAN]
        raise Unplaceable("Tradier takes a short sale for the day only, not gtc")
    if request.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        if request.limit_price is None:
            raise Unplaceable(f"a {request.order_type.value} order needs a limit price")
        form["price"] = decimal_str(request.limit_price)
    if request.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        if request.stop_price is None:
            raise Unplaceable(f"a {request.order_type.value} order needs a stop price")
        form["stop"] = decimal_str(request.stop_price)
    return form
