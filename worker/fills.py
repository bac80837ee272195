"""Fetching an account's fills: one forward sync at a time per account from a cursor, and
re-reads of one order's own time window when a fill gap stays open.

Brokers like Alpaca report fills per account, not per order, so monitors that see a fill
gap ask for a sync; one request brings up to a page of fills for every order at once. A
forward cursor can step past a fill: Alpaca ids sort by time and a random part, and an
activity may become visible seconds after the order shows the fill, below a cursor that has
moved on. So a gap the forward sync does not close is closed by re-reading the listing over
the gapped order's window, a bounded number of times, then alerted once. What must survive
a Redis loss (the cursor, fills parked for orders not known yet) lives in the database.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from brokers.base import BrokerAdapter
from core.enums import OPEN_STATUSES, ReportSource, Side
from core.reports import FillReport
from models.fill_sync import FillCursor, ParkedFill
from models.orders import Order
from worker.context import WorkerContext
from worker.locks import HeldLock
from worker.reports import apply_fills

logger = logging.getLogger(__name__)
UNMATCHED_KEY = "ordersync:stats:fills_unmatched"
REREADS_KEY = "ordersync:stats:fill_gap_rereads"
# Pages one sync call fetches at most (a task, or a monitor's step): the rest waits for the
# next call, so no task runs unbounded while a busy account keeps producing fills.
MAX_PAGES = 100
LOCK_TTL_S = 60.0
# A re-read window starts this long before the order was created (clock differences).
WINDOW_MARGIN = timedelta(seconds=5)


def _key(kind: str, account_id: str) -> str:
    return f"ordersync:fills:{kind}:{account_id}"


@dataclass(frozen=True, slots=True)
class SyncResult:
    recorded: int = 0
    unmatched: int = 0
    pages: int = 0
    skipped: bool = False
    more: bool = False  # stopped at the page cap: the account is still dirty


# --- what survives Redis: the cursor and parked fills --------------------------------------


def load_cursor(ctx: WorkerContext, account_id: str, symbol: str = "") -> str | None:
    """The account's cursor, or one symbol's where the broker lists fills per symbol."""
    with ctx.sessions() as session:
        row = session.get(FillCursor, (account_id, symbol))
        if row is not None:
            return row.cursor
    if symbol:
        return None
    legacy = ctx.redis.get(_key("cursor", account_id))  # kept in Redis before 0.2
    return str(legacy) if legacy else None


def save_cursor(ctx: WorkerContext, account_id: str, cursor: str, symbol: str = "") -> None:
    with ctx.sessions.begin() as session:
        session.merge(FillCursor(account_id=account_id, symbol=symbol, cursor=cursor,
                                 updated_at=ctx.now()))  # fmt: skip


def fill_streams(ctx: WorkerContext, account_id: str, adapter: BrokerAdapter) -> list[str]:
    """What the forward sync reads, each from its own cursor: '' (the whole account), or for
    a broker that lists fills per symbol, each symbol whose fills may still come: of an
    order open, missing fills, or changed within the initial lookback."""
    if not adapter.lists_by_symbol:
        return [""]
    since = ctx.now() - timedelta(seconds=ctx.settings.fills_initial_lookback_s)
    query = select(Order.symbol).distinct().where(
        Order.account_id == account_id,
        or_(Order.status.in_(OPEN_STATUSES), Order.updated_at >= since,
            Order.broker_filled_quantity > Order.filled_quantity),
    )  # fmt: skip
    with ctx.sessions() as session:
        return sorted(session.scalars(query))


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, object]]) -> None:
    dialect = session.get_bind().dialect.name
    build = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(build(ParkedFill).values(rows).on_conflict_do_nothing())


def park(ctx: WorkerContext, account_id: str, fills: Sequence[FillReport]) -> None:
    """Keep fills for orders we don't know by broker id yet (a placement whose answer is
    still being committed, or an order placed elsewhere) instead of dropping them."""
    if not fills:
        return
    now = ctx.now()
    rows: list[dict[str, object]] = [
        {"account_id": account_id, "broker_order_id": f.broker_order_id,
         "broker_fill_id": f.broker_fill_id, "payload": json.dumps(fill_to_json(f)),
         "parked_at": now}
        for f in fills
    ]  # fmt: skip
    with ctx.sessions.begin() as session:
        _insert_ignoring_duplicates(session, rows)
    ctx.redis.incrby(UNMATCHED_KEY, len(fills))
    logger.info("parked %d fills for orders unknown locally (account %s)", len(fills),
                account_id)  # fmt: skip


def adopt_parked(ctx: WorkerContext, account_id: str, broker_order_id: str) -> int:
    """Apply the fills parked for this broker order id, now that the order is known."""
    _move_legacy_parked(ctx, account_id, broker_order_id)
    with ctx.sessions() as session:
        parked = session.execute(
            select(ParkedFill.id, ParkedFill.payload).where(
                ParkedFill.account_id == account_id,
                ParkedFill.broker_order_id == broker_order_id,
            )
        ).all()
    if not parked:
        return 0
    fills = [fill_from_json(json.loads(payload)) for _, payload in parked]
    recorded, strangers = apply_fills(ctx, account_id, fills, ReportSource.MONITOR)
    left = {f.broker_fill_id for f in strangers}
    adopted = [row_id for (row_id, _), f in zip(parked, fills, strict=True)
               if f.broker_fill_id not in left]  # fmt: skip
    if adopted:  # only what was applied: a fill parked meanwhile stays parked
        with ctx.sessions.begin() as session:
            session.execute(delete(ParkedFill).where(ParkedFill.id.in_(adopted)))
    return recorded


def _move_legacy_parked(ctx: WorkerContext, account_id: str, broker_order_id: str) -> None:
    """Fills parked in Redis by an earlier version move to the table, then go from Redis."""
    key = f"ordersync:fills:parked:{account_id}:{broker_order_id}"
    raw = ctx.redis.hvals(key)
    if raw:
        park(ctx, account_id, [fill_from_json(json.loads(item)) for item in raw])
        ctx.redis.delete(key)


def fill_to_json(fill: FillReport) -> dict[str, str | None]:
    return {
        "broker_fill_id": fill.broker_fill_id, "broker_order_id": fill.broker_order_id,
        "symbol": fill.symbol, "side": fill.side.value, "quantity": str(fill.quantity),
        "price": str(fill.price), "fee": str(fill.fee), "filled_at": fill.filled_at.isoformat(),
        "client_order_id": fill.client_order_id,
        "cum_quantity": None if fill.cum_quantity is None else str(fill.cum_quantity),
    }  # fmt: skip


def fill_from_json(data: dict[str, str | None]) -> FillReport:
    def text(name: str) -> str:
        value = data[name]
        assert value is not None
        return value

    return FillReport(
        broker_fill_id=text("broker_fill_id"), broker_order_id=text("broker_order_id"),
        symbol=text("symbol"), side=Side(text("side")), quantity=Decimal(text("quantity")),
        price=Decimal(text("price")), fee=Decimal(text("fee")),
        filled_at=datetime.fromisoformat(text("filled_at")),
        client_order_id=data.get("client_order_id"),
        cum_quantity=None if data.get("cum_quantity") is None else Decimal(text("cum_quantity")),
    )  # fmt: skip


# --- the forward sync ----------------------------------------------------------------------


def sync_now(
    ctx: WorkerContext, account_id: str, *, keep_alive: Callable[[], object] | None = None
) -> SyncResult:
    """Mark the account dirty and sync it here, unless another worker is syncing it (that
    one sees the mark: it re-checks after releasing its lock, so no request is lost).

    ``keep_alive`` is called after every page: a caller holding a lock of its own (the
    monitor's order lock) renews it there, however long the sync takes.
    """
    ctx.redis.set(_key("dirty", account_id), 1)
    return sync_fills(ctx, account_id, keep_alive=keep_alive)


def sync_fills(
    ctx: WorkerContext,
    account_id: str,
    *,
    keep_alive: Callable[[], object] | None = None,
    max_pages: int | None = None,
) -> SyncResult:
    """Fetch every fill after the cursor, apply it, move the cursor; repeat while dirty.

    At most ``max_pages`` (default ``MAX_PAGES``) pages per call, so one task never runs
    unbounded while fills keep coming: past the cap the account stays dirty and the result
    says ``more``; the next sync (the task re-enqueued, the monitor's next step) goes on.
    """
    budget = MAX_PAGES if max_pages is None else max_pages
    total = SyncResult(skipped=True)
    while True:
        lock = HeldLock(ctx.redis, _key("lock", account_id), ttl_s=LOCK_TTL_S)
        with lock as held:
            if not held:
                return total  # the holder will see the dirty mark
            result = _sync_while_dirty(ctx, account_id, lock, budget - total.pages, keep_alive)
            total = SyncResult(
                total.recorded + result.recorded,
                total.unmatched + result.unmatched,
                total.pages + result.pages,
                more=result.more,
            )
        if total.more or not ctx.redis.exists(_key("dirty", account_id)):
            return total


def _adapter(ctx: WorkerContext, account_id: str) -> BrokerAdapter | None:
    with ctx.sessions() as session:
        try:
            return ctx.adapter(ctx.account(session, id=account_id))
        except LookupError:
            logger.error("fill sync: no account %s", account_id)
            return None


def _apply_page(ctx: WorkerContext, account_id: str, items: Sequence[FillReport],
                malformed: int) -> tuple[int, int]:  # fmt: skip
    """Apply one page; fills of orders not known yet are parked. (recorded, parked)"""
    if malformed:
        logger.error("%d unreadable fills from the broker (account %s)", malformed, account_id)
    done, strangers = apply_fills(ctx, account_id, items, ReportSource.MONITOR)
    park(ctx, account_id, strangers)
    return done, len(strangers)


def _sync_while_dirty(
    ctx: WorkerContext, account_id: str, lock: HeldLock, budget: int,
    keep_alive: Callable[[], object] | None,
) -> SyncResult:  # fmt: skip
    dirty = _key("dirty", account_id)
    adapter = _adapter(ctx, account_id)
    if adapter is None:
        return SyncResult()
    recorded = unmatched = pages = 0

    def left_for_later() -> SyncResult:
        """Stop here but keep the request, so the next sync fetches what this one left."""
        ctx.redis.set(dirty, 1)  # what this call did not fetch is the next sync's
        logger.info("fill sync of account %s stops after %d pages; more is left for the "
                    "next sync", account_id, pages)  # fmt: skip
        return SyncResult(recorded=recorded, unmatched=unmatched, pages=pages, more=True)

    # The budget is checked before the mark is taken: a request is never consumed unserved.
    while True:
        if pages >= budget and ctx.redis.exists(dirty):
            return left_for_later()
        if pages >= budget or not ctx.redis.delete(dirty):
            return SyncResult(recorded=recorded, unmatched=unmatched, pages=pages)
        for symbol in fill_streams(ctx, account_id, adapter):
            cursor = load_cursor(ctx, account_id, symbol)
            while True:
                after = None
                if cursor is None:
                    after = ctx.now() - timedelta(seconds=ctx.settings.fills_initial_lookback_s)
                try:
                    page = adapter.list_fills(page_token=cursor, after=after,
                                              symbols=(symbol,) if symbol else ())  # fmt: skip
                except BaseException:
                    ctx.redis.set(dirty, 1)  # the request stays for the next sync
                    raise
                pages += 1
                done, parked = _apply_page(ctx, account_id, page.items, len(page.malformed))
                recorded += done
                unmatched += parked
                # Past this page even when nothing on it was readable (never re-read forever).
                cursor_after = page.next_token or (
                    adapter.fill_cursor(page.items[-1]) if page.items else None
                )
                if cursor_after:
                    save_cursor(ctx, account_id, cursor_after, symbol)
                    cursor = cursor_after
                if keep_alive is not None:
                    try:
                        keep_alive()
                    except BaseException:  # the caller stops (its lock lost): keep the request
                        ctx.redis.set(dirty, 1)
                        raise
                if not lock.renew():  # another syncer may hold the account now: it goes on
                    return left_for_later()
                if not page.next_token:
                    break
                if pages >= budget:
                    return left_for_later()


# --- closing a gap the forward sync left ---------------------------------------------------


def reread_window(
    ctx: WorkerContext, account_id: str, after: datetime, until: datetime | None,
    *, max_pages: int = MAX_PAGES, keep_alive: Callable[[], object] | None = None,
    symbols: Sequence[str] = (),
) -> SyncResult:  # fmt: skip
    """Every fill of the account in (after, until), applied again (recorded ones dedupe),
    whatever the forward cursor says; what it cannot match is parked."""
    adapter = _adapter(ctx, account_id)
    if adapter is None:
        return SyncResult()
    recorded = unmatched = pages = 0
    token: str | None = None
    ctx.redis.incr(REREADS_KEY)
    while pages < max_pages:
        page = adapter.list_fills(after=after if token is None else None, until=until,
                                  page_token=token, symbols=symbols)  # fmt: skip
        pages += 1
        done, parked = _apply_page(ctx, account_id, page.items, len(page.malformed))
        recorded += done
        unmatched += parked
        if keep_alive is not None:
            keep_alive()
        token = page.next_token
        if token is None:
            return SyncResult(recorded=recorded, unmatched=unmatched, pages=pages)
    return SyncResult(recorded=recorded, unmatched=unmatched, pages=pages, more=True)


def gap_key(order_id: str) -> str:
    return f"ordersync:fills:gap:{order_id}"


@dataclass(frozen=True, slots=True)
class GapState:
    """How often the order's gap was re-read, when it may be again, and whether it was
    given up (alerted). Kept in Redis: losing it only restarts the count."""

    rereads: int = 0
    next_at: float = 0.0
    alerted: bool = False


def gap_state(ctx: WorkerContext, order_id: str) -> GapState:
    raw = ctx.redis.hgetall(gap_key(order_id))
    if not raw:
        return GapState()
    return GapState(int(raw.get("rereads", 0)), float(raw.get("next_at", 0)),
                    raw.get("alerted") == "1")  # fmt: skip


def note_reread(ctx: WorkerContext, order_id: str, state: GapState, *, alerted: bool) -> GapState:
    s = ctx.settings
    delay = s.fill_gap_reread_delay_s * 2**state.rereads
    new = GapState(state.rereads + 1, ctx.now().timestamp() + delay, alerted or state.alerted)
    key = gap_key(order_id)
    pipe = ctx.redis.pipeline()
    pipe.hset(key, mapping={"rereads": new.rereads, "next_at": new.next_at,
                            "alerted": "1" if new.alerted else "0"})  # fmt: skip
    pipe.expire(key, 7 * 86400)
    pipe.execute()
    return new
