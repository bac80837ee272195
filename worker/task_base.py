"""The base of every ordersync task: on RabbitMQ, countdowns go through the delay levels
(worker/delays.py) instead of waiting in a worker, publishes wait for the broker's confirm,
and a work task that fails unexpectedly is handed back to RabbitMQ, which delivers it again
up to the delivery limit and then dead-letters it (never acknowledged and forgotten)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import Task
from celery.exceptions import Ignore, Reject, Retry

from ordersync.settings import get_settings
from worker import delays

logger = logging.getLogger(__name__)
# The header a delayed message carries: when it was due (ISO 8601, UTC), for the lag metric.
DUE_HEADER = "ordersync_due"


def _reason(error: object) -> str:
    """A Reject's reason travels from the pool process to the worker's main process: a
    string always can (an exception whose constructor takes other arguments cannot be
    rebuilt there, and the main process would exit)."""
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


class OrdersyncTask(Task):  # type: ignore[misc]
    # Work tasks (placing, tracking, monitoring an order): an unexpected failure goes back to
    # the queue on RabbitMQ. Periodic jobs are not: their next run is the retry.
    requeue_on_failure = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Reject as rejected:
            # Celery's retry() rejects without requeueing when it cannot publish the retry
            # (no confirm, the connection lost): the call goes back to its queue instead.
            if rejected.requeue or not self._requeues():
                raise
            logger.warning(
                "%s[%s]: its retry was not stored (%s); back to its queue",
                self.name, self.request.id, rejected.reason,
            )  # fmt: skip
            raise Reject(_reason(rejected.reason), requeue=True) from rejected
        except (Retry, Ignore):
            raise
        except Exception as error:
            if isinstance(error, self.throws) or not self._requeues():
                raise
            logger.warning(
                "%s[%s] failed (%s: %s); back to its queue (dead-lettered once returned more "
                "than %d times)",
                self.name, self.request.id, type(error).__name__, error,
                get_settings().celery_delivery_limit,
            )  # fmt: skip
            raise Reject(_reason(error), requeue=True) from error

    def _requeues(self) -> bool:
        """Whether a failure of this task goes back to its queue (work tasks on RabbitMQ)."""
        return bool(self.requeue_on_failure) and get_settings().transport_is_amqp()

    def apply_async(
        self, args: Any = None, kwargs: Any = None, task_id: str | None = None,
        producer: Any = None, link: Any = None, link_error: Any = None, shadow: Any = None,
        **options: Any,
    ) -> Any:  # fmt: skip
        settings = get_settings()
        if settings.transport_is_amqp():
            options = self._amqp_options(args, kwargs, options)
            options.setdefault("confirm_timeout", settings.celery_confirm_timeout_s)
        return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow,
                                   **options)  # fmt: skip

    def _amqp_options(self, args: Any, kwargs: Any, options: dict[str, Any]) -> dict[str, Any]:
        """A countdown or ETA becomes a route through the delay levels to the task's queue."""
        options = dict(options)
        if delays.is_delay_exchange(options.get("exchange")):  # a retry of a delayed message
            options.pop("exchange")
            options.pop("routing_key", None)
        countdown, eta = options.pop("countdown", None), options.pop("eta", None)
        now = datetime.now(UTC)
        if eta is not None:
            due = eta if isinstance(eta, datetime) else datetime.fromisoformat(str(eta))
            due = due if due.tzinfo else due.replace(tzinfo=UTC)
            delay_s = (due - now).total_seconds()
        else:
            delay_s = float(countdown or 0)
        if delay_s <= 0:
            return options
        route = self.app.amqp.router.route(dict(options), self.name, args, kwargs)
        options["queue"] = route["queue"]
        options["exchange"] = delays.entry_exchange()
        options["routing_key"] = delays.routing_key(delay_s, route["queue"].name)
        headers = dict(options.get("headers") or {})
        headers[DUE_HEADER] = datetime.fromtimestamp(now.timestamp() + delay_s, UTC).isoformat()
        options["headers"] = headers
        return options
