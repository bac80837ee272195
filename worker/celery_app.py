"""The Celery app. Reliability settings follow design.md: late acks, requeue on a lost
worker, prefetch 1, a visibility timeout far above every countdown."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from kombu.entity import Queue

import beat_schedule
from ordersync.redis_url import resolve_redis_url
from ordersync.settings import get_settings
from worker.args import InvalidTaskArguments
from worker.transport import survive_lost_connections

VISIBILITY_TIMEOUT_S = 3600
# Trading services send to the default queue; the monitor's own traffic has a queue of its
# own so a burst of placements never delays the checks and fill syncs of earlier orders.
DEFAULT_QUEUE = "celery"
MONITOR_QUEUE = "ordersync.monitor"


class _OneLinePerRefusal(logging.Filter):
    """Drops Celery's own "Task ...[id] raised expected: InvalidTaskArguments(...)" line (its
    logger is ``celery.app.trace``): a refused call already has its one line, with the task
    id, from worker/invalid_calls.py, and the README promises one."""

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        refused = f"{InvalidTaskArguments.__name__}("
        return not (
            isinstance(data, dict)
            and data.get("description") == "raised expected"
            and str(data.get("exc", "")).startswith(refused)
        )


logging.getLogger("celery.app.trace").addFilter(_OneLinePerRefusal())
survive_lost_connections()

app = Celery("ordersync", include=["worker.tasks"])
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    enable_utc=True,
    task_ignore_result=True,
    result_expires=3600,
    worker_send_task_events=get_settings().task_events,
    task_send_sent_event=get_settings().task_events,
    broker_connection_retry_on_startup=True,
    # A task running when the broker connection drops finishes its work (every task is
    # idempotent); cancelling it would mark it REVOKED and acknowledge it: never redelivered.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
    result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
    visibility_timeout=VISIBILITY_TIMEOUT_S,
    beat_schedule=beat_schedule.SCHEDULE,
    task_default_queue=DEFAULT_QUEUE,
    task_queues=(Queue(MONITOR_QUEUE), Queue(DEFAULT_QUEUE)),  # type: ignore[no-untyped-call]
    task_routes={
        "ordersync.monitor_order": {"queue": MONITOR_QUEUE},
        "ordersync.sync_fills": {"queue": MONITOR_QUEUE},
        "ordersync.revive_monitors": {"queue": MONITOR_QUEUE},
        "ordersync.relay_events": {"queue": MONITOR_QUEUE},
        "ordersync.deliver_event_webhooks": {"queue": MONITOR_QUEUE},
    },
)


@app.on_configure.connect  # type: ignore[untyped-decorator]
def _configure_broker(sender: Any, **_: Any) -> None:
    """Resolve Redis only when Celery first needs it, so importing tasks starts nothing."""
    url = resolve_redis_url()
    sender.conf.broker_url = url
    sender.conf.result_backend = url
