"""PlaceOrderRequest → Coinbase's Create Order body, or a refusal naming what Coinbase lacks.

Coinbase names type and time in force together in one ``order_configuration`` key. We never
pass an end time, so the GTD configurations are not used, and DAY has no Coinbase form.
"""

from __future__ import annotations

from decimal import Decimal

from brokers.coinbase.values import plain
from core.enums import OrderClass, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest

_LIMIT_KEYS = {
    TimeInForce.GTC: "limit_limit_gtc",
    TimeInForce.FOK: "limit_limit_fok",
    TimeInForce.IOC: "sor_limit_ioc",  # Coinbase's IOC limit goes through its order router
}


class Unplaceable(ValueError):
    """An order Coinbase has no form for; the adapter refuses it with OrderRejected."""


def stop_direction(side: Side) -> str:
    """A buy stop waits for the price to rise to the stop, a sell stop (stop-loss) for it to
    fall: STOP_UP triggers at or above the stop price, STOP_DOWN at or below it."""
    return "STOP_DIRECTION_STOP_UP" if side is Side.BUY else "STOP_DIRECTION_STOP_DOWN"


def order_configuration(request: PlaceOrderRequest) -> dict[str, dict[str, object]]:
    """The one configuration key for the request's type and time in force."""
    if request.order_class is not OrderClass.SIMPLE:
        raise Unplaceable(f"order class {request.order_class.value} is not supported on Coinbase")
    if request.order_type is OrderType.MARKET:
        fok = request.time_in_force is TimeInForce.FOK
        key = "market_market_fok" if fok else "market_market_ioc"
        if request.notional is not None:
            return {key: {"quote_size": plain(request.notional)}}
        return {key: {"base_size": plain(_quantity(request))}}
    if request.order_type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        raise Unplaceable(f"order type {request.order_type.value} is not supported on Coinbase")
    if request.notional is not None:
        raise Unplaceable("a notional (quote_size) order must be a market order on Coinbase")
    if request.limit_price is None:
        raise Unplaceable(f"a {request.order_type.value} order needs a limit price on Coinbase")
    size, limit = plain(_quantity(request)), plain(request.limit_price)
    if request.order_type is OrderType.LIMIT:
        limit_key = _LIMIT_KEYS.get(request.time_in_force)
        if limit_key is None:
            raise Unplaceable(_tif_refusal(request.time_in_force, "limit"))
        body: dict[str, object] = {"base_size": size, "limit_price": limit}
        if limit_key == "limit_limit_gtc":
            body["post_only"] = False
        return {limit_key: body}
    if request.order_type is OrderType.STOP_LIMIT:
        if request.time_in_force is not TimeInForce.GTC:
            raise Unplaceable(_tif_refusal(request.time_in_force, "stop_limit"))
        if request.stop_price is None:
            raise Unplaceable("a stop_limit order needs a stop price")
        return {
            "stop_limit_stop_limit_gtc": {
                "base_size": size,
                "limit_price": limit,
                "stop_price": plain(request.stop_price),
                "stop_direction": stop_direction(request.side),
            }
        }
    raise Unplaceable(f"order type {request.order_type.value} is not supported on Coinbase")


def place_body(request: PlaceOrderRequest) -> dict[str, object]:
    return {
        "client_order_id": request.client_order_id,
        "product_id": request.symbol,
        "side": request.side.value.upper(),
        "order_configuration": order_configuration(request),
    }


def _quantity(request: PlaceOrderRequest) -> Decimal:
    if request.quantity is None:
        raise Unplaceable("give a quantity (base_size) or, for a market order, a notional")
    return request.quantity


def _tif_refusal(tif: TimeInForce, kind: str) -> str:
    if tif is TimeInForce.DAY:
        return (
            f"time in force DAY is not supported for a Coinbase {kind} order "
            "(GTD needs an end time, which ordersync never sends)"
        )
    return f"time in force {tif.value} is not supported for a Coinbase {kind} order"
