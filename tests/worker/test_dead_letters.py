"""Poison tasks on RabbitMQ (worker/dead_letters.py): what dies in a work queue is listed
from ``ordersync.dead`` without being taken out, and a replay moves the chosen messages back
to the queue each died in, confirmed before the dead copy goes (a crash in between leaves a
duplicate, never a loss). End to end: a real worker runs a task that fails every time exactly
delivery limit + 1 times; the task then waits in the dead-letter queue, and once the cause
is fixed a replay runs it to success."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Producer
from sqlalchemy.orm import Session

from models.accounts import get_account
from ordersync.settings import Settings
from tests.conftest import migrated_database
from tests.paper_exchange import PaperExchange
from tests.processes import stop_process
from tests.rabbitmq import purge
from tests.worker.conftest import ACCOUNT, TrackingSystem, tracking_system, wait_for
from worker import dead_letters, delays, topology
from worker.dead_letters import ReplayFailed
from worker.task_base import DUE_HEADER
from worker.topology import DEFAULT_QUEUE, MONITOR_QUEUE, WORK_QUEUES

pytestmark = pytest.mark.integration

DEFAULT_LIMIT = Settings(_env_file=None).celery_delivery_limit  # type: ignore[call-arg]
LONG_KWARGS = repr({"note": "x" * 500})


def fresh_queues(url: str, limit: int = DEFAULT_LIMIT) -> None:
    """Empty queues, the work queues (re)made with ``limit``: a quorum queue's arguments are
    fixed once declared, so a test of another limit deletes and declares them again."""
    purge(url)
    with Connection(url, connect_timeout=5) as connection:
        channel = connection.channel()
        for name in WORK_QUEUES:
            channel.queue_delete(name)
        channel.close()
        topology.declare(connection, limit)


def publish_task(url: str, queue: str, *, task: str = "ordersync.monitor_order",
                 delay_s: float | None = None, kwargsrepr: str = "{}",
                 **properties: Any) -> str:  # fmt: skip
    """A task message as Celery sends it (headers, JSON body), straight to ``queue`` or
    through the delay levels; returns its task id."""
    task_id = str(uuid.uuid4())
    headers = {"lang": "py", "task": task, "id": task_id, "retries": 0, "argsrepr": "('o-1',)",
               "kwargsrepr": kwargsrepr, DUE_HEADER: datetime.now(UTC).isoformat()}  # fmt: skip
    body = json.dumps([["o-1"], {}, {"callbacks": None}]).encode()
    exchange, key = queue, queue
    if delay_s is not None:
        exchange, key = delays.entry_exchange(), delays.routing_key(delay_s, queue)
    with Connection(url, transport_options={"confirm_publish": True}) as connection:
        Producer(connection.channel()).publish(
            body, exchange=exchange, routing_key=key, headers=headers, mandatory=True,
            content_type="application/json", content_encoding="utf-8", correlation_id=task_id,
            **properties,
        )  # fmt: skip
    return task_id


def kill(url: str, queue: str, *, reject: bool = False) -> None:
    """Fail the message waiting in ``queue`` until RabbitMQ dead-letters it: every delivery
    handed back (delivery_limit), or one outright rejection (rejected)."""
    dead_before = dead_letters.count_dead(url)
    with Connection(url) as connection:
        channel = connection.channel()

        def fail_one() -> bool:
            message = channel.basic_get(queue, no_ack=False)
            if message is not None:
                channel.basic_reject(message.delivery_tag, requeue=not reject)
            return dead_letters.count_dead(url) > dead_before

        wait_for(fail_one, 10, f"a message of {queue} dead-lettered")
        channel.close()


def get_raw(url: str, queue: str) -> Any:
    """Take the next message of ``queue`` (raw bytes), waiting for it."""
    with Connection(url) as connection:
        channel = connection.channel()
        channel.auto_decode = False
        message = wait_for(lambda: channel.basic_get(queue, no_ack=True), 10,
                           f"a message in {queue}")  # fmt: skip
        channel.close()
    return message


def depth(url: str, queue: str) -> int:
    with Connection(url) as connection:
        channel = connection.channel()
        count = int(channel.queue_declare(queue=queue, passive=True).message_count)
        channel.close()
    return count


@pytest.fixture
def amqp(rabbitmq_url: str) -> str:
    fresh_queues(rabbitmq_url)
    return rabbitmq_url


@pytest.fixture
def two_dead(amqp: str) -> tuple[str, str]:
    """One task failed on every delivery in ``celery``; one delayed check (it arrives with a
    routing key of delay bits) rejected in ``ordersync.monitor``."""
    failed = publish_task(amqp, DEFAULT_QUEUE, task="ordersync.place_order",
                          kwargsrepr=LONG_KWARGS)  # fmt: skip
    kill(amqp, DEFAULT_QUEUE)
    rejected = publish_task(amqp, MONITOR_QUEUE, delay_s=0.03)
    kill(amqp, MONITOR_QUEUE, reject=True)
    return failed, rejected


def test_dead_tasks_are_listed_with_where_and_why_they_died_and_left_in_place(
    amqp: str, two_dead: tuple[str, str]
) -> None:
    failed, rejected = two_dead
    listed = dead_letters.list_dead(amqp, 10)
    by_id = {t.task_id: t for t in listed}
    assert [t.position for t in listed] == [0, 1]
    assert set(by_id) == {failed, rejected}
    first, second = by_id[failed], by_id[rejected]
    assert (first.task, first.queue, first.reason, first.deaths) == (
        "ordersync.place_order", DEFAULT_QUEUE, "delivery_limit", 1)  # fmt: skip
    # Its delay hops (reason "expired") are not where it died.
    assert (second.task, second.queue, second.reason, second.deaths) == (
        "ordersync.monitor_order", MONITOR_QUEUE, "rejected", 1)  # fmt: skip
    for task in listed:
        assert task.died_at is not None
        assert abs(datetime.now(UTC) - task.died_at) < timedelta(minutes=1)
        assert task.args == "('o-1',)"
    assert second.kwargs == "{}"
    assert first.kwargs is not None
    assert len(first.kwargs) == dead_letters.ARGS_REPR_MAX
    assert first.kwargs.endswith("…")
    assert LONG_KWARGS.startswith(first.kwargs[:-1])

    # Reading consumed nothing: the same list again, in the same order, and both still there.
    assert dead_letters.list_dead(amqp, 10) == listed
    assert dead_letters.count_dead(amqp) == 2
    assert dead_letters.list_dead(amqp, 1) == listed[:1]


def test_replay_moves_the_chosen_task_back_to_its_queue_as_it_was_sent(
    amqp: str, two_dead: tuple[str, str]
) -> None:
    failed, rejected = two_dead
    assert dead_letters.replay(amqp, {"no-such-task"}) == 0
    assert dead_letters.count_dead(amqp) == 2

    assert dead_letters.replay(amqp, {rejected}) == 1
    assert [t.task_id for t in dead_letters.list_dead(amqp, 10)] == [failed]
    back = get_raw(amqp, MONITOR_QUEUE)
    assert back.body == json.dumps([["o-1"], {}, {"callbacks": None}]).encode()
    assert back.properties["content_type"] == "application/json"
    assert back.properties["content_encoding"] == "utf-8"
    assert back.properties["correlation_id"] == rejected
    assert back.properties["delivery_mode"] == 2
    headers = back.headers
    assert (headers["id"], headers["task"], headers["argsrepr"]) == (
        rejected, "ordersync.monitor_order", "('o-1',)")  # fmt: skip
    # Nothing of its deaths (nor its old due time, which would read as lag) goes with it;
    # x-delivery-count is the work queue's own, counting from 0 again.
    assert not [k for k in headers if k.startswith(("x-death", "x-first-death", "x-last-death"))]
    assert DUE_HEADER not in headers
    assert headers.get("x-delivery-count", 0) == 0

    assert dead_letters.replay(amqp, None) == 1
    assert dead_letters.count_dead(amqp) == 0
    assert get_raw(amqp, DEFAULT_QUEUE).headers["id"] == failed


def test_a_task_expired_in_its_queue_is_listed_and_replayed_there(amqp: str) -> None:
    # A sender's Celery ``expires`` becomes a message TTL on RabbitMQ: it dies "expired" in
    # its work queue (not one of the delay levels' hops, which expire too, and are skipped).
    task_id = publish_task(amqp, DEFAULT_QUEUE, expiration=0.05)  # seconds
    [task] = wait_for(lambda: dead_letters.list_dead(amqp, 10), 10, "the expired task dead")
    assert (task.task_id, task.queue, task.reason) == (task_id, DEFAULT_QUEUE, "expired")
    assert dead_letters.replay(amqp, None) == 1
    back = get_raw(amqp, DEFAULT_QUEUE)
    assert back.headers["id"] == task_id
    assert "expiration" not in back.properties


def test_a_replay_that_is_not_confirmed_leaves_the_task_dead(amqp: str) -> None:
    task_id = publish_task(amqp, MONITOR_QUEUE)
    kill(amqp, MONITOR_QUEUE)
    with Connection(amqp) as connection:  # its queue is gone: the publish cannot be routed
        channel = connection.channel()
        channel.queue_delete(MONITOR_QUEUE)
        channel.close()
    try:
        with pytest.raises(ReplayFailed, match=f"{task_id}.*{MONITOR_QUEUE}"):
            dead_letters.replay(amqp, None)
        assert [t.task_id for t in dead_letters.list_dead(amqp, 10)] == [task_id]
    finally:
        fresh_queues(amqp)


class Crash(BaseException):
    """A process killed where it stands (not an error the code handles)."""


def test_a_crash_between_confirm_and_ack_duplicates_a_replay_and_loses_nothing(
    amqp: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = publish_task(amqp, DEFAULT_QUEUE)
    kill(amqp, DEFAULT_QUEUE)
    republish = dead_letters._republish

    def confirmed_then_crash(channel: Any, message: Any, queue: str) -> None:
        republish(channel, message, queue)
        raise Crash  # the process dies before it acknowledges the dead copy

    monkeypatch.setattr(dead_letters, "_republish", confirmed_then_crash)
    with pytest.raises(Crash):
        dead_letters.replay(amqp, None)
    assert get_raw(amqp, DEFAULT_QUEUE).headers["id"] == task_id
    assert [t.task_id for t in dead_letters.list_dead(amqp, 10)] == [task_id]


# --- end to end, through a real worker -----------------------------------------------------

LIMIT = 3


@pytest.fixture
def poison_system(
    rabbitmq_url: str, tracking_redis_url: str, paper_exchange: PaperExchange, tmp_path: Path
) -> Iterator[TrackingSystem]:
    """A system on RabbitMQ whose work queues dead-letter after ``LIMIT`` failed deliveries
    (its workers are stopped, and the default limit restored for the tests after, before
    the queues are made again)."""
    for database_url in migrated_database("sqlite", tmp_path):
        with tracking_system(database_url, tracking_redis_url, paper_exchange,
                             tmp_path / "var", broker_url=rabbitmq_url) as system:  # fmt: skip
            fresh_queues(rabbitmq_url, LIMIT)
            system.env["ORDERSYNC_CELERY_DELIVERY_LIMIT"] = str(LIMIT)
            try:
                yield system
            finally:
                for process in system.processes:
                    stop_process(process, timeout_s=15, group=True)
                fresh_queues(rabbitmq_url)


@contextmanager
def worker(system: TrackingSystem, name: str, **env: str) -> Iterator[None]:
    """A worker of one process, ready, with ``env`` over the system's environment."""
    saved = dict(system.env)
    system.env.update(env)
    try:
        process = system.start_worker(name, concurrency=1)
    finally:
        system.env = saved
    wait_for(lambda: "ready." in system.log(name) or process.poll() is not None, 60,
             f"worker {name} ready")  # fmt: skip
    assert process.poll() is None, system.log(name)
    try:
        yield
    finally:
        stop_process(process, timeout_s=15, group=True)


def failed_runs(system: TrackingSystem, name: str, task_id: str) -> int:
    """Runs of the task that failed and went back to RabbitMQ (task_base's line for each)."""
    return system.log(name).count(f"ordersync.sync_fills[{task_id}] failed (OperationalError")


def test_a_task_failing_every_time_is_dead_lettered_after_the_limit_and_replayed(
    poison_system: TrackingSystem, tmp_path: Path
) -> None:
    system, url = poison_system, poison_system.broker_url
    assert url is not None
    with Session(system.engine) as session:
        account_id = get_account(session, ACCOUNT).id
    # A natural poison: the fill sync of a worker whose database is gone (an empty file
    # where it was): every delivery raises OperationalError (no such table), unexpected.
    gone = f"sqlite:///{tmp_path / 'gone.db'}"
    with worker(system, "poison", ORDERSYNC_DATABASE_URL=gone):
        task_id = system.client.send_task(
            "ordersync.sync_fills", args=[account_id], exchange=MONITOR_QUEUE,
            routing_key=MONITOR_QUEUE, mandatory=True,
        ).id  # fmt: skip
        [task] = wait_for(
            lambda: [t for t in dead_letters.list_dead(url, 10) if t.task_id == task_id], 60,
            "the poison task in ordersync.dead",
        )  # fmt: skip
        # RabbitMQ dead-letters a message once its failed deliveries exceed the limit: it ran
        # LIMIT + 1 times, each handed back, and is in no work queue any more.
        assert failed_runs(system, "poison", task_id) == LIMIT + 1
        assert depth(url, MONITOR_QUEUE) == 0
    assert failed_runs(system, "poison", task_id) == LIMIT + 1
    assert (task.task, task.queue, task.reason, task.deaths) == (
        "ordersync.sync_fills", MONITOR_QUEUE, "delivery_limit", 1)  # fmt: skip
    assert task.args is not None
    assert account_id in task.args

    # The cause fixed (a worker on the real database), a replay runs it once, to success,
    # from the queue it died in; the dead-letter queue is empty.
    with worker(system, "fixed"):
        assert dead_letters.replay(url, {task_id}) == 1
        assert dead_letters.count_dead(url) == 0
        succeeded = f"Task ordersync.sync_fills[{task_id}] succeeded"
        wait_for(lambda: succeeded in system.log("fixed"), 30, "the replayed task succeeded")
    assert system.log("fixed").count(f"[{task_id}]") == 2  # received, succeeded
    assert dead_letters.count_dead(url) == 0
    assert failed_runs(system, "poison", task_id) == LIMIT + 1
