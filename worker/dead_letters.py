"""Poison tasks on RabbitMQ: what ``ordersync.dead`` holds, and sending it back to work.

A work task that fails every time runs ``ORDERSYNC_CELERY_DELIVERY_LIMIT`` + 1 times (RabbitMQ
dead-letters a message once it has come back more often than the limit) and then moves to
the quorum queue ``ordersync.dead`` (worker/topology.py), where it stays until replayed.
Listing reads messages without consuming them (a get without an ack; closing the channel
returns them). A replay republishes a message to the work queue it died in, waits for
RabbitMQ's confirm, and only then acknowledges the dead copy: a crash in between may replay
a task twice (every ordersync task is idempotent), never lose one.

On Redis there is no such queue: a work task that fails there is logged by its worker and
acknowledged, and the reconciliation sweeps pick up whatever it left undone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from kombu.connection import Connection

from ordersync.settings import AMQP_SCHEMES
from worker import delays
from worker.task_base import DUE_HEADER
from worker.topology import DEAD_QUEUE

logger = logging.getLogger(__name__)

ARGS_REPR_MAX = 200  # characters of a task's argsrepr/kwargsrepr shown
CONNECT_TIMEOUT_S = 10.0
CONFIRM_TIMEOUT_S = 10.0
SETTLE_S = 5.0
# Headers RabbitMQ writes when it dead-letters or redelivers: a replay starts afresh.
_DEATH_HEADERS = ("x-death", "x-delivery-count")
_DEATH_PREFIXES = ("x-first-death-", "x-last-death-")
# A delayed check's due time: meaningless once replayed (it would read as hours of lag).
_DROPPED_HEADERS = (*_DEATH_HEADERS, DUE_HEADER)
# The death records of the delay levels' hops (worker/delays.py) are not of a failure.
_DELAY_LEVEL = delays.PREFIX + "."


class DeadLettersUnavailable(RuntimeError):
    """The dead-letter queue cannot be read or written here."""


class NotRabbitMQ(DeadLettersUnavailable):
    def __init__(self) -> None:
        super().__init__(
            "tasks travel over Redis (ORDERSYNC_CELERY_BROKER_URL is unset or redis://), "
            "which has no dead-letter queue: a task that fails there is logged by its worker "
            "and not delivered again, and the reconciliation sweeps pick up what it left"
        )


class BrokerUnreachable(DeadLettersUnavailable):
    """Connecting failed, or the connection broke (what was got goes back by itself)."""

    def __init__(self, where: str, error: BaseException, *, lost: bool = False) -> None:
        what = "lost the connection to" if lost else "cannot connect to"
        super().__init__(f"{what} RabbitMQ at {where}: {error}")


class NoDeadQueue(DeadLettersUnavailable):
    def __init__(self, where: str) -> None:
        super().__init__(
            f"no queue {DEAD_QUEUE!r} at {where}: no ordersync worker has started on this "
            "RabbitMQ (vhost) yet, or the URL names another vhost"
        )


class ReplayFailed(DeadLettersUnavailable):
    """A republish was not confirmed: that message and the rest stay dead-lettered."""


@dataclass(frozen=True, slots=True)
class DeadTask:
    position: int  # in the dead-letter queue when listed, from 0 (the task id is the handle)
    task_id: str | None  # Celery's task id (the ``id`` header)
    task: str | None  # the task's name (the ``task`` header)
    queue: str | None  # the work queue it died in
    reason: str | None  # ``delivery_limit`` (failed every delivery), ``rejected``, ``expired``
    deaths: int  # times RabbitMQ dead-lettered it from that queue
    died_at: datetime | None
    args: str | None  # as Celery shows them (argsrepr), cut to ARGS_REPR_MAX
    kwargs: str | None  # kwargsrepr, likewise


def list_dead(broker_url: str, limit: int) -> list[DeadTask]:
    """The first ``limit`` messages of the dead-letter queue, left where they are."""
    tasks: list[DeadTask] = []
    with _connection(broker_url) as connection:
        with _channel(connection) as channel:
            waiting = _waiting(channel)
            while len(tasks) < limit:
                message = channel.basic_get(DEAD_QUEUE, no_ack=False)
                if message is None:
                    break
                tasks.append(_dead_task(len(tasks), message.headers or {}))
        if tasks:
            _settle(connection, waiting)
    return tasks


def count_dead(broker_url: str) -> int:
    """Messages waiting in the dead-letter queue (not counting any being listed right now)."""
    with _connection(broker_url) as connection, _channel(connection) as channel:
        return _waiting(channel)


def replay(broker_url: str, task_ids: set[str] | None) -> int:
    """Move the dead tasks of ``task_ids`` (all when None) back to the queues they died
    in; the others stay. Returns how many were replayed."""
    return len(replay_ids(broker_url, task_ids))


def replay_ids(broker_url: str, task_ids: set[str] | None) -> list[str | None]:
    """``replay``, returning the task id of each message replayed (two copies of one
    message, which at-least-once dead-lettering may make, are both replayed)."""
    replayed: list[str | None] = []
    with _connection(broker_url, confirm=True) as connection:
        with _channel(connection) as channel:
            # Only what is there now: a replayed task that dies again meanwhile stays.
            waiting = _waiting(channel)
            for _ in range(waiting):
                message = channel.basic_get(DEAD_QUEUE, no_ack=False)
                if message is None:
                    break
                if _replay_one(channel, message, task_ids, done=len(replayed)):
                    replayed.append(_text((message.headers or {}).get("id")))
        _settle(connection, waiting - len(replayed))
    return replayed


def _replay_one(channel: Any, message: Any, task_ids: set[str] | None, done: int) -> bool:
    """Republish one dead message if chosen, then acknowledge it; False when it stays (held
    by the channel until it closes, then back in the dead queue)."""
    headers = message.headers or {}
    task_id = headers.get("id")
    if task_ids is not None and task_id not in task_ids:
        return False
    death = _death(headers)
    queue = death.get("queue") if death else None
    if not isinstance(queue, str):
        logger.warning("dead task %s has no record of its queue; left in %s",
                       task_id, DEAD_QUEUE)  # fmt: skip
        return False
    try:
        _republish(channel, message, queue)
    except Exception as error:
        raise ReplayFailed(
            f"republishing task {task_id} to queue {queue!r} was not confirmed "
            f"({type(error).__name__}: {error}); {done} replayed before it, it and the "
            f"rest stay in {DEAD_QUEUE}"
        ) from error
    channel.basic_ack(message.delivery_tag)  # only after the confirm: never lost
    logger.info("replayed %s[%s] to %s", headers.get("task"), task_id, queue)
    return True


def replay_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """A dead message's headers without what RabbitMQ's deaths and redeliveries added."""
    return {
        key: value
        for key, value in headers.items()
        if key not in _DROPPED_HEADERS and not key.startswith(_DEATH_PREFIXES)
    }


def _republish(channel: Any, message: Any, queue: str) -> None:
    """Through the default exchange to ``queue`` itself, persistent, confirmed: raises
    when RabbitMQ refuses it, cannot route it (no such queue) or does not confirm in time."""
    properties = message.properties
    fresh = channel.prepare_message(
        message.body,
        priority=properties.get("priority"),
        content_type=properties.get("content_type"),
        content_encoding=properties.get("content_encoding"),
        headers=replay_headers(message.headers or {}),
        properties={
            "delivery_mode": 2,
            **{k: properties[k] for k in ("correlation_id", "reply_to") if k in properties},
        },
    )
    channel.basic_publish(fresh, exchange="", routing_key=queue, mandatory=True,
                          confirm_timeout=CONFIRM_TIMEOUT_S)  # fmt: skip


def _dead_task(position: int, headers: Mapping[str, Any]) -> DeadTask:
    death = _death(headers) or {}
    died_at = death.get("time")
    if isinstance(died_at, datetime) and died_at.tzinfo is None:
        died_at = died_at.replace(tzinfo=UTC)  # AMQP timestamps are UTC seconds
    return DeadTask(
        position=position,
        task_id=_text(headers.get("id")),
        task=_text(headers.get("task")),
        queue=_text(death.get("queue")),
        reason=_text(death.get("reason")),
        deaths=int(death.get("count") or 0),
        died_at=died_at if isinstance(died_at, datetime) else None,
        args=_cut(headers.get("argsrepr")),
        kwargs=_cut(headers.get("kwargsrepr")),
    )


def _death(headers: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The latest death outside the delay levels (whose hops are deaths too, "expired"):
    where and why the task was given up. RabbitMQ keeps ``x-death`` newest first."""
    deaths = headers.get("x-death")
    if not isinstance(deaths, list):
        return None
    for death in deaths:
        if isinstance(death, Mapping) and not str(death.get("queue")).startswith(_DELAY_LEVEL):
            return death
    return None


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _cut(value: object) -> str | None:
    text = _text(value)
    if text is None or len(text) <= ARGS_REPR_MAX:
        return text
    return text[: ARGS_REPR_MAX - 1] + "…"


def _waiting(channel: Any) -> int:
    return int(channel.queue_declare(queue=DEAD_QUEUE, passive=True).message_count)


@contextmanager
def _connection(broker_url: str, *, confirm: bool = False) -> Iterator[Any]:
    if urlsplit(broker_url).scheme not in AMQP_SCHEMES:
        raise NotRabbitMQ()
    options = {"confirm_publish": True} if confirm else {}
    with Connection(broker_url, connect_timeout=CONNECT_TIMEOUT_S,
                    transport_options=options) as connection:  # fmt: skip
        try:
            yield connection
        except DeadLettersUnavailable:
            raise
        except (*connection.connection_errors, *connection.channel_errors) as error:
            raise BrokerUnreachable(connection.as_uri(), error, lost=True) from error


@contextmanager
def _channel(connection: Any) -> Iterator[Any]:
    """A channel whose messages are got as raw bytes, on a RabbitMQ that has the dead-letter
    queue; closing it (always) returns every message got and not acknowledged."""
    where = connection.as_uri()  # without the password
    try:
        channel = connection.channel()
    except Exception as error:  # refused, timed out, login refused (never the password)
        raise BrokerUnreachable(where, error) from error
    channel.auto_decode = False  # a replay republishes the very bytes
    try:
        try:
            _waiting(channel)
        except connection.channel_errors as error:
            raise NoDeadQueue(where) from error
        yield channel
    finally:
        try:
            channel.close()
        except Exception as error:  # the connection's close returns them all the same
            logger.debug("closing the dead-letter channel: %s", error)


def _settle(connection: Any, at_least: int) -> None:
    """Wait until what a closed channel held is back in the dead queue (RabbitMQ returns it
    asynchronously: a list or replay right after this one would miss it). Bounded, as
    another reader may hold some of it meanwhile."""
    deadline = time.monotonic() + SETTLE_S
    with _channel(connection) as channel:
        while _waiting(channel) < at_least and time.monotonic() < deadline:
            time.sleep(0.01)
