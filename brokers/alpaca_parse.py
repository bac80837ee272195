"""Alpaca v2 JSON → normalized reports, with no I/O so every shape can be tested directly.

Money never goes through ``float``: bodies are read with ``parse_float=Decimal`` and each
decimal field accepts a string or a JSON number. Times become timezone-aware UTC.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import NoReturn, TypeVar

from brokers.alpaca_rules import pair_symbol
from brokers.base import FillReport, MalformedItem, OrderReport, PositionReport
from models.enums import OrderClass, OrderStatus, OrderType, Side, TimeInForce

# Every Alpaca order status, and what it means here. Statuses mapped to NEW become
# PARTIALLY_FILLED when some but not all of the quantity has filled (see ``order_status``).
STATUS_MAP: dict[str, OrderStatus] = {
    "new": OrderStatus.NEW,
    "accepted": OrderStatus.NEW,
    "pending_new": OrderStatus.NEW,
    "pending_review": OrderStatus.NEW,  # alpaca-py lists it; Alpaca's docs do not
    "accepted_for_bidding": OrderStatus.NEW,
    "held": OrderStatus.NEW,
    "suspended": OrderStatus.NEW,
    "calculated": OrderStatus.NEW,
    "stopped": OrderStatus.NEW,
    "done_for_day": OrderStatus.NEW,
    "pending_replace": OrderStatus.NEW,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "pending_cancel": OrderStatus.PENDING_CANCEL,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "replaced": OrderStatus.REPLACED,
}

# Fill activities may say ``sell_short``; for a fill that is still a sell.
_FILL_SIDES: dict[str, Side] = {"buy": Side.BUY, "sell": Side.SELL, "sell_short": Side.SELL}
_SIDES = frozenset(m.value for m in Side)
_ORDER_TYPES = frozenset(m.value for m in OrderType)
_TIMES_IN_FORCE = frozenset(m.value for m in TimeInForce)
_ORDER_CLASSES = frozenset(m.value for m in OrderClass)

R = TypeVar("R")
EXCERPT_CHARS = 200
_TOKEN_VERSION = 1


class ParseError(ValueError):
    """A broker value we cannot read; becomes MalformedResponse or a MalformedItem."""


def _fail(reason: str) -> NoReturn:
    raise ParseError(reason)


def _reject_constant(name: str) -> NoReturn:
    """JSON NaN/Infinity are not money; refuse them instead of producing a float."""
    raise ParseError(f"non-finite number {name} in body")


def loads(body: bytes) -> object:
    """Parse a body with every JSON number that has a fraction as Decimal, never float."""
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ParseError(f"body is not JSON: {exc}") from None


def excerpt(body: bytes | str) -> str:
    """A short, printable slice of a body for an error message, never the whole thing."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def as_object(value: object, what: str) -> dict[str, object]:
    """Require a JSON object (dict with string keys)."""
    if not isinstance(value, dict):
        _fail(f"{what} is {type(value).__name__}, expected an object")
    return {str(k): v for k, v in value.items()}


def as_list(value: object, what: str) -> list[object]:
    """Require a JSON array."""
    if not isinstance(value, list):
        _fail(f"{what} is {type(value).__name__}, expected an array")
    return list(value)


def to_decimal(value: object, name: str) -> Decimal:
    """A finite Decimal from a decimal string or a JSON number (int or Decimal), never float."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        _fail(f"{name} is {type(value).__name__}, expected a decimal string or number")
    try:
        result = Decimal(value)
    except InvalidOperation:
        _fail(f"{name} is not a decimal: {excerpt(str(value))!r}")
    if not result.is_finite():
        _fail(f"{name} is not finite: {value!r}")
    return result


def to_datetime(value: object, name: str) -> datetime:
    """An aware UTC datetime from RFC 3339 (``Z`` or an offset; extra fraction digits dropped)."""
    if not isinstance(value, str):
        _fail(f"{name} is {type(value).__name__}, expected an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{name} is not an RFC 3339 time: {excerpt(value)!r}")
    if parsed.tzinfo is None:
        _fail(f"{name} has no timezone: {value!r}")
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """An aware datetime as the RFC 3339 UTC string Alpaca's query parameters take."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} given; pass a timezone-aware time")
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _str(data: Mapping[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        _fail(f"{key} is {_describe(value)}, expected a non-empty string")
    return value


def _opt_str(data: Mapping[str, object], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        _fail(f"{key} is {_describe(value)}, expected a string or null")
    return value


def _dec(data: Mapping[str, object], key: str) -> Decimal:
    if data.get(key) is None:
        _fail(f"{key} is missing or null")
    return to_decimal(data[key], key)


def _opt_dec(data: Mapping[str, object], key: str) -> Decimal | None:
    value = data.get(key)
    return None if value is None else to_decimal(value, key)


def _time(data: Mapping[str, object], key: str) -> datetime:
    if data.get(key) is None:
        _fail(f"{key} is missing or null")
    return to_datetime(data[key], key)


def _opt_time(data: Mapping[str, object], key: str) -> datetime | None:
    value = data.get(key)
    return None if value is None else to_datetime(value, key)


def _describe(value: object) -> str:
    return "missing or null" if value is None else f"{type(value).__name__} {excerpt(repr(value))}"


def _choice(data: Mapping[str, object], key: str, allowed: Collection[str]) -> str:
    """The raw string of an enum-like field, checked against the values we know."""
    raw = _str(data, key)
    if raw not in allowed:
        _fail(f"unknown {key} {raw!r}")
    return raw


def order_status(raw_status: str, quantity: Decimal, filled: Decimal) -> OrderStatus:
    """Map an Alpaca status; a working status with some fills is PARTIALLY_FILLED, and with
    every share filled it is FILLED (``calculated`` follows a full fill)."""
    try:
        status = STATUS_MAP[raw_status]
    except KeyError:
        _fail(f"unknown status {raw_status!r}")
    if status is OrderStatus.NEW and filled > 0:
        return OrderStatus.FILLED if filled >= quantity else OrderStatus.PARTIALLY_FILLED
    return status


def parse_order(value: object) -> OrderReport:
    """One Alpaca order object as an OrderReport (``raw`` keeps the parsed dict)."""
    data = as_object(value, "order")
    order_type_key = "type" if data.get("type") is not None else "order_type"
    quantity = _dec(data, "qty")
    if quantity <= 0:
        _fail(f"qty is {quantity}, expected > 0")
    filled = _dec(data, "filled_qty")
    if filled < 0:
        _fail(f"filled_qty is {filled}, expected >= 0")
    raw_status = _str(data, "status")
    status = order_status(raw_status, quantity, filled)
    average = _opt_dec(data, "filled_avg_price")
    if filled == 0:
        average = None  # Alpaca reports 0 or null before the first fill
    return OrderReport(
        broker_order_id=_str(data, "id"),
        client_order_id=_opt_str(data, "client_order_id"),
        symbol=_str(data, "symbol"),
        side=Side(_choice(data, "side", _SIDES)),
        order_type=OrderType(_choice(data, order_type_key, _ORDER_TYPES)),
        time_in_force=TimeInForce(_choice(data, "time_in_force", _TIMES_IN_FORCE)),
        quantity=quantity,
        status=status,
        raw_status=raw_status,
        filled_quantity=filled,
        average_fill_price=average,
        created_at=_time(data, "created_at"),
        updated_at=_opt_time(data, "updated_at"),
        submitted_at=_opt_time(data, "submitted_at"),
        filled_at=_opt_time(data, "filled_at"),
        canceled_at=_opt_time(data, "canceled_at"),
        limit_price=_opt_dec(data, "limit_price"),
        stop_price=_opt_dec(data, "stop_price"),
        replaced_by=_opt_str(data, "replaced_by"),
        replaces=_opt_str(data, "replaces"),
        fees=None,
        order_class=_order_class(data),
        legs=_legs(data),
        raw=data,
    )


def _order_class(data: Mapping[str, object]) -> OrderClass:
    """``simple`` when absent or empty (as some answers write it)."""
    if not data.get("order_class"):
        return OrderClass.SIMPLE
    return OrderClass(_choice(data, "order_class", _ORDER_CLASSES))


def _legs(data: Mapping[str, object]) -> tuple[OrderReport, ...]:
    """The exit legs, each a whole order object of its own."""
    raw = data.get("legs")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        _fail(f"legs is {_describe(raw)}, expected a list or null")
    return tuple(parse_order(leg) for leg in raw)


def parse_fill(value: object) -> FillReport:
    """One FILL account activity as a FillReport; Alpaca's Trading API reports no fee."""
    data = as_object(value, "activity")
    quantity = _dec(data, "qty")
    if quantity <= 0:
        _fail(f"qty is {quantity}, expected > 0")
    return FillReport(
        broker_fill_id=_str(data, "id"),
        broker_order_id=_str(data, "order_id"),
        symbol=_str(data, "symbol"),
        side=_FILL_SIDES[_choice(data, "side", _FILL_SIDES)],
        quantity=quantity,
        price=_dec(data, "price"),
        filled_at=_time(data, "transaction_time"),
        fee=Decimal(0),
        cum_quantity=_opt_dec(data, "cum_qty"),
    )


def parse_position(value: object) -> PositionReport:
    """One position; the quantity is signed by ``side`` whatever sign Alpaca gives ``qty``."""
    data = as_object(value, "position")
    side = _str(data, "side")
    if side not in ("long", "short"):
        _fail(f"unknown position side {side!r}")
    size = abs(_dec(data, "qty"))
    symbol = _str(data, "symbol")
    if data.get("asset_class") == "crypto":  # BTCUSD here, BTC/USD in its orders and fills
        symbol = pair_symbol(symbol)
    return PositionReport(
        symbol=symbol,
        quantity=-size if side == "short" else size,
        average_entry_price=_opt_dec(data, "avg_entry_price"),
    )


def item_id(value: object) -> str | None:
    """The ``id`` of a raw list item, if it has a readable one (malformed items too)."""
    if isinstance(value, dict):
        found = value.get("id")
        if isinstance(found, str) and found:
            return found
    return None


def item_submitted_at(value: object) -> datetime | None:
    """The time Alpaca's ``after``/``until`` filter on, if the raw item has a readable one."""
    if not isinstance(value, dict):
        return None
    for key in ("submitted_at", "created_at"):
        try:
            return to_datetime(value.get(key), key)
        except ParseError:
            continue
    return None


def encode_order_token(last_at: datetime, tied_ids: list[str]) -> str:
    """Opaque list_orders cursor: the last submitted_at and the ids already seen around it."""
    payload = {"v": _TOKEN_VERSION, "at": format_time(last_at), "ids": tied_ids}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_order_token(token: str) -> tuple[datetime, frozenset[str]]:
    """Read a cursor made by ``encode_order_token``; anything else is a ValueError."""
    problem = "it is not a token returned by AlpacaBroker.list_orders"
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise ValueError(
            f"malformed list_orders page_token {excerpt(token)!r}: {problem}"
        ) from None
    ids = payload.get("ids") if isinstance(payload, dict) else None
    at = payload.get("at") if isinstance(payload, dict) else None
    if (
        not isinstance(payload, dict)
        or payload.get("v") != _TOKEN_VERSION
        or not isinstance(ids, list)
        or not all(isinstance(i, str) for i in ids)
    ):
        raise ValueError(f"malformed list_orders page_token {excerpt(token)!r}: {problem}")
    try:
        last_at = to_datetime(at, "page_token time")
    except ParseError as exc:
        raise ValueError(f"malformed list_orders page_token {excerpt(token)!r}: {exc}") from None
    return last_at, frozenset(ids)


def after_for_token(last_at: datetime) -> datetime:
    """Alpaca's ``after`` is exclusive; one microsecond earlier re-reads the tied orders."""
    return last_at - timedelta(microseconds=1)


def order_cursor(raw_items: list[object]) -> tuple[datetime, list[str]]:
    """The latest submission time on a page and the ids the next page will read again.

    The next page asks ``after = last - 1 µs``; with sub-microsecond stamps that re-reads
    the last microsecond and the one before it, so the ids of both are kept to drop.
    """
    stamped = [(item_submitted_at(raw), item_id(raw)) for raw in raw_items]
    times = [at for at, _ in stamped if at is not None]
    if not times:
        _fail("cannot page on: no order on a full page has a readable submitted_at")
    last_at = max(times)
    boundary = after_for_token(last_at)
    ids = {oid for at, oid in stamped if at is not None and at >= boundary and oid is not None}
    return last_at, sorted(ids)


def parse_items(
    raw_items: list[object], parser: Callable[[object], R]
) -> tuple[tuple[R, ...], tuple[MalformedItem, ...]]:
    """Parse each item; an unreadable one is kept as MalformedItem and the rest still count."""
    items: list[R] = []
    malformed: list[MalformedItem] = []
    for raw in raw_items:
        try:
            items.append(parser(raw))
        except ParseError as exc:
            malformed.append(MalformedItem(reason=str(exc), raw=raw))
    return tuple(items), tuple(malformed)


def decimal_str(value: Decimal) -> str:
    """Plain notation (``100``, not ``1E+2``): what Alpaca's decimal-string fields expect."""
    return format(value, "f")


def broker_message(body: bytes, status_code: int) -> str:
    """The broker's own ``message`` if the body has one, else a short excerpt of the body."""
    try:
        parsed = loads(body)
    except ParseError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])
    return excerpt(body) or f"HTTP {status_code}"


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    """An integer header, or None when absent or unreadable (headers are advisory)."""
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


def epoch(value: float) -> datetime | None:
    """Epoch seconds as aware UTC, or None when out of range."""
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def retry_at(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """When a 429 says to come back: ``X-Ratelimit-Reset`` (epoch s), else ``Retry-After``."""
    reset = headers.get("X-Ratelimit-Reset")
    if reset is not None:
        try:
            at = epoch(float(reset))
        except ValueError:
            at = None
        if at is not None:
            return at
    after = headers.get("Retry-After")
    if after is None:
        return None
    try:
        return now + timedelta(seconds=float(after))
    except (ValueError, OverflowError):
        pass
    try:
        return parsedate_to_datetime(after).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def page_size(requested: int | None, maximum: int) -> int:
    """The page size to ask for: the maximum by default, a ValueError outside 1..maximum."""
    size = maximum if requested is None else requested
    if not 1 <= size <= maximum:
        raise ValueError(f"page_size must be between 1 and {maximum}, got {requested}")
    return size
