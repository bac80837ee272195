"""Celery tasks: each parses its arguments, takes its lock, and calls one plain function.
Task names and arguments are the public contract documented in the README."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Task

from worker import cancellation, fills, monitoring, placement, tracking
from worker.args import (
    CancelOrderArgs,
    InvalidTaskArguments,
    PlaceOrderArgs,
    TrackOrderArgs,
    parse_args,
)
from worker.celery_app import app
from worker.context import context
from worker.invalid_calls import record_invalid_call


def _refuse(task: Task, error: InvalidTaskArguments, args: Any, kwargs: Any) -> None:
    record_invalid_call(context(), error.task_name, task.request.id, error.problem, args, kwargs)


def start_monitor(order_id: str) -> None:
    ctx = context()
    token = monitoring.start_chain(ctx, order_id)
    monitor_order.apply_async((order_id, token, 0), countdown=ctx.settings.monitor_first_delay_s)


@app.task(
    name="ordersync.place_order", bind=True, ignore_result=False, throws=(InvalidTaskArguments,)
)  # type: ignore[untyped-decorator]
def place_order(self: Task, *args: Any, **kwargs: Any) -> str:
    try:
        parsed = parse_args(PlaceOrderArgs, self.name, args, kwargs)
        settings = context().settings
        last = self.request.retries >= settings.place_max_retries
        result = placement.place_order(context(), parsed, task_id=self.request.id,
                                       last_attempt=last)  # fmt: skip
    except InvalidTaskArguments as error:
        _refuse(self, error, args, kwargs)
        raise
    if result.retry:
        raise self.retry(countdown=settings.place_retry_delay_s,
                         max_retries=settings.place_max_retries)  # fmt: skip
    if result.monitor:
        start_monitor(result.order_id)
    return result.order_id


@app.task(
    name="ordersync.track_order", bind=True, ignore_result=False, throws=(InvalidTaskArguments,)
)  # type: ignore[untyped-decorator]
def track_order(self: Task, *args: Any, **kwargs: Any) -> str | None:
    try:
        parsed = parse_args(TrackOrderArgs, self.name, args, kwargs)
        settings = context().settings
        last = self.request.retries >= settings.place_max_retries
        result = tracking.track_order(context(), parsed, last_attempt=last)
    except InvalidTaskArguments as error:
        _refuse(self, error, args, kwargs)
        raise
    if result.order_id is None:
        raise self.retry(countdown=settings.place_retry_delay_s,
                         max_retries=settings.place_max_retries)  # fmt: skip
    start_monitor(result.order_id)
    return result.order_id


@app.task(
    name="ordersync.cancel_order", bind=True, ignore_result=False, throws=(InvalidTaskArguments,)
)  # type: ignore[untyped-decorator]
def cancel_order(self: Task, *args: Any, **kwargs: Any) -> str:
    try:
        parsed = parse_args(CancelOrderArgs, self.name, args, kwargs)
        result = cancellation.cancel_order(context(), parsed)
    except InvalidTaskArguments as error:
        _refuse(self, error, args, kwargs)
        raise
    if result.monitor:
        start_monitor(result.order_id)
    if result.retry_reason:
        raise self.retry(countdown=context().settings.place_retry_delay_s, max_retries=20)
    return result.order_id


@app.task(
    name="ordersync.monitor_order", bind=True, ignore_result=True, throws=(InvalidTaskArguments,)
)  # type: ignore[untyped-decorator]
def monitor_order(self: Task, order_id: Any, chain: Any = None, check: Any = 0) -> None:
    if not isinstance(order_id, str) or not isinstance(check, int):
        error = InvalidTaskArguments(self.name, "order_id must be a string, check an integer")
        _refuse(self, error, (order_id, chain, check), {})
        raise error
    ctx = context()
    token = chain or monitoring.start_chain(ctx, order_id)
    outcome = monitoring.run_step(ctx, order_id, token, check)
    if outcome.delay_s is not None:
        step = check if outcome.same_step else check + 1
        monitor_order.apply_async((order_id, token, step), countdown=outcome.delay_s)


@app.task(name="ordersync.sync_fills", ignore_result=True)  # type: ignore[untyped-decorator]
def sync_fills(account_id: str) -> None:
    fills.sync_fills(context(), account_id)


@app.task(name="ordersync.revive_monitors", ignore_result=True, expires=30)  # type: ignore[untyped-decorator]
def revive_monitors() -> int:
    """Restart monitor chains whose next check is long overdue (their worker died)."""
    ctx = context()
    overdue = monitoring.overdue_orders(ctx)
    for order_id in overdue:
        start_monitor(order_id)
    return len(overdue)


@app.task(name="ordersync.ping", ignore_result=False)  # type: ignore[untyped-decorator]
def ping() -> dict[str, str]:
    """Liveness: proves a worker consumes from the broker."""
    return {"pong": datetime.now(UTC).isoformat()}
