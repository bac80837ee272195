"""The Celery app: late acks, requeue on a lost worker, prefetch 1. On Redis, a visibility
timeout far above every countdown; on RabbitMQ (ORDERSYNC_CELERY_BROKER_URL=amqp://...),
quorum queues with a delivery limit and a dead-letter queue, publisher confirms, and
countdowns through delay queues (worker/topology.py, worker/delays.py)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, bootsteps
from celery.signals import before_task_publish
from celery.worker.consumer import Consumer

import beat_schedule
import worker.metrics  # noqa: F401  # its signal handlers serve the worker's metrics
from ordersync.metrics.record import stamp_sent_at
from ordersync.redis_url import resolve_broker_url, resolve_redis_url
from ordersync.settings import get_settings
from worker import topology
from worker.args import InvalidTaskArguments
from worker.topology import DEFAULT_QUEUE, MONITOR_QUEUE
from worker.transport import survive_lost_connections

VISIBILITY_TIMEOUT_S = 3600
# RabbitMQ heartbeats: a peer that vanished without closing its connection (a partition, a
# frozen host) is noticed within two of them and its unacknowledged tasks delivered again.
AMQP_HEARTBEAT_S = 10


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


class _DeclareTopology(bootsteps.StartStopStep):  # type: ignore[misc]
    """On RabbitMQ, every (re)connected consumer declares the dead-letter queue and the delay
    levels (in place of Celery's own one-second delayed delivery, which the blueprint below
    leaves out)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def include_if(self, c: Any) -> bool:
        return get_settings().transport_is_amqp()

    def start(self, c: Any) -> None:
        topology.declare(c.connection, get_settings().celery_delivery_limit)


class OrdersyncConsumer(Consumer):  # type: ignore[misc]
    class Blueprint(Consumer.Blueprint):  # type: ignore[misc]
        default_steps = [
            step
            for step in Consumer.Blueprint.default_steps
            if not step.endswith(":DelayedDelivery")
        ]


app = Celery("ordersync", include=["worker.tasks"], task_cls="worker.task_base:OrdersyncTask")
app.steps["consumer"].add(_DeclareTopology)
_AMQP = get_settings().transport_is_amqp()
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
    task_queues=topology.work_queues(_AMQP, get_settings().celery_delivery_limit),
    worker_consumer="worker.celery_app:OrdersyncConsumer",
    broker_heartbeat=AMQP_HEARTBEAT_S if _AMQP else None,
    task_routes={
        "ordersync.monitor_order": {"queue": MONITOR_QUEUE},
        "ordersync.sync_fills": {"queue": MONITOR_QUEUE},
        "ordersync.revive_monitors": {"queue": MONITOR_QUEUE},
        "ordersync.relay_events": {"queue": MONITOR_QUEUE},
        "ordersync.deliver_event_webhooks": {"queue": MONITOR_QUEUE},
    },
)


if _AMQP:
    # Every publish waits for RabbitMQ's confirm: a re-enqueued check or a retry that was
    # not stored fails its task, whose message then goes back to the queue.
    app.conf.broker_transport_options = {"confirm_publish": True}


@before_task_publish.connect  # type: ignore[untyped-decorator]
def _no_broker_expiry(properties: dict[str, Any] | None = None, **_: Any) -> None:
    """On RabbitMQ a task's ``expires`` stays in its headers (the worker discards it when
    expired) instead of becoming a message TTL: an expired message would be dead-lettered
    as poison, and a delayed one would leave its delay level early."""
    if properties is not None and _AMQP:
        properties.pop("expiration", None)


before_task_publish.connect(stamp_sent_at)


@app.on_configure.connect  # type: ignore[untyped-decorator]
def _configure_broker(sender: Any, **_: Any) -> None:
    """Resolve the transport and Redis only when Celery first needs them, so importing
    tasks starts nothing."""
    sender.conf.broker_url = resolve_broker_url()
    sender.conf.result_backend = resolve_redis_url()
