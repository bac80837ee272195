"""Binance Spot JSON -> normalized reports, with no I/O so every shape is tested directly.

Bodies are read with ``parse_float=Decimal``; prices and quantities arrive as strings and
never pass through ``float``. Times are epoch milliseconds, made aware UTC here. Binance ids
are unique per symbol only, so every broker id here is ``"SYMBOL:id"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from brokers.values import ParseError as ParseError
from brokers.values import decimal as decimal
from brokers.values import decimal_str as decimal_str
from brokers.values import excerpt as excerpt
from brokers.values import fail as _fail
from brokers.values import loads as loads
from brokers.values import parse_items as parse_items
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import FillReport, OrderReport, PositionReport, StreamEvent

R = TypeVar("R")

STATUS_MAP: dict[str, OrderStatus] = {
    "NEW": OrderStatus.NEW,
    "PENDING_NEW": OrderStatus.PENDING_NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.PENDING_CANCEL,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,  # expired by self-trade prevention
}
# Binance's order types read back as the closest core type: a maker-only limit is a limit,
# and a take-profit triggers like a stop (market, or limit once triggered).
TYPE_MAP: dict[str, OrderType] = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "LIMIT_MAKER": OrderType.LIMIT,
    "STOP_LOSS": OrderType.STOP,
    "TAKE_PROFIT": OrderType.STOP,
    "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
    "TAKE_PROFIT_LIMIT": OrderType.STOP_LIMIT,
}
TIF_MAP: dict[str, TimeInForce] = {
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
}
SIDE_MAP: dict[str, Side] = {"BUY": Side.BUY, "SELL": Side.SELL}


def as_dict(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        _fail(f"{what} is not an object")
    return value


def as_list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        _fail(f"{what} is not a list")
    return value


def error_body(content: bytes) -> tuple[int | None, str]:
    """Binance's ``{"code": -NNNN, "msg": "..."}``, or (None, an excerpt) when not that."""
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None, excerpt(content)
    if isinstance(body, dict) and isinstance(body.get("code"), int):
        return body["code"], str(body.get("msg", ""))
    return None, excerpt(content)


def text(raw: Mapping[str, object], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        _fail(f"{key} is missing or not a string: {value!r}")
    return value


def integer(raw: Mapping[str, object], key: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(f"{key} is missing or not an integer: {value!r}")
    return value


def optional_decimal(raw: Mapping[str, object], key: str) -> Decimal | None:
    """A price Binance sends as "0.00000000" when it does not apply."""
    if raw.get(key) is None:
        return None
    number = decimal(raw, key)
    return number if number != 0 else None


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def timestamp(raw: Mapping[str, object], key: str) -> datetime:
    return from_ms(integer(raw, key))


def broker_id(symbol: str, native_id: int) -> str:
    return f"{symbol}:{native_id}"


def split_id(broker_order_id: str) -> tuple[str, int]:
    """``"BTCUSDT:28"`` -> ("BTCUSDT", 28); anything else is a ValueError naming it."""
    symbol, sep, native = broker_order_id.rpartition(":")
    if not sep or not symbol or not native.isdigit():
        raise ValueError(f"not a Binance broker id (SYMBOL:id): {broker_order_id!r}")
    return symbol, int(native)


def _mapped(table: Mapping[str, R], raw: Mapping[str, object], key: str) -> R:
    value = text(raw, key)
    if value not in table:
        _fail(f"unknown {key} {value!r}")
    return table[value]


def average_price(raw: Mapping[str, object], filled: Decimal) -> Decimal | None:
    """cummulativeQuoteQty / executedQty; None with nothing filled or a negative (unknown) sum."""
    if filled == 0 or raw.get("cummulativeQuoteQty") is None:
        return None
    quote = decimal(raw, "cummulativeQuoteQty")
    return None if quote < 0 else quote / filled


def parse_order(raw_value: object) -> OrderReport:
    """An order from GET/POST/DELETE /api/v3/order, openOrders or allOrders."""
    raw = as_dict(raw_value, "order")
    symbol = text(raw, "symbol")
    order_id = broker_id(symbol, integer(raw, "orderId"))
    status = _mapped(STATUS_MAP, raw, "status")
    filled = decimal(raw, "executedQty")
    created_key = "time" if "time" in raw else "transactTime"
    created_at = timestamp(raw, created_key)
    updated_key = "updateTime" if "updateTime" in raw else "transactTime"
    updated_at = timestamp(raw, updated_key) if updated_key in raw else created_at
    quantity: Decimal | None = decimal(raw, "origQty")
    notional = optional_decimal(raw, "origQuoteOrderQty")
    if quantity == 0 and notional is not None:
        quantity = None  # a quote-amount order: Binance sizes it
    client_id = raw.get("origClientOrderId") or raw.get("clientOrderId")
    tif = raw.get("timeInForce")
    fills = tuple(
        _inline_fill(item, symbol, order_id, raw) for item in as_list(raw.get("fills", []), "fills")
    )
    return OrderReport(
        broker_order_id=order_id,
        client_order_id=client_id if isinstance(client_id, str) else None,
        symbol=symbol,
        side=_mapped(SIDE_MAP, raw, "side"),
        order_type=_mapped(TYPE_MAP, raw, "type"),
        time_in_force=TIF_MAP.get(tif, TimeInForce.GTC)
        if isinstance(tif, str)
        else TimeInForce.GTC,
        quantity=quantity,
        status=status,
        raw_status=text(raw, "status"),
        filled_quantity=filled,
        average_fill_price=average_price(raw, filled),
        created_at=created_at,
        updated_at=updated_at,
        limit_price=optional_decimal(raw, "price"),
        stop_price=optional_decimal(raw, "stopPrice"),
        submitted_at=created_at,
        filled_at=updated_at if status is OrderStatus.FILLED else None,
        canceled_at=updated_at if status is OrderStatus.CANCELED else None,
        fills=fills,
        notional=notional,
        raw=dict(raw),
    )


def _inline_fill(
    item: object, symbol: str, order_id: str, order: Mapping[str, object]
) -> FillReport:
    """One of a FULL placement answer's ``fills``; they carry no time, so transactTime."""
    raw = as_dict(item, "fill")
    client_id = order.get("clientOrderId")
    return FillReport(
        broker_fill_id=broker_id(symbol, integer(raw, "tradeId")),
        broker_order_id=order_id,
        symbol=symbol,
        side=_mapped(SIDE_MAP, order, "side"),
        quantity=decimal(raw, "qty"),
        price=decimal(raw, "price"),
        filled_at=timestamp(order, "transactTime"),
        fee=decimal(raw, "commission"),
        fee_asset=text(raw, "commissionAsset"),
        client_order_id=client_id if isinstance(client_id, str) else None,
    )


def parse_trade(raw_value: object) -> FillReport:
    """One of ``GET /api/v3/myTrades``; the order's cumulative quantity is not given."""
    raw = as_dict(raw_value, "trade")
    symbol = text(raw, "symbol")
    is_buyer = raw.get("isBuyer")
    if not isinstance(is_buyer, bool):
        _fail(f"isBuyer is missing or not a boolean: {is_buyer!r}")
    return FillReport(
        broker_fill_id=broker_id(symbol, integer(raw, "id")),
        broker_order_id=broker_id(symbol, integer(raw, "orderId")),
        symbol=symbol,
        side=Side.BUY if is_buyer else Side.SELL,
        quantity=decimal(raw, "qty"),
        price=decimal(raw, "price"),
        filled_at=timestamp(raw, "time"),
        fee=decimal(raw, "commission"),
        fee_asset=text(raw, "commissionAsset"),
    )


def parse_balances(raw_value: object) -> list[PositionReport]:
    """``GET /api/v3/account`` balances held (free + locked), one position per asset."""
    positions = []
    for item in as_list(as_dict(raw_value, "account").get("balances"), "balances"):
        raw = as_dict(item, "balance")
        quantity = decimal(raw, "free") + decimal(raw, "locked")
        if quantity != 0:
            positions.append(PositionReport(text(raw, "asset"), quantity, None))
    return positions


def parse_execution_report(event_value: object) -> StreamEvent:
    """A user data stream ``executionReport``: the order after it, and the trade if one."""
    event = as_dict(event_value, "event")
    symbol = text(event, "s")
    order_id = broker_id(symbol, integer(event, "i"))
    execution = text(event, "x")
    status = _mapped(STATUS_MAP, event, "X")
    side = _mapped(SIDE_MAP, event, "S")
    filled = decimal(event, "z")
    quote = decimal(event, "Z")
    at = timestamp(event, "E")
    # On a cancel ``c`` is the cancel request's id and ``C`` the order's own.
    original = event.get("C")
    client_id = original if isinstance(original, str) and original else event.get("c")
    client_order_id = client_id if isinstance(client_id, str) else None
    transacted = timestamp(event, "T")
    notional = optional_decimal(event, "Q")
    quantity: Decimal | None = decimal(event, "q")
    if quantity == 0 and notional is not None:
        quantity = None
    report = OrderReport(
        broker_order_id=order_id,
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        order_type=_mapped(TYPE_MAP, event, "o"),
        time_in_force=TIF_MAP.get(str(event.get("f")), TimeInForce.GTC),
        quantity=quantity,
        status=status,
        raw_status=text(event, "X"),
        filled_quantity=filled,
        average_fill_price=quote / filled if filled and quote >= 0 else None,
        created_at=timestamp(event, "O"),
        updated_at=transacted,
        limit_price=optional_decimal(event, "p"),
        stop_price=optional_decimal(event, "P"),
        filled_at=transacted if status is OrderStatus.FILLED else None,
        canceled_at=transacted if status is OrderStatus.CANCELED else None,
        notional=notional,
        reject_reason=None if event.get("r") in (None, "NONE") else str(event.get("r")),
        raw=dict(event),
    )
    fill = None
    trade_id = integer(event, "t")
    if execution == "TRADE" and trade_id != -1:  # -1: no trade
        asset = event.get("N")
        fill = FillReport(
            broker_fill_id=broker_id(symbol, trade_id),
            broker_order_id=order_id,
            symbol=symbol,
            side=side,
            quantity=decimal(event, "l"),
            price=decimal(event, "L"),
            filled_at=transacted,
            fee=decimal(event, "n"),
            fee_asset=asset if isinstance(asset, str) else None,
            client_order_id=client_order_id,
            cum_quantity=filled,
        )
    event_id = f"{order_id}:{integer(event, 'I')}" if "I" in event else None
    return StreamEvent(kind=execution, report=report, at=at, event_id=event_id, fill=fill)


def sort_fee(fill: FillReport, base: str, quote: str) -> FillReport:
    """A commission as ordersync keeps it: money in the quote, a quantity of the base asset
    (a buy's commission by default), or an amount of a third asset (BNB)."""
    asset = fill.fee_asset
    if not fill.fee or asset is None or asset == quote:
        return replace(fill, fee_asset=None)
    if asset == base:
        return replace(fill, fee=Decimal(0), fee_quantity=fill.fee, fee_asset=None)
    return replace(fill, fee=Decimal(0), fee_asset=asset, fee_asset_amount=fill.fee)
