"""Listing orders and FILL activities the way Alpaca pages them.

Orders and fills are kept in time order, so a window is two bisections and a page is a
short scan from one end; forgotten orders are skipped as they are met.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Literal

from brokers.paper.engine import Engine
from brokers.paper.model import Fill, Order, to_us

OrderStatusFilter = Literal["open", "closed", "all"]
Direction = Literal["asc", "desc"]
_DAY_US = timedelta(days=1) // timedelta(microseconds=1)


def _window(keys: list[int], after_us: int | None, until_us: int | None) -> tuple[int, int]:
    """Index range of keys strictly inside (after, until)."""
    lo = 0 if after_us is None else bisect_right(keys, after_us)
    hi = len(keys) if until_us is None else bisect_left(keys, until_us)
    return lo, hi


def _indices(lo: int, hi: int, direction: Direction) -> range:
    return range(lo, hi) if direction == "asc" else range(hi - 1, lo - 1, -1)


def list_orders(
    engine: Engine,
    *,
    status: OrderStatusFilter = "open",
    after_us: int | None = None,
    until_us: int | None = None,
    direction: Direction = "desc",
    limit: int = 50,
    symbols: Collection[str] = (),
    side: str | None = None,
) -> list[Order]:
    engine.advance()
    lo, hi = _window(engine.submitted_us, after_us, until_us)
    found: list[Order] = []
    for index in _indices(lo, hi, direction):
        order = engine.orders[index]
        if order.forgotten or (status == "open" and not order.is_open):
            continue
        if status == "closed" and order.is_open:
            continue
        if (symbols and order.symbol not in symbols) or (side and order.side.value != side):
            continue
        found.append(order)
        if len(found) >= limit:
            break
    return found


def list_fills(
    engine: Engine,
    *,
    after_us: int | None = None,
    until_us: int | None = None,
    date: str | None = None,
    direction: Direction = "desc",
    page_size: int = 100,
    page_token: str | None = None,
) -> list[Fill]:
    """FILL activities in the window, strictly after ``page_token`` in ``direction``."""
    engine.advance()
    lo, hi = _window(engine.fill_times_us, after_us, until_us)
    if date is not None:
        day_start = to_us_date(date)
        day_lo, day_hi = _window(engine.fill_times_us, day_start - 1, day_start + _DAY_US)
        lo, hi = max(lo, day_lo), min(hi, day_hi)
    if page_token is not None and direction == "asc":
        lo = max(lo, bisect_right(engine.fill_ids, page_token))
    elif page_token is not None:
        hi = min(hi, bisect_left(engine.fill_ids, page_token))
    found: list[Fill] = []
    for index in _indices(lo, hi, direction):
        fill = engine.fills[index]
        if fill.order.forgotten:
            continue
        found.append(fill)
        if len(found) >= page_size:
            break
    return found


def to_us_date(text: str) -> int:
    """Midnight UTC of a ``YYYY-MM-DD`` date, in microseconds."""
    return to_us(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC))
