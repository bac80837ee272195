"""Where a per-symbol listing continues: which symbol, which window of at most 24 h (the
longest allOrders and myTrades accept), and the last id read in it.

A window is first read by time (startTime, endTime); a full page continues by id alone
(allOrders' ``orderId``, myTrades' ``fromId``: Binance refuses either with a time range on
myTrades), keeping what falls in the window; the rest is read with the next window. Ids
grow with time within a symbol, so this reads every item once. The token is opaque.

Assumed, not documented: a full page for a time range holds its oldest items (Binance's
"otherwise most recent orders are returned" is read as applying without a range).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, replace

WINDOW_MS = 24 * 60 * 60 * 1000
_VERSION = 1


@dataclass(frozen=True, slots=True)
class Cursor:
    """``symbol`` is listed in [start_ms, end_ms], one window at a time from ``window_ms``,
    past id ``last_id`` when set. Bounds are inclusive milliseconds; None start or end are
    taken from the call (a ``fill_cursor`` token knows neither, and a listing without an
    end keeps none, so its tokens read up to the time they are used)."""

    symbol: str
    start_ms: int | None
    end_ms: int | None
    window_ms: int
    last_id: int | None = None

    def window_end(self, end_ms: int) -> int:
        return min(self.window_ms + WINDOW_MS - 1, end_ms)

    def next_window(self, end_ms: int) -> Cursor | None:
        """The window after this one, or None when this one reaches ``end_ms``."""
        following = self.window_end(end_ms) + 1
        if following > end_ms:
            return None
        return replace(self, window_ms=following, last_id=None)


def encode(cursor: Cursor) -> str:
    body = [_VERSION, cursor.symbol, cursor.start_ms, cursor.end_ms, cursor.window_ms,
            cursor.last_id]  # fmt: skip
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


def decode(token: str) -> Cursor:
    """A token from ``encode``; anything else is a ValueError (not the broker's fault)."""
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise ValueError(f"not a Binance page token: {token!r}") from None
    if (
        not isinstance(body, list)
        or len(body) != 6
        or body[0] != _VERSION
        or not isinstance(body[1], str)
        or not all(v is None or isinstance(v, int) for v in body[2:])
        or body[4] is None
    ):
        raise ValueError(f"not a Binance page token: {token!r}")
    return Cursor(body[1], body[2], body[3], body[4], body[5])
