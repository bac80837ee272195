"""Celery tasks: each parses its arguments, takes its lock, and calls one plain function.
Task names and arguments are the public contract documented in the README."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from celery import Task
from pydantic import BaseModel

from ordersync.metrics import record
from worker import (
    cancellation,
    chains,
    fills,
    heartbeat,
    monitoring,
    outbox,
    placement,
    purge,
    reconcile,
    replacing,
    stale_report,
    sweeps,
    tracking,
    webhooks,
)
from worker.args import (
    CancelOrderArgs,
    InvalidTaskArguments,
    PlaceOrderArgs,
    ReplaceOrderArgs,
    TrackOrderArgs,
    parse_args,
)
from worker.celery_app import app
from worker.context import WorkerContext, context
from worker.invalid_calls import record_invalid_call
from worker.placement import PlaceResult
from worker.task_base import DUE_HEADER
from worker.topology import MONITOR_QUEUE

R = TypeVar("R")
logger = logging.getLogger(__name__)
# revive_monitors: at most this many chains a run, none while more checks wait in the queue.
REVIVE_LIMIT = 200
# place_order on an unexpected error (the database or Redis down for a moment): again after
# this long, this many times; the placement's deadline still decides what is sent.
PLACE_ERROR_RETRY_S = 2.0
PLACE_ERROR_RETRIES = 30
REVIVE_BACKLOG = 1000
SENT_AT_MAX_AGE_S = 86400.0
SENT_AT_MAX_AHEAD_S = 60.0


def due_of(request: Any) -> object:
    """When a check delayed on RabbitMQ was due (its header; Redis messages carry an ETA)."""
    headers = getattr(request, "headers", None) or {}
    return headers.get(DUE_HEADER) or getattr(request, DUE_HEADER, None)


def sent_at_of(request: Any, now: float) -> float | None:
    """When the call was sent (epoch seconds), if its sender stamped it; a malformed or
    implausible stamp (over a day old, a minute ahead, milliseconds) counts as none: the
    placement latency then starts at the order's write."""
    headers = getattr(request, "headers", None) or {}
    value = headers.get(record.SENT_AT_HEADER) or getattr(request, record.SENT_AT_HEADER, None)
    try:
        sent = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    if sent is None or not math.isfinite(sent):
        return None
    return sent if now - SENT_AT_MAX_AGE_S <= sent <= now + SENT_AT_MAX_AHEAD_S else None


# The public contracts by task name: a refused call keeps only these arguments' values.
CONTRACTS: dict[str, type[BaseModel]] = {
    "ordersync.place_order": PlaceOrderArgs,
    "ordersync.track_order": TrackOrderArgs,
    "ordersync.cancel_order": CancelOrderArgs,
    "ordersync.replace_order": ReplaceOrderArgs,
}


def _refuse(task: Task, error: InvalidTaskArguments, args: Any, kwargs: Any) -> None:
    if task.name == placement.TASK:
        record.placement_refused("invalid_arguments")
    contract = CONTRACTS.get(task.name)
    known = None if contract is None else frozenset(contract.model_fields)
    record_invalid_call(context(), error.task_name, task.request.id, error.problem, args, kwargs,
                        known)  # fmt: skip


def start_monitor(order_id: str, chain: str | None = None) -> None:
    """Enqueue the first check of ``chain`` (a new chain if None)."""
    ctx = context()
    token = chain or chains.start_chain(ctx, order_id)
    chains.first_check_sent(ctx, order_id, token, lambda: monitor_order.apply_async(
        (order_id, token, 0), countdown=ctx.settings.monitor_first_delay_s))  # fmt: skip


def _writing(task: Task, args: Any, kwargs: Any, write: Callable[[], R]) -> R:
    """A call that writes an order: a refusal is recorded and raised; a database or Redis
    error retries the call (every 2 s, 30 times) rather than lose it."""
    try:
        return write()
    except InvalidTaskArguments as error:
        _refuse(task, error, args, kwargs)
        raise
    except Exception as error:  # the database or Redis blinked: the call is not lost
        logger.warning("%s %s failed, trying again: %s", task.name, task.request.id, error)
        raise task.retry(exc=error, countdown=PLACE_ERROR_RETRY_S,
                         max_retries=PLACE_ERROR_RETRIES) from error  # fmt: skip


@app.task(
    name="ordersync.place_order",
    bind=True,
    requeue_on_failure=True,
    ignore_result=False,
    throws=(InvalidTaskArguments,),
    max_retries=None,
)  # type: ignore[untyped-decorator]
def place_order(self: Task, *args: Any, **kwargs: Any) -> str:
    """Write the order, then attempt until the broker has it or its deadline has passed
    (each retry a fresh message; the deadline, not a count, bounds them: the task's
    ``max_retries=None``, since ``retry(max_retries=None)`` means the task's own limit)."""

    def place() -> PlaceResult:
        with record.sending(sent_at_of(self.request, time.time())):
            parsed = parse_args(PlaceOrderArgs, self.name, args, kwargs)
            return placement.place_order(context(), parsed, task_id=self.request.id)

    result = _writing(self, args, kwargs, place)
    if result.chain is not None:
        start_monitor(result.order_id, result.chain)
    if result.retry_after_s is not None:
        raise self.retry(countdown=result.retry_after_s, max_retries=None)
    return result.order_id


@app.task(
    name="ordersync.replace_order",
    bind=True,
    requeue_on_failure=True,
    ignore_result=False,
    throws=(InvalidTaskArguments,),
    max_retries=None,
)  # type: ignore[untyped-decorator]
def replace_order(self: Task, *args: Any, **kwargs: Any) -> str:
    """Write the replacing order, then attempt as place_order does; the replaced order is
    watched closely meanwhile (it turns REPLACED, or fills first)."""

    def replace() -> replacing.ReplaceResult:
        parsed = parse_args(ReplaceOrderArgs, self.name, args, kwargs)
        return replacing.replace_order(context(), parsed, task_id=self.request.id)

    result = _writing(self, args, kwargs, replace)
    placed = result.placed
    if placed.chain is not None:  # a new replacement: the replaced order gets a fresh chain
        start_monitor(placed.order_id, placed.chain)
        start_monitor(result.replaced_id)
    else:
        _watch(result.replaced_id)
    if placed.retry_after_s is not None:
        raise self.retry(countdown=placed.retry_after_s, max_retries=None)
    return placed.order_id


@app.task(
    name="ordersync.track_order",
    bind=True,
    requeue_on_failure=True,
    ignore_result=False,
    throws=(InvalidTaskArguments,),
)  # type: ignore[untyped-decorator]
def track_order(self: Task, *args: Any, **kwargs: Any) -> str | None:
    try:
        parsed = parse_args(TrackOrderArgs, self.name, args, kwargs)
        settings = context().settings
        last = self.request.retries >= settings.track_max_retries
        result = tracking.track_order(context(), parsed, last_attempt=last)
    except InvalidTaskArguments as error:
        _refuse(self, error, args, kwargs)
        raise
    if result.order_id is None:
        raise self.retry(countdown=settings.place_retry_delay_s,
                         max_retries=settings.track_max_retries)  # fmt: skip
    start_monitor(result.order_id)
    return result.order_id


@app.task(
    name="ordersync.cancel_order", bind=True, ignore_result=False, max_retries=None,
    requeue_on_failure=True,
    throws=(InvalidTaskArguments, cancellation.CancelAbandoned),
)  # type: ignore[untyped-decorator]  # fmt: skip
def cancel_order(self: Task, *args: Any, **kwargs: Any) -> str:
    """Retried until the cancel is sent or abandoned: the domain bounds the tries by time."""
    try:
        parsed = parse_args(CancelOrderArgs, self.name, args, kwargs)
        result = cancellation.cancel_order(context(), parsed, attempt=self.request.retries)
    except InvalidTaskArguments as error:
        _refuse(self, error, args, kwargs)
        raise
    if result.retry_reason:
        _watch(result.order_id)  # a live chain keeps looking meanwhile; never restart it
    elif result.monitor:
        start_monitor(result.order_id)
    if result.retry_reason:
        raise self.retry(countdown=result.retry_after_s, max_retries=None)
    return result.order_id


@app.task(
    name="ordersync.monitor_order",
    bind=True,
    requeue_on_failure=True,
    ignore_result=True,
    throws=(InvalidTaskArguments,),
)  # type: ignore[untyped-decorator]
def monitor_order(self: Task, order_id: Any, chain: Any = None, check: Any = 0) -> None:
    if (
        not isinstance(order_id, str)
        or not isinstance(check, int)
        or not isinstance(chain, str | None)
    ):
        error = InvalidTaskArguments(
            self.name, "order_id must be a string, chain a string or null, check an integer"
        )
        _refuse(self, error, (order_id, chain, check), {})
        raise error
    ctx = context()
    chains.note_lag(ctx, self.request.eta or due_of(self.request))
    token = chain or chains.start_chain(ctx, order_id)
    outcome = monitoring.run_step(ctx, order_id, token, check)
    record.monitor_check(outcome.reason)
    if outcome.reason == "locked":
        record.lock_skip("monitor_order")
    for other in outcome.watch:
        _watch(other)
    if outcome.delay_s is not None:
        step = check if outcome.same_step else check + 1
        monitor_order.apply_async((order_id, token, step), countdown=outcome.delay_s)


@app.task(name="ordersync.sync_fills", ignore_result=True, requeue_on_failure=True)  # type: ignore[untyped-decorator]
def sync_fills(account_id: str) -> None:
    """A capped batch of the account's fills; the rest, if any, in a task of its own."""
    if fills.sync_fills(context(), account_id).more:
        sync_fills.delay(account_id)


def queue_depth(queue: str) -> int | None:
    """Messages waiting in a queue (None when the transport cannot say)."""
    try:
        with app.connection_for_read() as connection:
            declared = connection.default_channel.queue_declare(queue=queue, passive=True)
            return int(declared.message_count)
    except Exception as error:  # e.g. no such queue yet on a fresh Redis
        logger.debug("cannot read the depth of queue %s: %s", queue, error)
        return None


@app.task(name="ordersync.revive_monitors", ignore_result=True, expires=30)  # type: ignore[untyped-decorator]
def revive_monitors() -> int:
    """Restart monitor chains whose next check is long overdue (their worker died).

    Not while the monitor queue is backlogged (overdue chains are then waiting in it, not
    dead: reviving them would only add to the queue): none while it holds more than
    ``REVIVE_BACKLOG`` checks, and a chain counts as overdue only past the limit plus twice
    the lag checks run with lately (workers hold countdown messages in memory, where no
    queue depth shows them). At most ``REVIVE_LIMIT`` a run; a revived chain is not due
    again before the overdue limit has passed once more."""
    ctx = context()
    depth = queue_depth(MONITOR_QUEUE)
    if depth is not None and depth > REVIVE_BACKLOG:
        logger.warning("revive_monitors: %d checks wait in %s; not reviving", depth,
                       MONITOR_QUEUE)  # fmt: skip
        return 0
    overdue = chains.take_overdue(ctx, REVIVE_LIMIT)
    delay = ctx.settings.monitor_revive_overdue_s + ctx.settings.monitor_first_delay_s
    for order_id in overdue:
        token = chains.start_chain(ctx, order_id, due_in_s=delay)
        monitor_order.apply_async((order_id, token, 0),
                                  countdown=ctx.settings.monitor_first_delay_s)  # fmt: skip
    if overdue:
        record.chains_revived(MONITOR_QUEUE, len(overdue))
        logger.info("revive_monitors: restarted %d chains", len(overdue))
    return len(overdue)


def _watch(order_id: str) -> None:
    """A sweep found an order that needs close watching: a monitor, unless one is live."""
    ctx = context()
    if not chains.is_live(ctx, order_id):
        start_monitor(order_id)


@app.task(name="ordersync.reconcile_open_orders", ignore_result=True)  # type: ignore[untyped-decorator]
def reconcile_open_orders() -> dict[str, object]:
    """The 30-second sweep: open orders nobody checked lately get the broker's view."""
    ctx = context()
    run = sweeps.run_sweep(ctx, "reconcile_open_orders", ctx.settings.sweep_interval_s,
                           reconcile.sweep_open_orders, watch=_watch)  # fmt: skip
    return {"ran": run.ran, "reason": run.reason, **run.totals()}


@app.task(name="ordersync.deep_reconcile", ignore_result=True)  # type: ignore[untyped-decorator]
def deep_reconcile() -> dict[str, object]:
    """The broker's recent orders against ours: adopt, resolve, declare lost, fill gaps."""
    ctx = context()
    run = sweeps.run_sweep(ctx, "deep_reconcile", ctx.settings.deep_reconcile_interval_s,
                           reconcile.deep_reconcile, watch=_watch)  # fmt: skip
    return {"ran": run.ran, "reason": run.reason, **run.totals()}


def _recorded(name: str, body: Callable[[WorkerContext], R],
              stats: Callable[[R], Mapping[str, int | float | str]]) -> R:  # fmt: skip
    """Run a beat job and record its outcome for ``ordersync status`` and the dead-man check."""
    ctx = context()
    started = ctx.now()
    try:
        result = body(ctx)
    except Exception as error:
        heartbeat.record_run(ctx.redis, name, ok=False, started_at=started,
                             finished_at=ctx.now(), stats={}, error=repr(error))  # fmt: skip
        raise
    heartbeat.record_run(ctx.redis, name, ok=True, started_at=started, finished_at=ctx.now(),
                         stats=stats(result))  # fmt: skip
    return result


@app.task(name="ordersync.report_stale_orders", ignore_result=True)  # type: ignore[untyped-decorator]
def report_stale_orders() -> dict[str, int]:
    """Counts of stale orders by class, alerts, and the sweeps' dead-man's switch."""
    report = _recorded("report_stale_orders", stale_report.report_stale_orders,
                       lambda r: r.stats())  # fmt: skip
    return report.stats()


@app.task(name="ordersync.purge_closed_orders", ignore_result=True)  # type: ignore[untyped-decorator]
def purge_closed_orders() -> dict[str, object]:
    """Closed orders past retention leave the hot tables, in bounded batches."""
    result = _recorded("purge_closed_orders", purge.purge_closed_orders, lambda r: r.as_dict())
    return result.as_dict()


@app.task(name="ordersync.relay_events", ignore_result=True)  # type: ignore[untyped-decorator]
def relay_events() -> dict[str, object]:
    """Publish the outbox's waiting events to the Redis Stream, in order, at least once."""
    ctx = context()
    result = outbox.relay_events(ctx, max_s=ctx.settings.outbox_relay_interval_s * 5)
    return {"published": result.published, "ran": result.ran, "error": result.error}


@app.task(name="ordersync.deliver_event_webhooks", ignore_result=True)  # type: ignore[untyped-decorator]
def deliver_event_webhooks() -> dict[str, object]:
    """Send waiting events to the configured webhooks, signed, in order per order; a no-op
    when none are configured (each endpoint takes its own lock)."""
    ctx = context()
    run = webhooks.deliver_webhooks(ctx, max_s=ctx.settings.event_webhook_interval_s * 5)
    return run.as_dict()


@app.task(name="ordersync.ping", ignore_result=False)  # type: ignore[untyped-decorator]
def ping() -> dict[str, str]:
    """Liveness: proves a worker consumes from the broker."""
    return {"pong": datetime.now(UTC).isoformat()}
