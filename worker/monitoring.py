"""The per-order monitor: short, fast polling until the order is terminal and every fill
is recorded, or its window ends (then the sweeps own it).

Each check is one task run that re-enqueues itself with a countdown, so no worker slot is
held while waiting. ``worker.chains`` keeps, per order, the one live chain of checks: a new
chain supersedes an old one, a duplicate delivery of a finished step is dropped, and
``revive_monitors`` restarts chains whose worker died. A step holds the order's lock and
stops as soon as it loses it; it sends no request after half the lock's life, so it can
never outlast it. A write-ahead row whose placement task died is taken over here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from brokers.errors import BrokerError, OrderNotFound
from core.enums import OPEN_STATUSES, OrderClass, OrderStatus, OrderType, ReportSource
from models.orders import Fill, Order
from worker import chains, placement, replacements
from worker.budget import send_by
from worker.context import WorkerContext
from worker.fills import gap_state, sync_now
from worker.gaps import Gap, close_gap
from worker.legs import register_legs
from worker.locks import HeldLock, break_if_holder_dead, order_lock_name, write_order
from worker.placement import Step
from worker.reports import apply_in_new_session, record_derived_fill
from worker.stream_health import is_healthy, suspect

logger = logging.getLogger(__name__)

SKIPPED_KEY = "ordersync:stats:monitor_lock_skipped"
LOCK_LOST_KEY = "ordersync:stats:monitor_lock_lost"
# A step that finds its order locked (a placement under way, another check) looks again
# this soon at the earliest.
LOCKED_RETRY_S = 0.5
start_chain = chains.start_chain


class LockLost(RuntimeError):
    """The step's order lock expired or was taken: the step stops where it is."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"order {order_id}: the monitor step lost its lock")


@dataclass(frozen=True, slots=True)
class Next:
    """What the task does after a check: stop, or check again after ``delay_s``."""

    delay_s: float | None
    reason: str
    same_step: bool = False  # retry this step (it may not have run), not the next one
    watch: tuple[str, ...] = ()  # other orders to watch now (the one that replaced this)


def delay_for(ctx: WorkerContext, check: int) -> float:
    s = ctx.settings
    return float(min(s.monitor_first_delay_s * s.monitor_backoff**check, s.monitor_max_delay_s))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a step needs to know before deciding whether to ask the broker."""

    account_id: str
    broker_order_id: str | None
    client_order_id: str
    symbol: str
    complete: bool  # terminal and every fill recorded
    terminal: bool
    awaiting: bool = False  # a write-ahead row: the placement is not settled
    immediate: bool = False  # a market, IOC or FOK order: it settles within moments
    news_at: datetime | None = None  # the broker's last report of it was applied then
    # Replaced by an order not linked yet, or with legs not recorded yet: keep looking.
    unfollowed: bool = False


def _snapshot(ctx: WorkerContext, order_id: str) -> Snapshot | None:
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None:
            return None
        immediate = (order.order_type is OrderType.MARKET
                     or order.time_in_force in placement.IMMEDIATE_TIFS)  # fmt: skip
        unfollowed = order.status is OrderStatus.REPLACED and order.replaced_by_id is None
        # An order with exit legs none of which is recorded (its placement's answer lost):
        # looked up, not settled from fills alone, until its report names them.
        unfollowed = unfollowed or (
            order.order_class is not OrderClass.SIMPLE and order.parent_id is None
            and order.broker_order_id is not None
            and session.scalar(select(Order.id).where(Order.parent_id == order.id).limit(1))
            is None
        )  # fmt: skip
        return Snapshot(order.account_id, order.broker_order_id, order.client_order_id,
                        order.symbol,
                        order.status.is_terminal and not order.fill_gap and not unfollowed,
                        order.status.is_terminal, placement.awaiting_broker(order),
                        immediate, order.last_report_at or order.created_at,
                        unfollowed)  # fmt: skip


def run_step(ctx: WorkerContext, order_id: str, token: str, check: int) -> Next:
    """One step of a chain; the order's open exit legs are watched beside it (the broker
    made them: nothing else starts their monitors)."""
    outcome = _step(ctx, order_id, token, check)
    if outcome.delay_s is not None:
        return outcome  # held until the parent ends: the legs' watch starts when its does
    try:
        legs = open_legs(ctx, order_id)
    except Exception:  # the chain ended already; the sweeps still see the legs
        logger.exception("monitor: order %s: its legs could not be read", order_id)
        return outcome
    return dataclasses.replace(outcome, watch=(*outcome.watch, *legs)) if legs else outcome


def open_legs(ctx: WorkerContext, order_id: str) -> tuple[str, ...]:
    with ctx.sessions() as session:
        found = session.scalars(select(Order.id).where(
            Order.parent_id == order_id, Order.status.in_(OPEN_STATUSES)))  # fmt: skip
        return tuple(found)


def _step(ctx: WorkerContext, order_id: str, token: str, check: int) -> Next:
    """One step of a chain: current chain, step not yet done, order lock held."""
    snapshot = _snapshot(ctx, order_id)
    if snapshot is None:
        logger.error("monitor: order %s does not exist", order_id)
        chains.step_done(ctx, order_id, token, check, None)
        return Next(None, "no such order")
    if snapshot.complete:  # e.g. another order's fill sync recorded its fills: nothing to do
        chains.step_done(ctx, order_id, token, check, None)
        return Next(None, "terminal")
    lock = HeldLock(ctx.redis, order_lock_name(order_id), ctx.settings.order_lock_ttl_s)
    guard = chains.guard_step(ctx, order_id, token, check, lock.name, lock.token)
    if guard == chains.LOCKED and break_if_holder_dead(ctx.redis, lock.name):
        # The holder's process is gone (a killed worker): the order is free at once.
        guard = chains.guard_step(ctx, order_id, token, check, lock.name, lock.token)
    if guard == chains.SUPERSEDED:
        return Next(None, "superseded")
    if guard == chains.DUPLICATE:
        return Next(None, "duplicate delivery")
    if guard == chains.LOCKED:
        ctx.redis.incr(SKIPPED_KEY)
        logger.info("order %s is being checked by another worker; skipping", order_id)
        # Try this same step again: if the holder completes it, the retry is dropped as a
        # duplicate; if the holder was an older chain or died, the step still runs.
        return Next(max(delay_for(ctx, check), LOCKED_RETRY_S), "locked", same_step=True)
    with lock.adopted():
        try:
            outcome = check_order(ctx, order_id, snapshot, check, lock)
        except LockLost:
            ctx.redis.incr(LOCK_LOST_KEY)
            logger.warning("monitor: order %s: lost its lock mid-step; the step runs again",
                           order_id)  # fmt: skip
            return Next(delay_for(ctx, check), "lock lost", same_step=True)
        chains.step_done(ctx, order_id, token, check, outcome.delay_s)
        return outcome


def check_order(
    ctx: WorkerContext, order_id: str, snapshot: Snapshot, check: int,
    lock: HeldLock | None = None,
) -> Next:  # fmt: skip
    """Look at the broker once (when there is something to learn) and apply what it says.

    ``lock`` (the order lock the step holds) is renewed after each broker round trip; once
    it is lost the step stops (``LockLost``). No request goes out after half its life.
    """

    def renew() -> None:
        if lock is not None and not lock.renew():
            raise LockLost(order_id)

    if _window_over(ctx, check):
        return Next(None, "window over; the sweeps own it")
    if snapshot.awaiting:
        return _placing(ctx, order_id, check, lock)
    streaming = not snapshot.terminal and is_healthy(ctx.redis, snapshot.account_id)
    if streaming and (quiet := _stream_quiet_s(ctx, snapshot)) is not None:
        return Next(quiet, "stream healthy")
    bound = ctx.now() + timedelta(seconds=ctx.settings.order_lock_ttl_s / 2)
    with send_by(bound):
        return _check(ctx, order_id, snapshot, check, renew, streaming)


def _check(ctx: WorkerContext, order_id: str, snapshot: Snapshot, check: int,
           renew: Callable[[], None], streaming: bool = False) -> Next:  # fmt: skip
    with ctx.sessions() as session:
        adapter = ctx.adapter(ctx.account(session, id=snapshot.account_id))
    if snapshot.terminal and adapter.lists_fills and not snapshot.unfollowed:
        # only fills missing: no order lookup
        return _after_fill_sync(ctx, order_id, snapshot.account_id, check, renew)
    if adapter.lists_fills and _fills_first(ctx, snapshot, check):
        return _shared_check(ctx, order_id, snapshot.account_id, check, renew, streaming)
    try:
        report = (
            adapter.get_order(snapshot.broker_order_id)
            if snapshot.broker_order_id
            else adapter.get_order_by_client_id(snapshot.client_order_id, symbol=snapshot.symbol)
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
    if streaming and (applied.history or applied.new_fills) and _long_ago(ctx, report.updated_at):
        suspect(ctx.redis, snapshot.account_id,
                f"order {order_id} was {report.raw_status!r} at the broker before the stream "
                "said so")  # fmt: skip
    state = applied.state
    # Legs the broker made that we have no row for yet (a placement answer that was lost):
    # registered here, and watched by run_step.
    register_legs(ctx, order_id, report, ReportSource.MONITOR)
    watch: tuple[str, ...] = ()
    if state.status is OrderStatus.REPLACED and report.replaced_by:
        # The order lives on as its replacement: that one is watched from now on.
        successor = replacements.follow(ctx, order_id, report.replaced_by, ReportSource.MONITOR)
        if successor is None:
            return Next(delay_for(ctx, check), "replacement not readable yet")
        watch = (successor,)
    if state.broker_filled_quantity > state.filled_quantity:
        if adapter.lists_fills:
            synced = _after_fill_sync(ctx, order_id, snapshot.account_id, check, renew)
            return dataclasses.replace(synced, watch=watch)
        record_derived_fill(ctx, order_id, report, ReportSource.MONITOR)
    if state.status.is_terminal:
        return Next(None, "terminal", watch=watch)
    return Next(delay_for(ctx, check), "polled")


def _long_ago(ctx: WorkerContext, at: datetime | None) -> bool:
    """Longer ago than the stream may take to tell, half ``stream_stall_s`` (a poll racing
    an event in flight is no sign of a stall)."""
    patience_s = ctx.settings.stream_stall_s / 2
    return at is not None and (ctx.now() - at).total_seconds() >= patience_s


def _listed_first(ctx: WorkerContext, order_id: str) -> bool:
    """An execution of the order recorded from the listing long after it happened."""
    with ctx.sessions() as session:
        found = session.execute(
            select(Fill.filled_at, Fill.recorded_at).where(
                Fill.order_id == order_id, Fill.source != ReportSource.STREAM)
        ).all()  # fmt: skip
    patience = timedelta(seconds=ctx.settings.stream_stall_s / 2)
    return any(recorded - filled >= patience for filled, recorded in found)


def _stream_quiet_s(ctx: WorkerContext, snapshot: Snapshot) -> float | None:
    """While the account's stream is healthy its updates are the order's news: ask the
    broker only once the order has had none for a while (a safety check), so a stream-fed
    order costs no request. How long to wait still; None when the check should ask now."""
    s = ctx.settings
    patience_s = s.stream_stall_s if snapshot.immediate else s.stream_safety_check_s
    quiet_s = 0.0 if snapshot.news_at is None else (ctx.now() - snapshot.news_at).total_seconds()
    wait_s = patience_s - quiet_s
    return wait_s if wait_s > 0 else None


def _fills_first(ctx: WorkerContext, snapshot: Snapshot, check: int) -> bool:
    """A market or immediate order settles through its fills: read the account's fill
    listing (one request for all its orders) before looking the order up on its own."""
    s = ctx.settings
    return s.monitor_shared_checks and snapshot.immediate and check < s.monitor_fill_first_checks


def _shared_check(ctx: WorkerContext, order_id: str, account_id: str, check: int,
                  renew: Callable[[], None], streaming: bool = False) -> Next:  # fmt: skip
    """The account's new fills (a sync another worker runs right now counts: it applies
    them for every order); the order is done once its recorded fills complete it."""
    try:
        synced = sync_now(ctx, account_id, keep_alive=renew)
        if streaming and synced.recorded and _listed_first(ctx, order_id):
            suspect(ctx.redis, account_id, f"fills of order {order_id} were listed at the "
                    "broker long before the stream delivered them")  # fmt: skip
    except BrokerError as error:
        logger.warning("monitor: order %s: fill sync stopped: %s", order_id, error)
        return Next(delay_for(ctx, check), "fill sync stopped")
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None:
            return Next(None, "no such order")
        if order.status.is_terminal and not order.fill_gap:
            return Next(None, "filled (shared check)")
    return Next(delay_for(ctx, check), "shared check")


def _placing(ctx: WorkerContext, order_id: str, check: int, lock: HeldLock | None) -> Next:
    """A write-ahead row: its placement task is on it (its lease), or died: take it over."""
    if placement.placement_leased(ctx, order_id):
        return Next(delay_for(ctx, check), "placement in progress")
    done = placement.attempt(ctx, order_id, lock)
    if done.step is Step.REJECTED:
        return Next(None, "rejected")
    if done.step in (Step.PLACED, Step.DONE):
        return Next(delay_for(ctx, check), f"placement {done.step.value}")
    return Next(max(done.retry_after_s, delay_for(ctx, check)), f"placement {done.step.value}")


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


def _after_fill_sync(
    ctx: WorkerContext, order_id: str, account_id: str, check: int, renew: Callable[[], None]
) -> Next:
    """Fetch the account's new fills now; done if that completed a terminal order. A gap
    the forward sync leaves is re-read over the order's own window (bounded, then alerted:
    the chain ends and deep reconciliation keeps an eye on it)."""
    try:
        if not gap_state(ctx, order_id).rereads:  # once re-reading, the cursor has nothing
            sync_now(ctx, account_id, keep_alive=renew)
        gap = close_gap(ctx, order_id, keep_alive=renew)
    except BrokerError as error:  # a 429 or an empty budget: nothing learned, look later
        logger.warning("monitor: order %s: fill sync stopped: %s", order_id, error)
        _note(ctx, order_id, f"fill sync stopped: {error}")
        return Next(delay_for(ctx, check), "fill sync stopped")
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        done = order is None or (order.status.is_terminal and not order.fill_gap)
    if done:
        return Next(None, "terminal, fills recorded")
    if gap is Gap.GIVEN_UP:
        return Next(None, "fill gap given up (alerted)")
    due_in_s = gap_state(ctx, order_id).next_at - ctx.now().timestamp()
    return Next(max(delay_for(ctx, check), due_in_s), "waiting for fills")
