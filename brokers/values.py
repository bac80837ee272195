"""Reading broker JSON values: Decimal money (never float), aware UTC times, clear errors.

Pure functions every venue's ``parse`` builds on; a ``ParseError`` becomes a
MalformedResponse or a MalformedItem upstream. What one venue alone writes (epoch
milliseconds, "" for none) stays in its own package.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import NoReturn, TypeVar

from core.reports import MalformedItem

R = TypeVar("R")
EXCERPT_CHARS = 200


class ParseError(ValueError):
    """A broker value we cannot read; becomes MalformedResponse or a MalformedItem."""


def fail(reason: str) -> NoReturn:
    raise ParseError(reason)


def _no_constants(name: str) -> NoReturn:
    """JSON NaN/Infinity are not money; refuse them instead of producing a float."""
    raise ParseError(f"non-finite number {name} in body")


def loads(body: bytes | str) -> object:
    """JSON with every number that has a fraction as Decimal, never float; NaN refused."""
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ParseError(f"body is not JSON: {exc}") from None


def excerpt(body: bytes | str) -> str:
    """A short, printable slice of a body for an error message, never the whole thing."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def describe(value: object) -> str:
    """A wrong value as an error message names it: its type and a bounded repr."""
    return "missing or null" if value is None else f"{type(value).__name__} {excerpt(repr(value))}"


def as_object(value: object, what: str) -> dict[str, object]:
    """Require a JSON object (a dict, with its keys as strings)."""
    if not isinstance(value, dict):
        fail(f"{what} is {type(value).__name__}, expected an object")
    return {str(k): v for k, v in value.items()}


def as_list(value: object, what: str) -> list[object]:
    """Require a JSON array."""
    if not isinstance(value, list):
        fail(f"{what} is {type(value).__name__}, expected an array")
    return list(value)


def text(data: Mapping[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        fail(f"{key} is {describe(value)}, expected a non-empty string")
    return value


def opt_text(data: Mapping[str, object], key: str) -> str | None:
    """A string field that may be absent, null or "" for none."""
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        fail(f"{key} is {describe(value)}, expected a string or null")
    return value


def to_decimal(value: object, name: str) -> Decimal:
    """A finite Decimal from a decimal string or a JSON number (int or Decimal), never float."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        fail(f"{name} is {describe(value)}, expected a decimal string or number")
    try:
        result = Decimal(value)
    except InvalidOperation:
        fail(f"{name} is not a decimal: {excerpt(str(value))!r}")
    if not result.is_finite():
        fail(f"{name} is not finite: {value!r}")
    return result


def decimal(data: Mapping[str, object], key: str) -> Decimal:
    """A required decimal field."""
    return to_decimal(data.get(key), key)


def to_datetime(value: object, name: str) -> datetime:
    """An aware UTC datetime from RFC 3339 (``Z`` or an offset; extra fraction digits dropped)."""
    if not isinstance(value, str):
        fail(f"{name} is {describe(value)}, expected an RFC 3339 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{name} is not an RFC 3339 time: {excerpt(value)!r}")
    if parsed.tzinfo is None:
        fail(f"{name} has no timezone: {value!r}")
    return parsed.astimezone(UTC)


def when(data: Mapping[str, object], key: str) -> datetime:
    """A required RFC 3339 time field, as aware UTC."""
    return to_datetime(data.get(key), key)


def rfc3339(value: datetime) -> str:
    """An aware time as the UTC RFC 3339 string (microseconds, ``Z``) query parameters take."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} given; pass a timezone-aware time")
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def decimal_str(value: Decimal) -> str:
    """Plain notation (``100``, not ``1E+2``): what venues' decimal-string fields expect."""
    return format(value, "f")


def parse_items(
    raw_items: list[object], parser: Callable[[object], R]
) -> tuple[tuple[R, ...], tuple[MalformedItem, ...]]:
    """Each item on its own: an unreadable one is kept as a MalformedItem, never fails the page."""
    items: list[R] = []
    malformed: list[MalformedItem] = []
    for raw in raw_items:
        try:
            items.append(parser(raw))
        except ParseError as exc:
            malformed.append(MalformedItem(reason=str(exc), raw=raw))
    return tuple(items), tuple(malformed)
