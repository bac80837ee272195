"""Query parameters of the list endpoints read as Coinbase reads them (a repeated name is a
list: ``product_ids=A&product_ids=B``), and its paging: newest first, ``limit`` per page,
an opaque ``cursor`` to the next page and ``has_next``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import parse_qsl

from brokers.coinbase.paper.errors import invalid
from brokers.paper.model import parse_time

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Query:
    values: dict[str, list[str]]

    @classmethod
    def parse(cls, query: str) -> Query:
        values: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            values.setdefault(name, []).append(value)
        return cls(values)

    def one(self, name: str) -> str | None:
        found = [v for v in self.values.get(name, []) if v != ""]
        if len(found) > 1:
            raise invalid(f"{name} was given more than once")
        return found[0] if found else None

    def many(self, name: str) -> set[str]:
        """A list parameter: every value given, repeated names or comma-free values."""
        return {v for v in self.values.get(name, []) if v != ""}

    def time_us(self, name: str) -> int | None:
        raw = self.one(name)
        if raw is None:
            return None
        try:
            return parse_time(raw)
        except ValueError:
            raise invalid(f"{name} is not an RFC 3339 time: {raw[:40]!r}") from None

    def limit(self, default: int, most: int) -> int:
        raw = self.one("limit")
        if raw is None:
            return default
        try:
            limit = int(raw)
        except ValueError:
            raise invalid(f"limit is not an integer: {raw[:20]!r}") from None
        if limit < 0:
            raise invalid("limit must not be negative")
        return min(limit, most) if limit else default

    def cursor(self) -> int | None:
        """Our cursors are the position of the last item handed out; anything else is not
        one of ours."""
        raw = self.one("cursor")
        if raw is None:
            return None
        if not raw.isdigit():
            raise invalid(f"cursor is not valid: {raw[:40]!r}")
        return int(raw)


@dataclass(frozen=True, slots=True)
class Paged(Generic[T]):
    items: list[T]
    has_next: bool
    cursor: str


def newest_first(
    items: Sequence[T], position: Callable[[T], int], limit: int, cursor: int | None
) -> Paged[T]:
    """``items`` (oldest first, ``position`` rising) newest first from after the cursor;
    the cursor names the last item given, so items that arrive meanwhile never shift a
    page (they are newer than any cursor)."""
    found = [item for item in reversed(items) if cursor is None or position(item) < cursor]
    page = found[:limit]
    has_next = len(found) > limit
    return Paged(page, has_next, str(position(page[-1])) if has_next else "")
