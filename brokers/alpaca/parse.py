"""Alpaca v2 JSON → normalized reports, with no I/O so every shape can be tested directly.

Money never goes through ``float``: bodies are read with ``parse_float=Decimal`` and each
decimal field accepts a string or a JSON number. Times become timezone-aware UTC.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

from brokers.alpaca.rules import pair_symbol
from brokers.values import ParseError as ParseError
from brokers.values import as_list as as_list
from brokers.values import as_object as as_object
from brokers.values import decimal, describe, fail, opt_text, text, when
from brokers.values import decimal_str as decimal_str
from brokers.values import excerpt as excerpt
from brokers.values import loads as loads
from brokers.values import parse_items as parse_items
from brokers.values import rfc3339 as rfc3339
from brokers.values import to_datetime as to_datetime
from brokers.values import to_decimal as to_decimal
from core.enums import OrderClass, OrderStatus, OrderType, Side, TimeInForce
from core.reports import FeeReport, FillReport, OrderReport, PositionReport

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

_TOKEN_VERSION = 1


def _opt_dec(data: Mapping[str, object], key: str) -> Decimal | None:
    value = data.get(key)
    return None if value is None else to_decimal(value, key)


def _opt_time(data: Mapping[str, object], key: str) -> datetime | None:
    value = data.get(key)
    return None if value is None else to_datetime(value, key)


def _choice(data: Mapping[str, object], key: str, allowed: Collection[str]) -> str:
    """The raw string of an enum-like field, checked against the values we know."""
    raw = text(data, key)
    if raw not in allowed:
        fail(f"unknown {key} {raw!r}")
    return raw


def order_status(raw_status: str, quantity: Decimal | None, filled: Decimal) -> OrderStatus:
    """Map an Alpaca status; a working status with some fills is PARTIALLY_FILLED, and with
    every share filled it is FILLED (``calculated`` follows a full fill). A notional order
    (``quantity`` None) has no share count to reach: only ``calculated`` says it is done."""
    try:
        status = STATUS_MAP[raw_status]
    except KeyError:
        fail(f"unknown status {raw_status!r}")
    if status is OrderStatus.NEW and filled > 0:
        done = raw_status == "calculated" if quantity is None else filled >= quantity
        return OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
    return status


def _ordered(data: Mapping[str, object]) -> tuple[Decimal | None, Decimal | None]:
    """``(qty, None)``, or ``(None, notional)`` for a notional order: Alpaca sizes that one
    as it fills, so a ``qty`` it may show is not the order's term (``filled_qty`` is)."""
    notional = _opt_dec(data, "notional")
    if notional is None:
        quantity = decimal(data, "qty")
        if quantity <= 0:
            fail(f"qty is {quantity}, expected > 0")
        return quantity, None
    if notional <= 0:
        fail(f"notional is {notional}, expected > 0")
    return None, notional


def parse_order(value: object) -> OrderReport:
    """One Alpaca order object as an OrderReport (``raw`` keeps the parsed dict)."""
    data = as_object(value, "order")
    order_type_key = "type" if data.get("type") is not None else "order_type"
    quantity, notional = _ordered(data)
    filled = decimal(data, "filled_qty")
    if filled < 0:
        fail(f"filled_qty is {filled}, expected >= 0")
    raw_status = text(data, "status")
    status = order_status(raw_status, quantity, filled)
    average = _opt_dec(data, "filled_avg_price")
    if filled == 0:
        average = None  # Alpaca reports 0 or null before the first fill
    return OrderReport(
        broker_order_id=text(data, "id"),
        client_order_id=opt_text(data, "client_order_id"),
        symbol=text(data, "symbol"),
        side=Side(_choice(data, "side", _SIDES)),
        order_type=OrderType(_choice(data, order_type_key, _ORDER_TYPES)),
        time_in_force=TimeInForce(_choice(data, "time_in_force", _TIMES_IN_FORCE)),
        quantity=quantity,
        status=status,
        raw_status=raw_status,
        filled_quantity=filled,
        average_fill_price=average,
        created_at=when(data, "created_at"),
        updated_at=_opt_time(data, "updated_at"),
        submitted_at=_opt_time(data, "submitted_at"),
        filled_at=_opt_time(data, "filled_at"),
        canceled_at=_opt_time(data, "canceled_at"),
        limit_price=_opt_dec(data, "limit_price"),
        stop_price=_opt_dec(data, "stop_price"),
        replaced_by=opt_text(data, "replaced_by"),
        replaces=opt_text(data, "replaces"),
        fees=None,
        order_class=_order_class(data),
        legs=_legs(data),
        notional=notional,
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
        fail(f"legs is {describe(raw)}, expected a list or null")
    return tuple(parse_order(leg) for leg in raw)


def parse_fill(value: object) -> FillReport:
    """One FILL account activity as a FillReport; Alpaca's Trading API reports no fee."""
    data = as_object(value, "activity")
    quantity = decimal(data, "qty")
    if quantity <= 0:
        fail(f"qty is {quantity}, expected > 0")
    return FillReport(
        broker_fill_id=text(data, "id"),
        broker_order_id=text(data, "order_id"),
        symbol=text(data, "symbol"),
        side=_FILL_SIDES[_choice(data, "side", _FILL_SIDES)],
        quantity=quantity,
        price=decimal(data, "price"),
        filled_at=when(data, "transaction_time"),
        fee=Decimal(0),
        cum_quantity=_opt_dec(data, "cum_qty"),
    )


def parse_fee(value: object) -> FeeReport:
    """One CFEE activity: a coin fee is a negative ``qty`` of the position it came out of
    (``BTCUSD``) at its USD ``price``; a dollar fee a negative ``net_amount`` only."""
    data = as_object(value, "activity")
    if data.get("activity_type") not in (None, "CFEE"):
        fail(f"activity_type is {describe(data.get('activity_type'))}, expected CFEE")
    posted_at = _opt_time(data, "created_at") or _opt_time(data, "transaction_time")
    if posted_at is None:
        posted_at = _day_start(text(data, "date"))
    coins = _opt_dec(data, "qty")
    if coins is not None and data.get("symbol") is not None:
        if coins >= 0:
            fail(f"qty is {coins}, expected < 0 (a fee taken)")
        price = decimal(data, "price")
        if price < 0:
            fail(f"price is {price}, expected >= 0")
        quantity = -coins
        return FeeReport(
            broker_fee_id=text(data, "id"), symbol=pair_symbol(text(data, "symbol")),
            quantity=quantity, price=price, amount=quantity * price,
            currency=opt_text(data, "currency") or "USD", posted_at=posted_at,
            description=opt_text(data, "description") or "",
        )  # fmt: skip
    cash = decimal(data, "net_amount")
    if cash >= 0:
        fail(f"net_amount is {cash}, expected < 0 (a fee taken) without symbol and qty")
    return FeeReport(
        broker_fee_id=text(data, "id"), symbol=None, quantity=None, price=None, amount=-cash,
        currency=opt_text(data, "currency") or "USD", posted_at=posted_at,
        description=opt_text(data, "description") or "",
    )  # fmt: skip


_NEW_YORK = ZoneInfo("America/New_York")


def _day_start(value: str) -> datetime:
    """A ``YYYY-MM-DD`` activity date (New York's) as the UTC time its day begins."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        fail(f"date {value!r} is not YYYY-MM-DD")
    return datetime.combine(day, time(), _NEW_YORK).astimezone(UTC)


def parse_position(value: object) -> PositionReport:
    """One position; the quantity is signed by ``side`` whatever sign Alpaca gives ``qty``."""
    data = as_object(value, "position")
    side = text(data, "side")
    if side not in ("long", "short"):
        fail(f"unknown position side {side!r}")
    size = abs(decimal(data, "qty"))
    symbol = text(data, "symbol")
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
    payload = {"v": _TOKEN_VERSION, "at": rfc3339(last_at), "ids": tied_ids}
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
        fail("cannot page on: no order on a full page has a readable submitted_at")
    last_at = max(times)
    boundary = after_for_token(last_at)
    ids = {oid for at, oid in stamped if at is not None and at >= boundary and oid is not None}
    return last_at, sorted(ids)


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
