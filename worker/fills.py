"""Fetching an account's fills: one sync at a time per account, from a cursor in Redis.

Brokers like Alpaca report fills per account, not per order, so monitors that see a fill
gap ask for a sync; one request brings up to a page of fills for every order at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from brokers.base import FillReport
from models.enums import ReportSource, Side
from worker.context import WorkerContext
from worker.locks import HeldLock
from worker.reports import apply_fills

logger = logging.getLogger(__name__)
UNMATCHED_KEY = "ordersync:stats:fills_unmatched"
# Pages one sync call fetches at most (a task, or a monitor's step): the rest waits for the
# next call, so no task runs unbounded while a busy account keeps producing fills.
MAX_PAGES = 100
LOCK_TTL_S = 60.0


def _key(kind: str, account_id: str) -> str:
    return f"ordersync:fills:{kind}:{account_id}"


@dataclass(frozen=True, slots=True)
class SyncResult:
    recorded: int = 0
    unmatched: int = 0
    pages: int = 0
    skipped: bool = False
    more: bool = False  # stopped at the page cap: the account is still dirty


PARKED_TTL_S = 7 * 86400


def _parked_key(account_id: str, broker_order_id: str) -> str:
    return f"ordersync:fills:parked:{account_id}:{broker_order_id}"


def park(ctx: WorkerContext, account_id: str, fills: list[FillReport]) -> None:
    """Keep fills for orders we don't know by broker id yet (a placement whose answer is
    still being committed, or an order placed elsewhere) instead of dropping them."""
    pipe = ctx.redis.pipeline()
    for fill in fills:
        key = _parked_key(account_id, fill.broker_order_id)
        pipe.hset(key, fill.broker_fill_id, json.dumps(fill_to_json(fill)))
        pipe.expire(key, PARKED_TTL_S)
    pipe.incrby(UNMATCHED_KEY, len(fills))
    pipe.execute()
    logger.info("parked %d fills for orders unknown locally (account %s)", len(fills),
                account_id)  # fmt: skip


def adopt_parked(ctx: WorkerContext, account_id: str, broker_order_id: str) -> int:
    """Apply the fills parked for this broker order id, now that the order is known."""
    key = _parked_key(account_id, broker_order_id)
    parked = ctx.redis.hvals(key)
    if not parked:
        return 0
    fills = [fill_from_json(json.loads(raw)) for raw in parked]
    recorded, strangers = apply_fills(ctx, account_id, fills, ReportSource.MONITOR)
    left = {f.broker_fill_id for f in strangers}
    adopted = [f.broker_fill_id for f in fills if f.broker_fill_id not in left]
    if adopted:  # only what was applied: a fill parked meanwhile stays parked
        ctx.redis.hdel(key, *adopted)
    return recorded


def fill_to_json(fill: FillReport) -> dict[str, str | None]:
    return {
        "broker_fill_id": fill.broker_fill_id, "broker_order_id": fill.broker_order_id,
        "symbol": fill.symbol, "side": fill.side.value, "quantity": str(fill.quantity),
        "price": str(fill.price), "fee": str(fill.fee), "filled_at": fill.filled_at.isoformat(),
        "client_order_id": fill.client_order_id,
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
    )  # fmt: skip


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


def _sync_while_dirty(
    ctx: WorkerContext, account_id: str, lock: HeldLock, budget: int,
    keep_alive: Callable[[], object] | None,
) -> SyncResult:  # fmt: skip
    dirty = _key("dirty", account_id)
    with ctx.sessions() as session:
        try:
            adapter = ctx.adapter(ctx.account(session, id=account_id))
        except LookupError:
            logger.error("fill sync: no account %s", account_id)
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
        while True:
            cursor = ctx.redis.get(_key("cursor", account_id))
            after = None
            if cursor is None:
                after = ctx.now() - timedelta(seconds=ctx.settings.fills_initial_lookback_s)
            page = adapter.list_fills(page_token=str(cursor) if cursor else None, after=after)
            pages += 1
            for item in page.malformed:
                logger.error("unreadable fill from the broker (account %s): %s", account_id,
                             item.reason)  # fmt: skip
            done, strangers = apply_fills(ctx, account_id, page.items, ReportSource.MONITOR)
            recorded += done
            if strangers:
                unmatched += len(strangers)
                park(ctx, account_id, strangers)
            # Past this page even when nothing on it was readable (never re-read it forever).
            cursor_after = page.next_token or (
                adapter.fill_cursor(page.items[-1]) if page.items else None
            )
            if cursor_after:
                ctx.redis.set(_key("cursor", account_id), cursor_after)
            if keep_alive is not None:
                keep_alive()
            if not lock.renew():  # another syncer may hold the account now: it goes on
                return left_for_later()
            if not page.next_token:
                break
            if pages >= budget:
                return left_for_later()
