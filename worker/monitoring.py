"""The per-order monitor: short, fast polling until the order is terminal and every fill
is recorded, or its window ends (then the sweeps own it).

Each check is one task run that re-enqueues itself with a countdown, so no worker slot is
held while waiting. Redis keeps, per order, the token of the one live *chain* of checks and
its next due time: a new chain supersedes an old one, a duplicate delivery of a finished
step is dropped, and ``revive_overdue`` restarts chains whose worker died.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from brokers.errors import BrokerError, OrderNotFound
from models.enums import ReportSource
from models.orders import Order
from worker.context import WorkerContext
from worker.fills import adopt_parked, sync_now
from worker.locks import HeldLock, order_lock_name, write_order
from worker.reports import apply_in_new_session, record_derived_fill

logger = logging.getLogger(__name__)

DUE_KEY = "ordersync:monitor:due"
SKIPPED_KEY = "ordersync:stats:monitor_lock_skipped"
STEP_TTL_S = 3600


def chain_key(order_id: str) -> str:
    return f"ordersync:monitor:chain:{order_id}"


def step_key(order_id: str, token: str, check: int) -> str:
    return f"ordersync:monitor:step:{order_id}:{token}:{check}"


@dataclass(frozen=True, slots=True)
class Next:
    """What the task does after a check: stop, or check again after ``delay_s``."""

    delay_s: float | None
    reason: str
    same_step: bool = False  # retry this step (it may not have run), not the next one


def delay_for(ctx: WorkerContext, check: int) -> float:
    s = ctx.settings
    return float(min(s.monitor_first_delay_s * s.monitor_backoff**check, s.monitor_max_delay_s))


def start_chain(ctx: WorkerContext, order_id: str) -> str:
    """A new chain for the order; any older chain stops at its next step."""
    token = uuid.uuid4().hex
    ttl = int(ctx.settings.monitor_window_s + 2 * ctx.settings.monitor_revive_overdue_s) + 60
    pipe = ctx.redis.pipeline()
    pipe.set(chain_key(order_id), token, ex=ttl)
    pipe.zadd(DUE_KEY, {order_id: ctx.now().timestamp() + ctx.settings.monitor_first_delay_s})
    pipe.execute()
    return token


def is_current(ctx: WorkerContext, order_id: str, token: str) -> bool:
    return bool(ctx.redis.get(chain_key(order_id)) == token)


def schedule_next(
    ctx: WorkerContext, order_id: str, token: str, check: int, delay_s: float
) -> None:
    pipe = ctx.redis.pipeline()
    pipe.set(step_key(order_id, token, check), 1, ex=STEP_TTL_S)
    pipe.zadd(DUE_KEY, {order_id: ctx.now().timestamp() + delay_s})
    pipe.execute()


def finish_chain(ctx: WorkerContext, order_id: str, token: str, check: int) -> None:
    pipe = ctx.redis.pipeline()
    pipe.set(step_key(order_id, token, check), 1, ex=STEP_TTL_S)
    pipe.zrem(DUE_KEY, order_id)
    pipe.delete(chain_key(order_id))
    pipe.execute()


def overdue_orders(ctx: WorkerContext, limit: int = 1000) -> list[str]:
    cutoff = ctx.now().timestamp() - ctx.settings.monitor_revive_overdue_s
    return [str(m) for m in ctx.redis.zrangebyscore(DUE_KEY, "-inf", cutoff, 0, limit)]


# One round trip: is this chain current, is this step not done yet, and take the order lock.
_STEP_GUARD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if not redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3]) then return 2 end
return 3
"""
SUPERSEDED, DUPLICATE, LOCKED, ACQUIRED = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a step needs to know before deciding whether to ask the broker."""

    account_id: str
    broker_order_id: str | None
    client_order_id: str
    complete: bool  # terminal and every fill recorded
    terminal: bool


def _snapshot(ctx: WorkerContext, order_id: str) -> Snapshot | None:
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None:
            return None
        return Snapshot(order.account_id, order.broker_order_id, order.client_order_id,
                        order.status.is_terminal and not order.fill_gap,
                        order.status.is_terminal)  # fmt: skip


def run_step(ctx: WorkerContext, order_id: str, token: str, check: int) -> Next:
    """One step of a chain: current chain, step not yet done, order lock held."""
    snapshot = _snapshot(ctx, order_id)
    if snapshot is None:
        logger.error("monitor: order %s does not exist", order_id)
        finish_chain(ctx, order_id, token, check)
        return Next(None, "no such order")
    if snapshot.complete:  # e.g. another order's fill sync recorded its fills: nothing to do
        finish_chain(ctx, order_id, token, check)
        return Next(None, "terminal")
    lock = HeldLock(ctx.redis, order_lock_name(order_id), ctx.settings.order_lock_ttl_s)
    guard = ctx.redis.eval(
        _STEP_GUARD, 3, chain_key(order_id), step_key(order_id, token, check), lock.name,
        token, lock.token, int(ctx.settings.order_lock_ttl_s * 1000),
    )  # fmt: skip
    if guard == SUPERSEDED:
        return Next(None, "superseded")
    if guard == DUPLICATE:
        return Next(None, "duplicate delivery")
    if guard == LOCKED:
        ctx.redis.incr(SKIPPED_KEY)
        logger.info("order %s is being checked by another worker; skipping", order_id)
        # Try this same step again: if the holder completes it, the retry is dropped as a
        # duplicate; if the holder was an older chain or died, the step still runs.
        return Next(ctx.settings.monitor_max_delay_s, "locked", same_step=True)
    with lock.adopted():
        outcome = check_order(ctx, order_id, snapshot, check, lock)
        if outcome.delay_s is None:
            finish_chain(ctx, order_id, token, check)
        else:
            schedule_next(ctx, order_id, token, check, outcome.delay_s)
        return outcome


def check_order(
    ctx: WorkerContext, order_id: str, snapshot: Snapshot, check: int,
    lock: HeldLock | None = None,
) -> Next:  # fmt: skip
    """Look at the broker once (when there is something to learn) and apply what it says.

    ``lock`` (the order lock the step holds) is renewed after each broker round trip, so a
    slow broker or a long fill sync never lets it expire while the step still works.
    """
    renew = lock.renew if lock is not None else _no_lock
    if _window_over(ctx, check):
        return Next(None, "window over; the sweeps own it")
    with ctx.sessions() as session:
        adapter = ctx.adapter(ctx.account(session, id=snapshot.account_id))
    if snapshot.terminal and adapter.lists_fills:  # only fills missing: no order lookup
        return _after_fill_sync(ctx, order_id, snapshot.account_id, check, renew)
    try:
        report = (
            adapter.get_order(snapshot.broker_order_id)
            if snapshot.broker_order_id
            else adapter.get_order_by_client_id(snapshot.client_order_id)
        )
    except OrderNotFound as error:
        _note(ctx, order_id, f"not found at the broker (check {check + 1}): {error}")
        return Next(delay_for(ctx, check), "not found")
    except BrokerError as error:
        logger.warning("monitor: order %s: %s", order_id, error)
        _note(ctx, order_id, str(error))
        return Next(delay_for(ctx, check), "broker error")
    finally:
        renew()

    applied = apply_in_new_session(ctx, order_id, report, ReportSource.MONITOR, checked=True)
    if applied is None:
        return Next(None, "no such order")
    state = applied.state
    if state.broker_filled_quantity > state.filled_quantity:
        if adapter.lists_fills:
            return _after_fill_sync(ctx, order_id, snapshot.account_id, check, renew)
        record_derived_fill(ctx, order_id, report, ReportSource.MONITOR)
    if state.status.is_terminal:
        return Next(None, "terminal")
    return Next(delay_for(ctx, check), "polled")


def _window_over(ctx: WorkerContext, check: int) -> bool:
    """Per chain, not per order: a chain a sweep starts for an old order still looks."""
    s = ctx.settings
    if check >= s.monitor_max_checks:
        return True
    age_s = s.monitor_first_delay_s + sum(delay_for(ctx, i) for i in range(check))
    return age_s >= s.monitor_window_s


def _note(ctx: WorkerContext, order_id: str, error: str) -> None:
    """A check that learned nothing still counts (on fresh state: others write the row too)."""

    def note(_: Session, order: Order) -> None:
        order.last_error = error[:2000]
        order.check_count += 1
        order.last_checked_at = ctx.now()

    write_order(ctx.sessions, order_id, note, what="noting a check")


def _no_lock() -> bool:
    """Stands in for a lock's renewal when a step is run without one (nothing to keep)."""
    return True


def _after_fill_sync(
    ctx: WorkerContext, order_id: str, account_id: str, check: int, renew: Callable[[], bool]
) -> Next:
    """Fetch the account's new fills now; done if that completed a terminal order. The
    sync is capped per call: what it leaves, this chain's next step fetches."""
    sync_now(ctx, account_id, keep_alive=renew)
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is not None and order.fill_gap and order.broker_order_id:
            adopt_parked(ctx, account_id, order.broker_order_id)
            session.refresh(order)
        if order is not None and order.status.is_terminal and not order.fill_gap:
            return Next(None, "terminal, fills recorded")
    return Next(delay_for(ctx, check), "waiting for fills")
