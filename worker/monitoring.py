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
from dataclasses import dataclass
from datetime import datetime

from brokers.errors import BrokerError, OrderNotFound
from models.enums import ReportSource
from models.orders import Account, Order
from worker.context import WorkerContext
from worker.fills import sync_now
from worker.locks import HeldLock, order_lock_name
from worker.reports import apply_in_new_session

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


def run_step(ctx: WorkerContext, order_id: str, token: str, check: int) -> Next:
    """One step of a chain, guarded: current chain, not yet done, order lock held."""
    if not is_current(ctx, order_id, token):
        return Next(None, "superseded")
    with HeldLock(ctx.redis, order_lock_name(order_id), ctx.settings.order_lock_ttl_s) as held:
        if not held:
            ctx.redis.incr(SKIPPED_KEY)
            logger.info("order %s is being checked by another worker; skipping", order_id)
            return Next(None, "locked")
        if ctx.redis.exists(step_key(order_id, token, check)):
            return Next(None, "duplicate delivery")
        outcome = check_order(ctx, order_id, check)
        if outcome.delay_s is None:
            finish_chain(ctx, order_id, token, check)
        else:
            schedule_next(ctx, order_id, token, check, outcome.delay_s)
        return outcome


def check_order(ctx: WorkerContext, order_id: str, check: int) -> Next:
    """Look at the broker once (when there is something to learn) and apply what it says."""
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None:
            logger.error("monitor: order %s does not exist", order_id)
            return Next(None, "no such order")
        account = session.get(Account, order.account_id)
        assert account is not None
        adapter = ctx.adapter(account)
        terminal, gap = order.status.is_terminal, order.fill_gap > 0
        broker_order_id, client_order_id = order.broker_order_id, order.client_order_id
        created_at, checks = order.created_at, order.check_count
        account_id = account.id

    if terminal and not gap:
        return Next(None, "terminal")
    if _window_over(ctx, created_at, checks):
        return Next(None, "window over; the sweeps own it")
    if terminal:  # the status is final; only fills are missing: no order lookup needed
        return _after_fill_sync(ctx, order_id, account_id, check)

    try:
        report = (
            adapter.get_order(broker_order_id)
            if broker_order_id
            else adapter.get_order_by_client_id(client_order_id)
        )
    except OrderNotFound as error:
        _note(ctx, order_id, f"not found at the broker (check {check + 1}): {error}")
        return Next(delay_for(ctx, check), "not found")
    except BrokerError as error:
        logger.warning("monitor: order %s: %s", order_id, error)
        _note(ctx, order_id, str(error))
        return Next(delay_for(ctx, check), "broker error")

    applied = apply_in_new_session(ctx, order_id, report, ReportSource.MONITOR, checked=True)
    if applied is None:
        return Next(None, "no such order")
    state = applied.state
    if state.broker_filled_quantity > state.filled_quantity:
        return _after_fill_sync(ctx, order_id, account_id, check)
    if state.status.is_terminal:
        return Next(None, "terminal")
    return Next(delay_for(ctx, check), "polled")


def _after_fill_sync(ctx: WorkerContext, order_id: str, account_id: str, check: int) -> Next:
    """Fetch the account's new fills now; done if that completed a terminal order."""
    sync_now(ctx, account_id)
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is not None and order.status.is_terminal and not order.fill_gap:
            return Next(None, "terminal, fills recorded")
    return Next(delay_for(ctx, check), "waiting for fills")


def _window_over(ctx: WorkerContext, created_at: datetime, checks: int) -> bool:
    age_s = (ctx.now() - created_at).total_seconds()
    return age_s >= ctx.settings.monitor_window_s or checks >= ctx.settings.monitor_max_checks


def _note(ctx: WorkerContext, order_id: str, error: str) -> None:
    with ctx.sessions.begin() as session:
        order = session.get(Order, order_id)
        if order is not None:
            order.last_error = error[:2000]
            order.check_count += 1
            order.last_checked_at = ctx.now()
