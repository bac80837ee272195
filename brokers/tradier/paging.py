"""Oldest-first pages over Tradier's order list, which pages by page number in an order
it does not document [U].

Each ``list_orders`` call reads every Tradier page of the window (bounded), orders the
orders by (``create_date``, numeric ``id``) and returns the first ``page_size`` after the
token's position. The token holds that position and the caller's window, so the pages
after the first ask Tradier the same question; ties at one timestamp are neither skipped
nor repeated. An order created exactly at ``after`` is kept: listed twice rather than lost.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from brokers.tradier.parse import created_key
from brokers.values import ParseError, as_object, rfc3339, to_datetime

TOKEN_VERSION = 1


@dataclass(frozen=True, slots=True)
class Cursor:
    """Every order up to (``at``, ``order_id``) was returned, of the window (after, until)."""

    at: datetime
    order_id: int
    after: datetime | None
    until: datetime | None


def encode(cursor: Cursor) -> str:
    data = {
        "v": TOKEN_VERSION,
        "at": rfc3339(cursor.at),
        "id": cursor.order_id,
        "after": None if cursor.after is None else rfc3339(cursor.after),
        "until": None if cursor.until is None else rfc3339(cursor.until),
    }
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def decode(token: str) -> Cursor:
    """A token from ``encode``; anything else is a ValueError (the caller's mistake)."""
    try:
        data = as_object(json.loads(base64.urlsafe_b64decode(token.encode())), "token")
        if data.get("v") != TOKEN_VERSION:
            raise ValueError(f"version {data.get('v')!r} is not {TOKEN_VERSION}")
        order_id = data.get("id")
        if not isinstance(order_id, int) or isinstance(order_id, bool):
            raise ValueError(f"id {order_id!r} is not a number")
        after, until = data.get("after"), data.get("until")
        return Cursor(
            at=to_datetime(data.get("at"), "at"),
            order_id=order_id,
            after=None if after is None else to_datetime(after, "after"),
            until=None if until is None else to_datetime(until, "until"),
        )
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, ParseError,
            ValueError) as exc:  # fmt: skip
        raise ValueError(f"not a Tradier list_orders page token ({exc})") from None


@dataclass(frozen=True, slots=True)
class Selection:
    chosen: list[object]  # raw orders of this page, oldest first
    unordered: list[object]  # raw orders without a readable create_date and id
    next_cursor: tuple[datetime, int] | None  # where the next page starts, if one remains


def select(
    raw_items: Sequence[object], *, after: datetime | None, until: datetime | None,
    start: tuple[datetime, int] | None, limit: int,
) -> Selection:  # fmt: skip
    """The next ``limit`` orders of the window after ``start``, each id once."""
    keyed: dict[int, tuple[tuple[datetime, int], object]] = {}
    unordered: list[object] = []
    for raw in raw_items:
        key = created_key(raw)
        if key is None:
            unordered.append(raw)
        elif key[1] not in keyed:
            keyed[key[1]] = (key, raw)
    fresh = sorted(
        (
            (key, raw)
            for key, raw in keyed.values()
            if (after is None or key[0] >= after)
            and (until is None or key[0] <= until)
            and (start is None or key > start)
        ),
        key=lambda pair: pair[0],
    )
    page = fresh[:limit]
    more = len(fresh) > limit
    return Selection(
        chosen=[raw for _, raw in page],
        unordered=unordered if start is None else [],  # reported once, on the first page
        next_cursor=page[-1][0] if more else None,
    )
