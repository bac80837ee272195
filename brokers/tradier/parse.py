"""Tradier JSON → normalized reports, with no I/O so every documented shape is tested
directly. Bodies are read with ``parse_float=Decimal``; times become aware UTC.

Tradier writes a list of one as the object itself and an empty list as the string
``"null"``: ``{"orders": "null"}``, ``{"orders": {"order": {...}}}``,
``{"orders": {"order": [{...}, ...]}}``; the same for positions and a multileg order's
``leg`` (``items``). Refusals come as ``{"errors": {"error": [...]}}`` (even with HTTP 200),
as an API gateway ``{"fault": {"faultstring": ...}}``, or as plain text (``message``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypedDict, TypeVar

from brokers.tradier.tags import client_order_id_of
from brokers.values import (
    ParseError,
    as_object,
    decimal,
    describe,
    excerpt,
    fail,
    loads,
    opt_text,
    text,
    to_datetime,
    to_decimal,
    when,
)
from core.enums import OrderClass, OrderStatus, OrderType, Side, TimeInForce
from core.instruments import contract_multiplier
from core.reports import OrderReport, PositionReport

# Every status Tradier documents (order reference and streaming docs), and what it means
# here; a working status with some shares filled is PARTIALLY_FILLED (``order_status``).
STATUS_MAP: dict[str, OrderStatus] = {
    "pending": OrderStatus.PENDING_NEW,
    "submitted": OrderStatus.PENDING_NEW,  # older docs
    "open": OrderStatus.NEW,
    "accepted_for_bidding": OrderStatus.NEW,
    "calculated": OrderStatus.NEW,
    "held": OrderStatus.NEW,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "expired": OrderStatus.EXPIRED,
    "canceled": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
    "error": OrderStatus.REJECTED,
}
CLOSED_STATUSES = frozenset({"filled", "expired", "canceled", "rejected", "error"})
# Single-leg types, and a multileg order's net-price types (a debit, credit or even price
# is a limit on the whole order).
_TYPES: dict[str, OrderType] = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
    "debit": OrderType.LIMIT,
    "credit": OrderType.LIMIT,
    "even": OrderType.LIMIT,
}
_PRICED = frozenset({"limit", "stop_limit", "debit", "credit", "even"})
_NET_TYPES = frozenset({"debit", "credit", "even"})
_STOPPED = frozenset({"stop", "stop_limit"})
_SIDES: dict[str, Side] = {
    "buy": Side.BUY,
    "buy_to_cover": Side.BUY,
    "buy_to_open": Side.BUY,
    "buy_to_close": Side.BUY,
    "sell": Side.SELL,
    "sell_short": Side.SELL,
    "sell_to_open": Side.SELL,
    "sell_to_close": Side.SELL,
}
# pre and post are day orders of the extended sessions: DAY here, the raw value in ``raw``.
_DURATIONS: dict[str, TimeInForce] = {
    "day": TimeInForce.DAY,
    "gtc": TimeInForce.GTC,
    "pre": TimeInForce.DAY,
    "post": TimeInForce.DAY,
}
_CLASSES: dict[str, OrderClass] = {
    "equity": OrderClass.SIMPLE,
    "option": OrderClass.SIMPLE,
    "multileg": OrderClass.SIMPLE,  # option legs traded together, not exit legs
    "combo": OrderClass.SIMPLE,
    "oto": OrderClass.OTO,
    "oco": OrderClass.OCO,
    "otoco": OrderClass.BRACKET,
}
# Orders whose own figures are a net over their legs: the legs carry the fills.
_NET_CLASSES = frozenset({"multileg", "combo"})
V = TypeVar("V")


def items(value: object, what: str, key: str) -> list[object]:
    """``"null"`` → [], one object → [it], a list → the list (Tradier's lists)."""
    if value is None or value == "null":
        return []
    if isinstance(value, dict):
        inner = value.get(key)
        if inner is None or inner == "null":
            return []
        if isinstance(inner, list):
            return list(inner)
        if isinstance(inner, dict):
            return [inner]
        fail(f"{what}.{key} is {describe(inner)}, expected an object or a list")
    fail(f'{what} is {describe(value)}, expected an object or "null"')


def listing(body: bytes, outer: str, inner: str) -> list[object]:
    """A list answer's raw items (``{"orders": {"order": ...}}``), each parsed on its own."""
    data = as_object(loads(body), "body")
    if outer not in data:
        fail(f"no {outer!r} in the answer")
    return items(data[outer], outer, inner)


def errors(data: Mapping[str, object]) -> list[str] | None:
    """``{"errors": {"error": [...] | "..."}}`` as its messages; None when not that shape."""
    raw = data.get("errors")
    if not isinstance(raw, dict):
        return None
    found = raw.get("error")
    if isinstance(found, str):
        return [found]
    if isinstance(found, list):
        return [str(m) for m in found]
    return [excerpt(repr(raw))]


def _fault(data: Mapping[str, object]) -> str | None:
    fault = data.get("fault")
    if not isinstance(fault, dict):
        return None
    message = str(fault.get("faultstring") or "fault")
    detail = fault.get("detail")
    code = detail.get("errorcode") if isinstance(detail, dict) else None
    return f"{message} ({code})" if code else message


def message(body: bytes, status: int) -> str:
    """What a refusal says, in any of Tradier's shapes, as one line."""
    try:
        data = loads(body)
    except ParseError:
        data = None
    if isinstance(data, dict):
        found = errors(data)
        if found is not None:
            return f"HTTP {status}: {'; '.join(found)}"
        fault = _fault(data)
        if fault is not None:
            return f"HTTP {status}: {fault}"
    text_body = excerpt(body).strip()
    return f"HTTP {status}: {text_body}" if text_body else f"HTTP {status}"


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """A placement, modification or cancel answer: the order id, or Tradier's refusal."""

    order_id: str | None
    refusal: str | None = None


def acknowledgement(body: bytes) -> Acknowledged:
    """``{"order": {"id": 257459, "status": "ok", "partner_id": ...}}`` or ``{"errors": ...}``
    (Tradier answers some refusals with HTTP 200, errors overview docs)."""
    data = as_object(loads(body), "body")
    found = errors(data)
    if found is not None:
        return Acknowledged(None, "; ".join(found))
    order = as_object(data.get("order"), "order")
    status = opt_text(order, "status")
    if status not in (None, "ok"):
        fail(f"order status is {status!r}, expected 'ok'")
    return Acknowledged(order_id(order))


def order_id(data: Mapping[str, object]) -> str:
    """Tradier's order ids are JSON numbers; a string is taken as it is."""
    value = data.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        fail(f"id is {describe(value)}, expected a number")
    return str(value)


def _opt_dec(data: Mapping[str, object], key: str) -> Decimal | None:
    value = data.get(key)
    return None if value is None or value == "" else to_decimal(value, key)


def _opt_time(data: Mapping[str, object], key: str) -> datetime | None:
    value = data.get(key)
    return None if value is None or value == "" else to_datetime(value, key)


def _choice(data: Mapping[str, object], key: str, table: Mapping[str, V]) -> V:
    raw = text(data, key)
    if raw not in table:
        fail(f"unknown {key} {raw!r}")
    return table[raw]


def order_status(raw_status: str, quantity: Decimal, filled: Decimal) -> OrderStatus:
    """A working status with shares filled is PARTIALLY_FILLED, or FILLED with all of them."""
    try:
        status = STATUS_MAP[raw_status]
    except KeyError:
        fail(f"unknown status {raw_status!r}")
    if status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED) and filled > 0:
        return OrderStatus.FILLED if filled >= quantity else OrderStatus.PARTIALLY_FILLED
    return status


def parse_order(value: object) -> OrderReport:
    """One Tradier order (any class), its legs with it; ``raw`` keeps the parsed object."""
    data = as_object(value, "order")
    klass = text(data, "class")
    order_class = _choice(data, "class", _CLASSES)
    raw_type = text(data, "type")
    order_type = _choice(data, "type", _TYPES)
    quantity = decimal(data, "quantity")
    if quantity <= 0:
        fail(f"quantity is {quantity}, expected > 0")
    filled = decimal(data, "exec_quantity")
    if filled < 0:
        fail(f"exec_quantity is {filled}, expected >= 0")
    raw_status = text(data, "status")
    status = order_status(raw_status, quantity, filled)
    average = _opt_dec(data, "avg_fill_price")
    if filled == 0 or klass in _NET_CLASSES:
        # Tradier writes 0 before a fill; a multileg's price is a net of its legs' prices,
        # not a price of its underlying, and its legs carry the fills.
        average = None
    symbol = text(data, "option_symbol") if klass == "option" else text(data, "symbol")
    changed = _opt_time(data, "transaction_date")
    reason = opt_text(data, "reason_description")
    return OrderReport(
        broker_order_id=order_id(data),
        client_order_id=client_order_id_of(opt_text(data, "tag")),
        symbol=symbol,
        side=_choice(data, "side", _SIDES),
        order_type=order_type,
        time_in_force=_choice(data, "duration", _DURATIONS),
        quantity=quantity,
        status=status,
        raw_status=raw_status,
        filled_quantity=filled,
        average_fill_price=average,
        created_at=when(data, "create_date"),
        updated_at=changed,
        **_prices(data, raw_type),
        **_ended_at(changed, status),
        fees=None,  # Tradier's orders carry no commission (only the nightly history does)
        reject_reason=reason if status is OrderStatus.REJECTED else None,
        order_class=order_class,
        legs=tuple(parse_order(leg) for leg in _legs(data)),
        raw=data,
    )


class _Prices(TypedDict):
    limit_price: Decimal | None
    stop_price: Decimal | None


class _Ended(TypedDict):
    filled_at: datetime | None
    canceled_at: datetime | None


def _prices(data: Mapping[str, object], raw_type: str) -> _Prices:
    """The limit and stop an order of this type has (Tradier writes 0 for those it has not)."""
    return _Prices(
        limit_price=_opt_dec(data, "price") if raw_type in _PRICED else None,
        stop_price=_opt_dec(data, "stop_price") if raw_type in _STOPPED else None,
    )


def _ended_at(changed: datetime | None, status: OrderStatus) -> _Ended:
    return _Ended(
        filled_at=changed if status is OrderStatus.FILLED else None,
        canceled_at=changed if status is OrderStatus.CANCELED else None,
    )


def _legs(data: Mapping[str, object]) -> list[object]:
    raw = data.get("leg")
    if raw is None or raw == "null":
        return []
    if isinstance(raw, dict):
        return [raw]
    if isinstance(raw, list):
        return list(raw)
    fail(f"leg is {describe(raw)}, expected an object or a list")


def parse_order_answer(body: bytes) -> OrderReport:
    """``GET .../orders/{id}`` → ``{"order": {...}}``."""
    data = as_object(loads(body), "body")
    found = errors(data)
    if found is not None:
        fail(f"errors instead of an order: {'; '.join(found)}")
    return parse_order(data.get("order"))


def parse_position(value: object) -> PositionReport:
    """``{"cost_basis", "date_acquired", "id", "quantity", "symbol"}``: ``quantity`` is
    signed (short is negative) and ``cost_basis`` is the position's total cost, so the
    entry price is their ratio (per share of an option's contracts)."""
    data = as_object(value, "position")
    symbol = text(data, "symbol")
    quantity = decimal(data, "quantity")
    basis = _opt_dec(data, "cost_basis")
    average = None
    if basis is not None and quantity != 0:
        units = abs(quantity) * contract_multiplier(symbol)
        average = abs(basis) / units
    return PositionReport(symbol=symbol, quantity=quantity, average_entry_price=average)


def created_key(value: object) -> tuple[datetime, int] | None:
    """What a raw order is ordered by (creation time, numeric id); None when unreadable."""
    if not isinstance(value, dict):
        return None
    try:
        at = to_datetime(value.get("create_date"), "create_date")
        number = int(order_id(value))
    except (ParseError, ValueError):
        return None
    return at, number


# -- the account events stream ----------------------------------------------------------


def parse_event_order(value: object) -> OrderReport:
    """One ``order`` event of the account events stream (account-streaming-responses docs).

    The event names no symbol, side, duration or quantity: the report does not state the
    order's terms (``states_terms=False``), the worker finds the order by its id (or its tag)
    and takes them from its own record. ``symbol``, ``side`` and ``time_in_force`` are
    placeholders, and the quantity is filled plus remaining. ``exec_quantity`` is the
    sample's name (an older field list says ``executed_quantity`` [U]); ``parent_id``
    (a leg's parent) is not read.
    """
    data = as_object(value, "order event")
    raw_type = text(data, "type")
    order_type = _choice(data, "type", _TYPES)
    filled = decimal(data, "exec_quantity")
    remaining = decimal(data, "remaining_quantity")
    if filled < 0 or remaining < 0:
        fail(f"exec_quantity {filled} and remaining_quantity {remaining}, expected >= 0")
    raw_status = text(data, "status")
    quantity = filled + remaining
    # Never FILLED from the event's own figures (remaining may be written 0 while working):
    # the worker promotes a working order once our quantity is filled.
    status = order_status(raw_status, Decimal("Infinity"), filled)
    # A net price (a multileg's debit, credit or even) is not a price of the underlying.
    priced = filled > 0 and raw_type not in _NET_TYPES
    average = _opt_dec(data, "avg_fill_price") if priced else None
    changed = _opt_time(data, "transaction_date")
    return OrderReport(
        broker_order_id=order_id(data),
        client_order_id=client_order_id_of(opt_text(data, "tag")),
        symbol="",
        side=Side.BUY,
        order_type=order_type,
        time_in_force=TimeInForce.DAY,
        quantity=quantity,
        status=status,
        raw_status=raw_status,
        filled_quantity=filled,
        average_fill_price=average,
        created_at=when(data, "create_date"),
        updated_at=changed,
        **_prices(data, raw_type),
        **_ended_at(changed, status),
        states_terms=False,
        raw=data,
    )
