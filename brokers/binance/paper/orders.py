"""POST /api/v3/order's parameters read as Binance reads them, refused with its codes."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from decimal import Decimal

from brokers.binance.paper.errors import (
    BAD_CLIENT_ID,
    BAD_ORDER_TYPE,
    BAD_RESP_TYPE,
    BAD_SIDE,
    BAD_SYMBOL,
    BAD_TIF,
    BinanceError,
    mandatory,
    rejected,
)
from brokers.binance.paper.symbols import ALL_ORDER_TYPES, PAIRS, Pair
from core.enums import OrderType, Side, TimeInForce

DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
CLIENT_ID = re.compile(r"[a-zA-Z0-9\-_]{1,36}")
RESP_TYPES = ("ACK", "RESULT", "FULL")
TIFS = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
# errors.md's -2010 for an order type the symbol does not enable.
UNLISTED_TYPES = {
    "STOP_LOSS": "Stop loss orders are not supported for this symbol.",
    "TAKE_PROFIT": "Take profit orders are not supported for this symbol.",
    "TAKE_PROFIT_LIMIT": "Take profit limit orders are not supported for this symbol.",
}
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class NewOrder:
    pair: Pair
    side: Side
    type: str  # Binance's name
    engine_type: OrderType
    time_in_force: str | None
    qty: Decimal | None
    quote_qty: Decimal | None
    price: Decimal | None
    stop_price: Decimal | None
    client_order_id: str
    resp_type: str


def generated_client_id() -> str:
    """22 characters of base 62, like the ids Binance makes up."""
    number, chars = uuid.uuid4().int, []
    for _ in range(22):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


def decimal_param(params: dict[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not DECIMAL.fullmatch(raw):
        raise BinanceError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '{DECIMAL.pattern}'.",
        )
    value = Decimal(raw)
    if len(raw.partition(".")[2].rstrip("0")) > 8:
        raise BinanceError(400, -1111, f"Parameter '{name}' has too much precision.")
    if value <= 0:
        raise BinanceError(
            400, -1013, f"Invalid {name}." if name != "quantity" else "Invalid quantity."
        )
    return value


def pair_param(params: dict[str, str]) -> Pair:
    symbol = params.get("symbol")
    if not symbol:
        raise mandatory("symbol")
    pair = PAIRS.get(symbol.upper())
    if pair is None:
        raise BAD_SYMBOL
    return pair


def parse_new_order(params: dict[str, str]) -> NewOrder:
    pair = pair_param(params)
    side_name = params.get("side")
    if not side_name:
        raise mandatory("side")
    if side_name not in ("BUY", "SELL"):
        raise BAD_SIDE
    type_name = params.get("type")
    if not type_name:
        raise mandatory("type")
    if type_name not in ALL_ORDER_TYPES:
        raise BAD_ORDER_TYPE
    if type_name in UNLISTED_TYPES:
        raise rejected(UNLISTED_TYPES[type_name])  # not in the symbol's orderTypes
    tif = params.get("timeInForce") or None
    qty = decimal_param(params, "quantity")
    quote_qty = decimal_param(params, "quoteOrderQty")
    price = decimal_param(params, "price")
    stop = decimal_param(params, "stopPrice")
    if type_name in ("LIMIT", "STOP_LOSS_LIMIT"):
        if tif is None:
            raise mandatory("timeInForce")
        if tif not in TIFS:
            raise BAD_TIF
    elif tif is not None and tif not in TIFS:
        raise BAD_TIF
    if type_name != "MARKET" and price is None:
        raise mandatory("price")
    if type_name == "STOP_LOSS_LIMIT" and stop is None:
        raise mandatory("stopPrice")
    if type_name == "MARKET":
        if qty is None and quote_qty is None:
            raise BinanceError(
                400,
                -1102,
                "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
            )
        if qty is not None and quote_qty is not None:
            raise BinanceError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
    else:
        if qty is None:
            raise mandatory("quantity")
        if quote_qty is not None:
            raise BinanceError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
    cid = params.get("newClientOrderId") or generated_client_id()
    if not CLIENT_ID.fullmatch(cid):
        raise BAD_CLIENT_ID
    default_resp = "FULL" if type_name in ("MARKET", "LIMIT") else "ACK"
    resp_type = params.get("newOrderRespType") or default_resp
    if resp_type not in RESP_TYPES:
        raise BAD_RESP_TYPE
    engine_type = {
        "MARKET": OrderType.MARKET,
        "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
    }.get(type_name, OrderType.LIMIT)
    return NewOrder(
        pair=pair,
        side=Side.BUY if side_name == "BUY" else Side.SELL,
        type=type_name,
        engine_type=engine_type,
        time_in_force=None if type_name in ("MARKET", "LIMIT_MAKER") else tif,
        qty=qty,
        quote_qty=quote_qty,
        price=price if type_name != "MARKET" else None,
        stop_price=stop if type_name == "STOP_LOSS_LIMIT" else None,
        client_order_id=cid,
        resp_type=resp_type,
    )
