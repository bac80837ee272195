"""One call per thing that happened, so the code that does the work carries one line for its
metrics; a metrics failure is logged and never fails the work."""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final, ParamSpec

from ordersync.metrics import instruments as m

logger = logging.getLogger(__name__)
P = ParamSpec("P")

# Set by the placement task from its message's ``ordersync_sent_at`` header (epoch seconds).
SENT_AT: ContextVar[float | None] = ContextVar("ordersync_sent_at", default=None)
SENT_AT_HEADER: Final = "ordersync_sent_at"


@contextmanager
def sending(sent_at: float | None) -> Iterator[None]:
    """Within: placements acknowledged are measured from ``sent_at`` (the message being
    worked on); after it, not (a monitor or sweep in the same process places other orders)."""
    token = SENT_AT.set(sent_at)
    try:
        yield
    finally:
        SENT_AT.reset(token)


def stamp_sent_at(headers: dict[str, object] | None = None, **_: object) -> None:
    """``before_task_publish``: when the call was sent, for the placement latency (a call
    that already carries a stamp keeps it)."""
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


def _safe(fn: Callable[P, None]) -> Callable[P, None]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:  # a label typo must not lose an order
            logger.exception("metrics: %s failed", fn.__name__)

    return wrapper


def _seconds(later: datetime, earlier: datetime) -> float:
    return max(0.0, (later - earlier).total_seconds())


@_safe
def placement_acknowledged(
    broker: str, account: str, created_at: datetime, now: datetime, deadline: datetime | None
) -> None:
    """Latency from the task's send (when its sender stamped it) or else the row's write."""
    m.PLACEMENTS.labels(broker, account, "acknowledged").inc()
    if deadline is not None and now > deadline:
        m.PLACEMENTS_LATE.labels(broker, account).inc()
    sent = SENT_AT.get()
    start = created_at
    if sent is not None:
        start = min(start, datetime.fromtimestamp(sent, UTC))
    m.PLACEMENT_LATENCY.labels(broker, account).observe(_seconds(now, start))


@_safe
def placement_rejected(broker: str, account: str) -> None:
    m.PLACEMENTS.labels(broker, account, "rejected").inc()
    m.PLACEMENTS_REFUSED.labels("broker_rejected").inc()


@_safe
def placement_dropped(broker: str, account: str, reason: str) -> None:
    m.PLACEMENTS.labels(broker, account, "dropped").inc()
    m.PLACEMENTS_DROPPED.labels(account, reason).inc()


@_safe
def placement_refused(reason: str) -> None:
    m.PLACEMENTS_REFUSED.labels(reason).inc()


@_safe
def fill_recorded(
    broker: str, account: str, source: str, filled_at: datetime, committed_at: datetime
) -> None:
    m.FILLS.labels(broker, account, source).inc()
    m.FILL_DETECTION_LATENCY.labels(broker, account, source).observe(
        _seconds(committed_at, filled_at)
    )


def slug(text: str) -> str:
    """A bounded label from a reason text: its part before any ";" as lower_snake_case."""
    head = text.split(";", 1)[0].strip().lower()
    return re.sub(r"[^a-z0-9]+", "_", head).strip("_")[:48] or "unknown"


def status_class(status: int | None) -> str:
    """2xx, 4xx, 429, 5xx, or error (no answer): bounded, and 429 on its own."""
    if status is None:
        return "error"
    if status == 429:
        return "429"
    return f"{status // 100}xx"


@_safe
def broker_request(
    broker: str, account: str, endpoint: str, status: int | None, elapsed_s: float
) -> None:
    m.BROKER_REQUESTS.labels(broker, account, endpoint, status_class(status)).inc()
    m.BROKER_REQUEST_DURATION.labels(broker, account, endpoint).observe(elapsed_s)


@_safe
def budget_lease(account: str) -> None:
    m.BUDGET_LEASES.labels(account).inc()


@_safe
def monitor_check(outcome: str) -> None:
    """``outcome``: a monitor step's reason ("polled", "terminal", ...) as a label."""
    m.MONITOR_CHECKS.labels(slug(outcome)).inc()


@_safe
def lock_skip(task: str) -> None:
    m.LOCK_SKIPS.labels(task).inc()


@_safe
def chains_revived(queue: str, count: int) -> None:
    m.CHAINS_REVIVED.labels(queue).inc(count)


@_safe
def fill_gap(event: str) -> None:
    m.FILL_GAPS.labels(event).inc()


@_safe
def sweep_run(sweep: str, ok: bool, duration_s: float) -> None:
    m.SWEEP_DURATION.labels(sweep).observe(max(0.0, duration_s))
    m.SWEEP_RUNS.labels(sweep, "ok" if ok else "failed").inc()


@_safe
def reconciled(sweep: str, account: str, results: dict[str, int]) -> None:
    for result, count in results.items():
        if count:
            m.RECONCILE.labels(sweep, account, result).inc(count)


@_safe
def webhook_deliveries(endpoint: str, *, attempts: int, failed: int, dead: int) -> None:
    """One batch of attempts: delivered, failed (to be retried or dead), of which dead."""
    for outcome, count in (("delivered", attempts - failed), ("failed", failed), ("dead", dead)):
        if count:
            m.WEBHOOK_DELIVERIES.labels(endpoint, outcome).inc(count)


@_safe
def stream_event(account: str, kind: str, at: datetime | None) -> None:
    m.STREAM_EVENTS.labels(account, slug(kind)).inc()
    if at is not None:
        m.STREAM_LAG.labels(account).observe(_seconds(datetime.now(UTC), at))


@_safe
def stream_connected(account: str, up: bool) -> None:
    if up:
        m.STREAM_CONNECTS.labels(account).inc()


@_safe
def stream_reconnect(account: str, reason: str) -> None:
    m.STREAM_RECONNECTS.labels(account, slug(reason)).inc()
