"""Listing one account's orders and FILL and CFEE activities the way Alpaca pages them.

Orders are indexed by submitted_at (ties by arrival), activities by id, so a window is two
bisections and a page is a short scan from one end; forgotten orders are skipped as met.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Literal

from brokers.alpaca.paper.crypto import fee_date
from brokers.paper.engine import DEFAULT_ACCOUNT, Engine
from brokers.paper.model import Fee, Fill, Order, PaperStatus, eastern_wall, to_us, wall_stamp

OrderStatusFilter = Literal["open", "closed", "all"]
Direction = Literal["asc", "desc"]
_DAY_US = timedelta(days=1) // timedelta(microseconds=1)
_HOUR = timedelta(hours=1)
_HOUR_US = _HOUR // timedelta(microseconds=1)
_MS = timedelta(milliseconds=1)


def _indices(lo: int, hi: int, direction: Direction) -> range:
    return range(lo, hi) if direction == "asc" else range(hi - 1, lo - 1, -1)


def list_orders(
    engine: Engine,
    *,
    account: str = DEFAULT_ACCOUNT,
    status: OrderStatusFilter = "open",
    after_us: int | None = None,
    until_us: int | None = None,
    direction: Direction = "desc",
    limit: int = 50,
    symbols: Collection[str] = (),
    side: str | None = None,
    nested: bool = False,
) -> list[Order]:
    """Orders submitted strictly inside (after, until), by submitted_at; ties are possible
    and come in arrival order (reversed for desc). Every leg is listed as an order of its
    own, unless ``nested``: then legs come only under their parent, and the filters (status
    too) apply to the parent, as Alpaca's do. A ``held`` leg is neither open nor closed: as
    at Alpaca, only ``all`` (or its parent, nested) shows it."""
    engine.advance()
    index = engine.account(account).index
    lo = 0 if after_us is None else bisect_right(index, after_us, key=lambda entry: entry[0])
    hi = len(index) if until_us is None else bisect_left(index, until_us, key=lambda e: e[0])
    found: list[Order] = []
    for position in _indices(lo, hi, direction):
        order = index[position][2]
        if order.forgotten or (status == "open" and not order.is_open):
            continue
        if status != "all" and order.status is PaperStatus.HELD:
            continue
        if nested and order.parent_id is not None:
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
    account: str = DEFAULT_ACCOUNT,
    after_us: int | None = None,
    until_us: int | None = None,
    date: str | None = None,
    direction: Direction = "desc",
    page_size: int = 100,
    page_token: str | None = None,
) -> list[Fill]:
    """Visible FILL activities in id order, transaction_time strictly inside (after, until),
    strictly after ``page_token`` (asc) or before it (desc)."""
    engine.advance()
    owner = engine.account(account)
    ids = owner.activity_ids
    if date is not None:
        day_start = to_us_date(date)
        after_us = day_start - 1 if after_us is None else max(after_us, day_start - 1)
        day_end = day_start + _DAY_US
        until_us = day_end if until_us is None else min(until_us, day_end)
    lo = 0 if after_us is None else bisect_left(ids, _lowest_stamp_after(after_us))
    hi = len(ids) if until_us is None else bisect_left(ids, _stamp_past(until_us))
    if page_token is not None and direction == "asc":
        lo = max(lo, bisect_right(ids, page_token))
    elif page_token is not None:
        hi = min(hi, bisect_left(ids, page_token))
    found: list[Fill] = []
    for position in _indices(lo, hi, direction):
        fill = owner.activities[position]
        if fill.order.forgotten:
            continue
        if (after_us is not None and fill.time_us <= after_us) or (
            until_us is not None and fill.time_us >= until_us
        ):
            continue  # same millisecond as a bound, or a repeated fall-back hour
        found.append(fill)
        if len(found) >= page_size:
            break
    return found


def list_fees(
    engine: Engine,
    *,
    account: str = DEFAULT_ACCOUNT,
    after_us: int | None = None,
    until_us: int | None = None,
    date: str | None = None,
    direction: Direction = "desc",
    page_size: int = 100,
    page_token: str | None = None,
) -> list[Fee]:
    """Posted CFEE activities in id order (their date, then a random uuid), posted strictly
    inside (after, until) and on ``date`` (their own, New York), strictly after
    ``page_token`` (asc) or before it (desc)."""
    engine.advance()
    owner = engine.account(account)
    ids = owner.fee_ids
    lo = 0 if after_us is None else bisect_left(ids, _day_stamp(after_us))
    hi = len(ids) if until_us is None else bisect_left(ids, _day_stamp(until_us + _DAY_US))
    if page_token is not None and direction == "asc":
        lo = max(lo, bisect_right(ids, page_token))
    elif page_token is not None:
        hi = min(hi, bisect_left(ids, page_token))
    found: list[Fee] = []
    for position in _indices(lo, hi, direction):
        fee = owner.fees[position]
        if fee.order.forgotten or (date is not None and fee_date(fee) != date):
            continue
        if (after_us is not None and fee.posted_us <= after_us) or (
            until_us is not None and fee.posted_us >= until_us
        ):
            continue
        found.append(fee)
        if len(found) >= page_size:
            break
    return found


def list_activities(
    engine: Engine,
    *,
    types: Collection[str],
    account: str = DEFAULT_ACCOUNT,
    after_us: int | None = None,
    until_us: int | None = None,
    date: str | None = None,
    direction: Direction = "desc",
    page_size: int = 100,
    page_token: str | None = None,
) -> list[Fill | Fee]:
    """FILL and CFEE activities together (those of ``types``), one id order and one page
    token for both, as ``GET /v2/account/activities`` lists them."""
    found: list[Fill | Fee] = []
    if "FILL" in types:
        found += list_fills(
            engine,
            account=account,
            after_us=after_us,
            until_us=until_us,
            date=date,
            direction=direction,
            page_size=page_size,
            page_token=page_token,
        )
    if "CFEE" in types:
        found += list_fees(
            engine,
            account=account,
            after_us=after_us,
            until_us=until_us,
            date=date,
            direction=direction,
            page_size=page_size,
            page_token=page_token,
        )
    found.sort(key=lambda activity: activity.id, reverse=direction == "desc")
    return found[:page_size]


def _day_stamp(at_us: int) -> str:
    """The id prefix of a CFEE posted on ``at_us``'s New York day: dates never go back."""
    return eastern_wall(at_us).strftime("%Y%m%d") + "000000000"


def _lowest_stamp_after(after_us: int) -> str:
    """No activity after ``after_us`` has an id below this stamp. Eastern wall time only
    rises, except that it steps back an hour when daylight saving ends, so look an hour on."""
    wall = min(eastern_wall(after_us), eastern_wall(after_us + _HOUR_US) - _HOUR)
    return wall_stamp(wall)


def _stamp_past(until_us: int) -> str:
    """Every activity before ``until_us`` has an id below this stamp (see above)."""
    wall = max(eastern_wall(until_us), eastern_wall(until_us - _HOUR_US) + _HOUR)
    return wall_stamp(wall + _MS)


def to_us_date(text: str) -> int:
    """Midnight UTC of a ``YYYY-MM-DD`` date, in microseconds."""
    return to_us(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC))
