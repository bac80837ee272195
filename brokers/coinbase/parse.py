"""Coinbase Advanced Trade JSON → normalized reports; no I/O, so every shape is tested directly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from brokers.coinbase.values import (
    ParseError,
    array,
    decimal,
    excerpt,
    fail,
    loads,
    obj,
    opt_decimal,
    opt_text,
    opt_when,
    text,
    when,
)
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import FillReport, MalformedItem, OrderReport, PositionReport, StreamEvent

R = TypeVar("R")

# Every documented Coinbase order status. OPEN (and EDIT_QUEUED, an OPEN order being
# edited) become PARTIALLY_FILLED once something filled; see ``order_status``.
STATUS_MAP: dict[str, OrderStatus] = {
    "PENDING": OrderStatus.PENDING_NEW,
    "QUEUED": OrderStatus.PENDING_NEW,
    "OPEN": OrderStatus.NEW,
    "EDIT_QUEUED": OrderStatus.NEW,
    "CANCEL_QUEUED": OrderStatus.PENDING_CANCEL,
    "FILLED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED,
    "FAILED": OrderStatus.REJECTED,
}
# UNKNOWN_ORDER_STATUS is left out on purpose: an order in it cannot be tracked.

# order_configuration key → (type, time in force). Coinbase's GTD expires at a set time;
# ordersync has no GTD, and an order that ends by itself is closest to DAY.
CONFIGURATIONS: dict[str, tuple[OrderType, TimeInForce]] = {
    "market_market_ioc": (OrderType.MARKET, TimeInForce.IOC),
    "market_market_fok": (OrderType.MARKET, TimeInForce.FOK),
    "sor_limit_ioc": (OrderType.LIMIT, TimeInForce.IOC),
    "limit_limit_gtc": (OrderType.LIMIT, TimeInForce.GTC),
    "limit_limit_gtd": (OrderType.LIMIT, TimeInForce.DAY),
    "limit_limit_fok": (OrderType.LIMIT, TimeInForce.FOK),
    "stop_limit_stop_limit_gtc": (OrderType.STOP_LIMIT, TimeInForce.GTC),
    "stop_limit_stop_limit_gtd": (OrderType.STOP_LIMIT, TimeInForce.DAY),
}
_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_NO_REASON = frozenset({"REJECT_REASON_UNSPECIFIED", "UNKNOWN_FAILURE_REASON"})


def order_status(raw: str, filled: Decimal, pending_cancel: bool = False) -> OrderStatus:
    """The normalized status; an unknown string is a ParseError, never a guess."""
    status = STATUS_MAP.get(raw)
    if status is None:
        fail(f"unknown order status {raw!r}")
    if status is OrderStatus.NEW and pending_cancel:
        return OrderStatus.PENDING_CANCEL
    if status is OrderStatus.NEW and filled > 0:
        return OrderStatus.PARTIALLY_FILLED
    return status


def side(data: Mapping[str, object], key: str) -> Side:
    raw = text(data, key)
    if raw not in _SIDES:
        fail(f"{key} is {raw!r}, expected BUY or SELL")
    return _SIDES[raw]


@dataclass(frozen=True, slots=True)
class Terms:
    """What an order_configuration says: one of its known keys, read."""

    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None


def terms(value: object) -> Terms:
    """The order's terms from its single configuration key; base_size is the quantity and
    quote_size (with no base_size) a notional."""
    config = obj(value, "order_configuration")
    known = [key for key in config if key in CONFIGURATIONS and config[key] is not None]
    if len(known) != 1:
        fail(f"order_configuration has {sorted(config)}, expected one of {sorted(CONFIGURATIONS)}")
    order_type, tif = CONFIGURATIONS[known[0]]
    body = obj(config[known[0]], known[0])
    quantity = opt_decimal(body, "base_size")
    notional = None if quantity is not None else opt_decimal(body, "quote_size")
    if quantity is None and notional is None:
        fail(f"{known[0]} has neither base_size nor quote_size")
    return Terms(
        order_type,
        tif,
        quantity,
        notional,
        opt_decimal(body, "limit_price"),
        opt_decimal(body, "stop_price"),
    )


def parse_order(value: object) -> OrderReport:
    """One order object (``order`` of Get Order, an item of List Orders)."""
    data = obj(value, "order")
    raw_status = text(data, "status")
    filled = opt_decimal(data, "filled_size") or Decimal(0)
    status = order_status(raw_status, filled, data.get("pending_cancel") is True)
    deal = terms(data.get("order_configuration"))
    last_fill = opt_when(data, "last_fill_time")
    reason = opt_text(data, "reject_message") or opt_text(data, "reject_reason")
    return OrderReport(
        broker_order_id=text(data, "order_id"),
        client_order_id=opt_text(data, "client_order_id"),
        symbol=text(data, "product_id"),
        side=side(data, "side"),
        order_type=deal.order_type,
        time_in_force=deal.time_in_force,
        quantity=deal.quantity,
        status=status,
        raw_status=raw_status,
        filled_quantity=filled,
        average_fill_price=opt_decimal(data, "average_filled_price") if filled > 0 else None,
        created_at=when(data, "created_time"),
        updated_at=last_fill,
        limit_price=deal.limit_price,
        stop_price=deal.stop_price,
        filled_at=last_fill if status is OrderStatus.FILLED else None,
        fees=opt_decimal(data, "total_fees"),
        reject_reason=None if reason in _NO_REASON else reason,
        notional=deal.notional,
        raw=data,
    )


def parse_order_answer(body: bytes) -> OrderReport:
    """Get Order's answer: ``{"order": {...}}``."""
    return parse_order(obj(loads(body), "body").get("order"))


def parse_fill(value: object) -> FillReport:
    """One item of List Fills. ``entry_id`` is the unique key per fill; a fill whose size is
    in quote (``size_in_quote``) is converted to base as size / price."""
    data = obj(value, "fill")
    trade_type = data.get("trade_type", "FILL")
    if trade_type != "FILL":
        # REVERSAL / CORRECTION / SYNTHETIC change an earlier execution: recorded as a
        # MalformedItem for an operator, never applied as a new fill.
        fail(f"trade_type {trade_type!r} is not an execution")
    product_id = text(data, "product_id")
    price = decimal(data, "price")
    size = decimal(data, "size")
    if data.get("size_in_quote") is True:
        if price <= 0:
            fail(f"size_in_quote fill with price {price}")
        size = size / price
    return FillReport(
        broker_fill_id=text(data, "entry_id"),
        broker_order_id=text(data, "order_id"),
        symbol=product_id,
        side=side(data, "side"),
        quantity=size,
        price=price,
        filled_at=when(data, "trade_time"),
        fee=opt_decimal(data, "commission") or Decimal(0),
    )


def parse_position(value: object) -> PositionReport | None:
    """An account's balance (available + hold) as a position in its currency; None if zero."""
    data = obj(value, "account")
    currency = text(data, "currency")
    available = decimal(obj(data.get("available_balance"), "available_balance"), "value")
    hold_value = data.get("hold")
    held = Decimal(0) if hold_value is None else decimal(obj(hold_value, "hold"), "value")
    quantity = available + held
    if quantity == 0:
        return None
    return PositionReport(symbol=currency, quantity=quantity, average_entry_price=None)


def listing(body: bytes, key: str) -> tuple[list[object], str | None]:
    """A list answer's raw items and the cursor of the next Coinbase page (None: last)."""
    data = obj(loads(body), "body")
    items = array(data.get(key, []), key)
    cursor = opt_text(data, "cursor")
    # Orders say has_next; fills carry only a cursor, "" on the last page.
    if data.get("has_next") is False or not items:
        cursor = None
    return items, cursor


@dataclass(frozen=True, slots=True)
class Placed:
    """The Create Order answer: the order id, or why it was refused."""

    order_id: str | None
    reason: str


def parse_placed(body: bytes) -> Placed:
    """``success`` with ``success_response.order_id``, or the failure's reasons joined."""
    data = obj(loads(body), "body")
    if data.get("success") is True:
        answer = obj(data.get("success_response"), "success_response")
        return Placed(order_id=text(answer, "order_id"), reason="")
    if data.get("success") is not False:
        fail(f"success is {data.get('success')!r}, expected true or false")
    parts = [opt_text(data, "failure_reason")]
    error = data.get("error_response")
    if isinstance(error, dict):
        for key in (
            "error",
            "message",
            "error_details",
            "preview_failure_reason",
            "new_order_failure_reason",
        ):
            parts.append(opt_text(error, key))
    reason = "; ".join(p for p in parts if p and p not in _NO_REASON)
    return Placed(order_id=None, reason=reason or "refused without a reason")


def parse_cancel(body: bytes, order_id: str) -> str | None:
    """The cancel result for ``order_id``: None when accepted, else its failure_reason."""
    results = array(obj(loads(body), "body").get("results"), "results")
    for raw in results:
        result = obj(raw, "result")
        if result.get("order_id") in (order_id, None) or len(results) == 1:
            if result.get("success") is True:
                return None
            return opt_text(result, "failure_reason") or "UNKNOWN_CANCEL_FAILURE_REASON"
    fail(f"no cancel result for order {order_id}")


def error_message(body: bytes, status: int) -> str:
    """Coinbase's error body (``error``, ``message``, ``error_details``) as one line; an
    excerpt when the body is not that shape."""
    try:
        data = obj(loads(body), "body")
    except ParseError:
        return f"HTTP {status}: {excerpt(body)}" if body else f"HTTP {status}"
    parts = [
        v for k in ("error", "message", "error_details") if isinstance(v := data.get(k), str) and v
    ]
    return f"HTTP {status}: {' - '.join(parts)}" if parts else f"HTTP {status}: {excerpt(body)}"


# -- the ``user`` WebSocket channel -----------------------------------------------------

_STREAM_TYPES: dict[str, OrderType] = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "STOP": OrderType.STOP,
    "STOP_LIMIT": OrderType.STOP_LIMIT,
}
_STREAM_TIF: dict[str, TimeInForce] = {
    "GOOD_UNTIL_CANCELLED": TimeInForce.GTC,
    "GOOD_UNTIL_DATE_TIME": TimeInForce.DAY,
    "IMMEDIATE_OR_CANCEL": TimeInForce.IOC,
    "FILL_OR_KILL": TimeInForce.FOK,
}


def _stream_choice(data: Mapping[str, object], key: str, table: Mapping[str, R]) -> R:
    raw = text(data, key).upper()  # the channel has written both "LIMIT" and "Limit"
    if raw not in table:
        fail(f"{key} is {raw!r}, expected one of {sorted(table)}")
    return table[raw]


def parse_stream_order(value: object, at: datetime) -> OrderReport:
    """One order of a ``user`` channel event. The channel has no order_configuration: the
    quantity is cumulative_quantity + leaves_quantity, and ``at`` (the message time) is when
    Coinbase last saw it."""
    data = obj(value, "order")
    raw_status = text(data, "status")
    filled = decimal(data, "cumulative_quantity")
    status = order_status(raw_status, filled)
    average = opt_decimal(data, "avg_price")
    reason = opt_text(data, "reject_reason") or opt_text(data, "cancel_reason")
    return OrderReport(
        broker_order_id=text(data, "order_id"),
        client_order_id=opt_text(data, "client_order_id"),
        symbol=text(data, "product_id"),
        side=side(data, "order_side"),
        order_type=_stream_choice(data, "order_type", _STREAM_TYPES),
        time_in_force=_stream_choice(data, "time_in_force", _STREAM_TIF),
        quantity=filled + decimal(data, "leaves_quantity"),
        status=status,
        raw_status=raw_status,
        filled_quantity=filled,
        average_fill_price=average if filled > 0 else None,
        created_at=when(data, "creation_time"),
        updated_at=at,
        limit_price=opt_decimal(data, "limit_price"),
        stop_price=opt_decimal(data, "stop_price"),
        filled_at=at if status is OrderStatus.FILLED else None,
        fees=opt_decimal(data, "total_fees"),
        reject_reason=reason if status is OrderStatus.REJECTED else None,
        # Filled plus left is the size only while the order works (a quote-sized order has
        # no size, and an ended one may leave nothing): never compared with ours.
        states_terms=False,
        raw=data,
    )


def parse_user_message(body: bytes) -> tuple[list[StreamEvent], list[MalformedItem]]:
    """A ``user`` channel message: one StreamEvent per order of each snapshot/update event
    (kind = the event's type), and what could not be read, kept."""
    message = obj(loads(body), "message")
    if message.get("channel") != "user":
        fail(f"channel is {message.get('channel')!r}, expected 'user'")
    at = when(message, "timestamp")
    sequence = message.get("sequence_num")
    events: list[StreamEvent] = []
    malformed: list[MalformedItem] = []
    for raw_event in array(message.get("events"), "events"):
        event = obj(raw_event, "event")
        kind = text(event, "type")
        for raw in array(event.get("orders", []), "orders"):
            try:
                report = parse_stream_order(raw, at)
            except ParseError as exc:
                malformed.append(MalformedItem(reason=str(exc), raw=raw))
                continue
            event_id = f"{sequence}:{report.broker_order_id}" if sequence is not None else None
            events.append(StreamEvent(kind=kind, report=report, at=at, event_id=event_id))
    return events, malformed
