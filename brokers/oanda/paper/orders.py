"""An order request's body (``{"order": {...}}``) read as OANDA reads it: the reject reason
it gives each refusal (``UNITS_PRECISION_EXCEEDED``, ``PRICE_MISSING`` ...) and the
time in force each order type takes."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

from brokers.oanda.paper.errors import bad_request
from brokers.oanda.paper.instruments import INSTRUMENTS
from brokers.oanda.paper.venue import Terms

KINDS = ("MARKET", "LIMIT", "STOP", "MARKET_IF_TOUCHED")
# Market orders fill or kill (the default) or fill what they can; a pending order is good
# till cancelled (the default), for the day, or fills at once or not at all. GTD needs a
# gtdTime, which the paper exchange does not keep: refused as invalid.
TIMES_IN_FORCE = {"MARKET": ("FOK", "IOC")}
PENDING_TIMES_IN_FORCE = ("GTC", "GFD", "IOC", "FOK")
POSITION_FILLS = ("DEFAULT", "REDUCE_FIRST", "OPEN_ONLY", "REDUCE_ONLY")
MAX_CLIENT_ID = 128


class Reject(Exception):
    """A refusal OANDA records as an ``{TYPE}_ORDER_REJECT`` transaction (HTTP 400)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def read_order(body: bytes) -> dict[str, object]:
    """The ``order`` object, else OANDA's plain 400 (no transaction: nothing to record)."""
    try:
        data = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Invalid JSON in request body") from None
    order = data.get("order") if isinstance(data, dict) else None
    if not isinstance(order, dict):
        raise bad_request("Invalid value specified for 'order'")
    kind = order.get("type", "MARKET")
    if kind not in KINDS:
        raise bad_request(f"Invalid value specified for 'order.type': {kind!r}")
    return order


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        return None  # OANDA's decimal numbers are strings (a JSON number is read too)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def parse_order(order: dict[str, object]) -> Terms:
    kind = str(order.get("type", "MARKET"))
    name = order.get("instrument")
    if name is None:
        raise Reject("INSTRUMENT_MISSING", "The Order's instrument is missing")
    instrument = INSTRUMENTS.get(name) if isinstance(name, str) else None
    if instrument is None:
        raise Reject("INSTRUMENT_UNKNOWN", f"The instrument specified is unknown: {name!r}")
    if order.get("units") is None:
        raise Reject("UNITS_MISSING", "The Order's units are missing")
    units = _decimal(order.get("units"))
    if units is None or units == 0:
        raise Reject("UNITS_INVALID", "The units specified are invalid")
    if _places(units.normalize()) > instrument.trade_units_precision:
        raise Reject(
            "UNITS_PRECISION_EXCEEDED",
            "The units specified contain more precision than is allowed for the Order's instrument",
        )
    if abs(units) < instrument.minimum_trade_size:
        raise Reject(
            "UNITS_MINIMUM_NOT_MET",
            "The units specified are less than the minimum trade size of the Order's instrument",
        )
    if abs(units) > instrument.maximum_order_units:
        raise Reject(
            "UNITS_LIMIT_EXCEEDED",
            "The units specified exceed the maximum number of units allowed for an Order",
        )
    price = None
    if kind != "MARKET":
        if order.get("price") is None:
            raise Reject("PRICE_MISSING", "The Order's price is missing")
        price = _decimal(order.get("price"))
        if price is None or price <= 0:
            raise Reject("PRICE_INVALID", "The price specified is invalid")
        if _places(price.normalize()) > instrument.display_precision:
            raise Reject(
                "PRICE_PRECISION_EXCEEDED",
                "The price specified contains more "
                "precision than is allowed for the Order's instrument",
            )
    allowed = TIMES_IN_FORCE.get(kind, PENDING_TIMES_IN_FORCE)
    tif = order.get("timeInForce", allowed[0])
    if tif not in allowed:
        raise Reject(
            "TIME_IN_FORCE_INVALID", f"The time in force {tif!r} is invalid for a {kind} order"
        )
    fill = order.get("positionFill", "DEFAULT")
    if fill not in POSITION_FILLS:
        raise Reject("POSITION_FILL_INVALID", f"The positionFill {fill!r} is invalid")
    return Terms(kind, instrument, units, price, str(tif), str(fill), _client_id(order))


def _client_id(order: dict[str, object]) -> str | None:
    extensions = order.get("clientExtensions")
    if extensions is None:
        return None
    cid = extensions.get("id") if isinstance(extensions, dict) else None
    if cid is None:
        return None
    if not isinstance(cid, str) or not cid or len(cid) > MAX_CLIENT_ID:
        raise Reject("CLIENT_ORDER_ID_INVALID", "The client Order ID specified is invalid")
    return cid


def reject_body(order: dict[str, object], reason: str) -> dict[str, object]:
    """A reject transaction's fields: the request as sent, and why."""
    kind = str(order.get("type", "MARKET"))
    body: dict[str, object] = {
        "type": f"{kind}_ORDER_REJECT",
        "reason": "CLIENT_ORDER",
        "rejectReason": reason,
    }
    for key in ("instrument", "units", "price", "timeInForce", "positionFill", "clientExtensions"):
        if key in order:
            body[key] = order[key] if not isinstance(order[key], Decimal) else str(order[key])
    return body
