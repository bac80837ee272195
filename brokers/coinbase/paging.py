"""Oldest-first pages over Coinbase lists that only come newest first.

Coinbase lists orders and fills newest first (``sort_by`` offers only LIMIT_PRICE /
LAST_FILL_TIME for orders and PRICE / TRADE_TIME for fills, no direction [U]) and pages
with an opaque cursor. ordersync wants oldest first, one page per call, and a fill cursor
that continues right after a given fill. So each call reads every Coinbase page of the
remaining window, orders the items by (time, id) and returns the first ``page_size``. The
token holds the (time, id) of the last item returned, so ties at one timestamp are neither
skipped nor repeated, and the caller's ``until``. Re-reading from the boundary costs
requests on long windows; the page count is bounded (``WindowTooLarge``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from brokers.coinbase.values import ParseError, obj, rfc3339, text, when

TOKEN_VERSION = 1
# Coinbase's start_date may be exclusive [U]: query a little before the boundary and drop
# what is older locally, so an item exactly at the boundary is never lost.
BOUNDARY_MARGIN = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a walk stands: every item up to (``at``, ``item_id``) in (time, id) order was
    returned. ``until`` is the caller's end of the window, kept for the pages after."""

    at: datetime
    item_id: str
    until: datetime | None = None


def encode(position: Position) -> str:
    data = {
        "v": TOKEN_VERSION,
        "at": rfc3339(position.at),
        "id": position.item_id,
        "until": None if position.until is None else rfc3339(position.until),
    }
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def decode(token: str) -> Position:
    """A token from ``encode``; anything else is a ValueError (the caller's mistake)."""
    try:
        data = obj(json.loads(base64.urlsafe_b64decode(token.encode())), "token")
        if data.get("v") != TOKEN_VERSION:
            raise ValueError(f"page token version {data.get('v')!r} is not {TOKEN_VERSION}")
        until = None if data.get("until") is None else when(data, "until")
        return Position(at=when(data, "at"), item_id=text(data, "id"), until=until)
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, ParseError) as exc:
        raise ValueError(f"not a Coinbase page token: {exc}") from None


@dataclass(frozen=True, slots=True)
class Keyed:
    """A raw item with the time and id it is ordered by."""

    at: datetime
    item_id: str
    raw: object


def key_items(
    raw_items: Iterable[object], time_key: str, id_key: str
) -> tuple[list[Keyed], list[object]]:
    """Items that can be placed in time order, and those that cannot (reported malformed)."""
    keyed: list[Keyed] = []
    loose: list[object] = []
    for raw in raw_items:
        try:
            data = obj(raw, "item")
            keyed.append(Keyed(when(data, time_key), text(data, id_key), raw))
        except ParseError:
            loose.append(raw)
    return keyed, loose


def oldest_first(
    keyed: list[Keyed], start: Position | None, limit: int, until: datetime | None
) -> tuple[list[Keyed], Position | None]:
    """The next ``limit`` items after ``start`` in (time, id) order (each id once), and the
    position after them when more remain."""
    unique = {k.item_id: k for k in keyed}.values()  # a cursor may hand an item twice
    fresh = sorted(
        (k for k in unique if start is None or (k.at, k.item_id) > (start.at, start.item_id)),
        key=lambda k: (k.at, k.item_id),
    )
    page = fresh[:limit]
    if len(fresh) <= limit:
        return page, None
    return page, Position(page[-1].at, page[-1].item_id, until)


def walk(
    fetch: Callable[[str | None], tuple[list[object], str | None]], max_pages: int, what: str
) -> list[object]:
    """Every item of a cursor-paged Coinbase list, at most ``max_pages`` pages."""
    items: list[object] = []
    cursor: str | None = None
    for _ in range(max_pages):
        page, cursor = fetch(cursor)
        items.extend(page)
        if cursor is None:
            return items
    raise WindowTooLarge(f"{what}: more than {max_pages} pages; list a narrower window")


class WindowTooLarge(Exception):
    """More items in the window than one call reads; the caller narrows the window."""
