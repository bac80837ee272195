"""The base of ordersync's tasks on RabbitMQ (worker/task_base.py): countdowns and ETAs become
routes through the delay levels to the task's own queue, with the due time in a header; a
retry of a delayed message is routed afresh; a work task's unexpected failure goes back to
its queue. Also the publish hook that keeps ``expires`` out of the message TTL, and how a
check reads when it was due."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import Ignore, Reject, Retry
from kombu import Queue
from kombu.exceptions import OperationalError

import worker.celery_app as celery_app
from ordersync.settings import get_settings
from tests.worker.test_delays import bits_and_queue
from worker import delays, tasks
from worker.args import InvalidTaskArguments
from worker.task_base import DUE_HEADER, OrdersyncTask
from worker.topology import DEFAULT_QUEUE, MONITOR_QUEUE

AMQP_URL = "amqp://guest:hunter2@127.0.0.1:5672/ordersync"
SLACK = timedelta(microseconds=2)  # the header is a float timestamp made ISO again
PLUS_2 = timezone(timedelta(hours=2))


@pytest.fixture(autouse=True)
def _nothing_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should this test be the first to touch the real app's configuration (its routes), the
    app resolves no Redis: resolving would start the embedded server."""
    monkeypatch.setattr(celery_app, "resolve_broker_url", lambda: "memory://")
    monkeypatch.setattr(celery_app, "resolve_redis_url", lambda: "cache+memory://")


def _transport(monkeypatch: pytest.MonkeyPatch, broker_url: str | None) -> Iterator[None]:
    if broker_url is None:
        monkeypatch.delenv("ORDERSYNC_CELERY_BROKER_URL", raising=False)
    else:
        monkeypatch.setenv("ORDERSYNC_CELERY_BROKER_URL", broker_url)
    get_settings.cache_clear()
    try:
        yield
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


@pytest.fixture
def on_amqp(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from _transport(monkeypatch, AMQP_URL)


@pytest.fixture
def on_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from _transport(monkeypatch, None)


def _due(options: dict[str, Any]) -> datetime:
    due = datetime.fromisoformat(options["headers"][DUE_HEADER])
    assert due.utcoffset() == timedelta(0)
    return due


def _units_and_queue(options: dict[str, Any]) -> tuple[int, str]:
    assert options["exchange"] == delays.entry_exchange()
    units, queue = bits_and_queue(options["routing_key"])
    assert options["queue"].name == queue
    return units, queue


# --- _amqp_options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_name", "queue"), [("monitor_order", MONITOR_QUEUE), ("place_order", DEFAULT_QUEUE)]
)
@pytest.mark.parametrize("countdown", [0.25, 0.1 + 0.2, 3, 7200.5])
def test_a_countdown_goes_through_the_delay_levels_to_the_tasks_queue(
    task_name: str, queue: str, countdown: float
) -> None:
    task = getattr(tasks, task_name)  # the real task, with the real app's routes
    given = {"countdown": countdown, "priority": 3, "headers": {"other": "kept"}}
    before = datetime.now(UTC)
    options = task._amqp_options(("o-1", "chain", 0), {}, given)
    after = datetime.now(UTC)
    assert options["exchange"] == delays.entry_exchange()
    assert options["routing_key"] == delays.routing_key(countdown, queue)
    assert options["queue"].name == queue
    assert "countdown" not in options
    assert "eta" not in options
    assert options["priority"] == 3
    assert options["headers"]["other"] == "kept"
    delay = timedelta(seconds=countdown)
    assert before + delay - SLACK <= _due(options) <= after + delay + SLACK
    assert given == {"countdown": countdown, "priority": 3, "headers": {"other": "kept"}}


def _in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "eta",
    [
        pytest.param(lambda: _in(2), id="aware"),
        pytest.param(lambda: _in(2).astimezone(PLUS_2), id="aware-not-utc"),
        pytest.param(lambda: _in(2).replace(tzinfo=None), id="naive-is-utc"),
        pytest.param(lambda: _in(2).isoformat(), id="iso"),
        pytest.param(lambda: _in(2).replace(tzinfo=None).isoformat(), id="naive-iso-is-utc"),
    ],
)
def test_an_eta_goes_through_the_delay_levels_and_is_the_due_time(
    eta: Callable[[], datetime | str],
) -> None:
    value = eta()
    due = datetime.fromisoformat(value) if isinstance(value, str) else value
    due = due if due.tzinfo else due.replace(tzinfo=UTC)
    before = datetime.now(UTC)
    options = tasks.monitor_order._amqp_options(("o-1", "chain", 0), {}, {"eta": value})
    after = datetime.now(UTC)
    units, queue = _units_and_queue(options)
    assert queue == MONITOR_QUEUE
    longest, shortest = (due - before).total_seconds(), (due - after).total_seconds()
    assert delays.units_for(shortest) <= units <= delays.units_for(longest)
    assert abs(_due(options) - due) <= SLACK


@pytest.mark.parametrize(
    "when",
    [
        {"countdown": 0},
        {"countdown": -5},
        {"countdown": None},
        {},
        {"eta": datetime.now(UTC) - timedelta(seconds=5)},
        {"eta": (datetime.now(UTC) - timedelta(seconds=5)).isoformat()},
    ],
)
def test_no_delay_leaves_the_task_on_its_ordinary_route(when: dict[str, Any]) -> None:
    options = tasks.monitor_order._amqp_options(("o-1",), {}, {**when, "priority": 1})
    assert options == {"priority": 1}


@pytest.mark.parametrize(
    "exchange", [delays.DELIVER_EXCHANGE, delays.level_name(0), delays.entry_exchange()]
)
def test_a_retry_of_a_delayed_message_does_not_reuse_its_delay_route(exchange: str) -> None:
    """A retry's options carry the delivery info of the message it retries: the delay
    levels' exchange and a key of the old delay. Kept, the retry would go out at once (from
    the deliver exchange) or after the old delay; it must be routed by its own countdown."""
    old_key = delays.routing_key(0.01, DEFAULT_QUEUE)
    retry = {"exchange": exchange, "routing_key": old_key, "redelivered": False}
    before = datetime.now(UTC)
    options = tasks.place_order._amqp_options((), {}, {**retry, "countdown": 1.0})
    assert options["exchange"] == delays.entry_exchange()
    assert options["routing_key"] == delays.routing_key(1.0, DEFAULT_QUEUE)
    assert options["queue"].name == DEFAULT_QUEUE
    assert _due(options) >= before + timedelta(seconds=1) - SLACK
    # Without a countdown it goes by the task's ordinary route, not through the levels.
    assert tasks.place_order._amqp_options((), {}, retry) == {"redelivered": False}


def test_a_retry_of_an_ordinary_message_keeps_its_route_without_a_countdown() -> None:
    retry = {"exchange": MONITOR_QUEUE, "routing_key": MONITOR_QUEUE}
    assert tasks.monitor_order._amqp_options((), {}, retry) == retry


def test_an_explicit_queue_wins_over_the_tasks_route() -> None:
    options = tasks.monitor_order._amqp_options((), {}, {"countdown": 1, "queue": DEFAULT_QUEUE})
    assert _units_and_queue(options) == (100, DEFAULT_QUEUE)


def test_a_countdown_beyond_the_levels_is_refused() -> None:
    with pytest.raises(delays.DelayTooLong):
        tasks.monitor_order._amqp_options((), {}, {"countdown": delays.MAX_DELAY_S + 1})


# --- apply_async: which transport rewrites the options ---------------------------------------


def _capturing_app(monkeypatch: pytest.MonkeyPatch) -> tuple[Celery, list[dict[str, Any]]]:
    app = Celery("test-task-base", task_cls=OrdersyncTask, set_as_current=False)
    sent: list[dict[str, Any]] = []

    def send_task(name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        sent.append(options)

    monkeypatch.setattr(app, "send_task", send_task)
    return app, sent


@pytest.mark.usefixtures("on_amqp")
def test_on_amqp_apply_async_routes_by_delay_and_waits_for_the_confirm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORDERSYNC_CELERY_CONFIRM_TIMEOUT_S", "2.5")
    get_settings.cache_clear()
    app, sent = _capturing_app(monkeypatch)

    @app.task(name="t.delayed", shared=False)
    def delayed() -> None: ...

    delayed.apply_async(countdown=0.3)
    [options] = sent
    assert options["exchange"] == delays.entry_exchange()
    assert options["routing_key"] == delays.routing_key(0.3, DEFAULT_QUEUE)
    assert options["confirm_timeout"] == 2.5
    assert "countdown" not in options


@pytest.mark.usefixtures("on_redis")
def test_on_redis_apply_async_leaves_the_countdown_to_celery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, sent = _capturing_app(monkeypatch)

    @app.task(name="t.delayed", shared=False)
    def delayed() -> None: ...

    delayed.apply_async(countdown=0.3)
    [options] = sent
    assert options["countdown"] == 0.3
    assert options.get("exchange") is None
    assert options.get("routing_key") is None
    assert "confirm_timeout" not in options
    assert DUE_HEADER not in (options.get("headers") or {})


# --- __call__: what a failure becomes ---------------------------------------------------------


def _failing_tasks(error: BaseException) -> tuple[OrdersyncTask, OrdersyncTask]:
    """A work task (requeue_on_failure, refusing InvalidTaskArguments) and a periodic one,
    both raising ``error``."""
    app = Celery("test-task-base", task_cls=OrdersyncTask, set_as_current=False)

    @app.task(name="t.work", shared=False, requeue_on_failure=True, throws=(InvalidTaskArguments,))
    def work() -> None:
        raise error

    @app.task(name="t.periodic", shared=False)
    def periodic() -> None:
        raise error

    return work, periodic


def _raised_as_it_is(error: BaseException, *failing: OrdersyncTask) -> None:
    for task in failing:
        with pytest.raises(type(error)) as raised:
            task()
        assert raised.value is error, task.name


def test_the_real_tasks_declare_which_failures_go_back_to_the_queue() -> None:
    for work in (tasks.place_order, tasks.track_order, tasks.cancel_order,
                 tasks.monitor_order, tasks.sync_fills):  # fmt: skip
        assert work.requeue_on_failure is True, work.name
        assert isinstance(work, OrdersyncTask)
    for refusing in (tasks.place_order, tasks.track_order, tasks.monitor_order):
        assert InvalidTaskArguments in refusing.throws, refusing.name
    for periodic in (tasks.reconcile_open_orders, tasks.deep_reconcile, tasks.revive_monitors,
                     tasks.relay_events, tasks.purge_closed_orders):  # fmt: skip
        assert periodic.requeue_on_failure is False, periodic.name


@pytest.mark.usefixtures("on_amqp")
def test_on_amqp_an_unexpected_failure_of_a_work_task_goes_back_to_its_queue() -> None:
    error = RuntimeError("the database blinked")
    work, _ = _failing_tasks(error)
    with pytest.raises(Reject) as rejected:
        work()
    assert rejected.value.requeue is True
    assert rejected.value.reason == "RuntimeError: the database blinked"
    assert rejected.value.__cause__ is error


class _NeedsTwoArguments(Exception):
    def __init__(self, account: str, variable: str) -> None:
        super().__init__(f"{account}: {variable} is not set")


@pytest.mark.usefixtures("on_amqp")
def test_on_amqp_the_reject_of_any_failure_reaches_the_workers_main_process() -> None:
    """It is pickled there from the pool process: an exception that cannot be rebuilt
    would end the main process (so the reason is a string)."""
    work, _ = _failing_tasks(_NeedsTwoArguments("desk", "KEY_ID"))
    with pytest.raises(Reject) as rejected:
        work()
    copy = pickle.loads(pickle.dumps(rejected.value))
    assert copy.requeue is True
    assert copy.reason == "_NeedsTwoArguments: desk: KEY_ID is not set"


@pytest.mark.usefixtures("on_amqp")
def test_on_amqp_a_refused_call_is_not_requeued() -> None:
    error = InvalidTaskArguments("t.work", "order_id must be a string")
    work, _ = _failing_tasks(error)
    _raised_as_it_is(error, work)


@pytest.mark.usefixtures("on_amqp")
@pytest.mark.parametrize(
    "control",
    [Retry("again", when=1), Ignore(), Reject("poison", requeue=True)],
    ids=["retry", "ignore", "reject-requeue"],
)
def test_on_amqp_celerys_own_outcomes_pass_through(control: Exception) -> None:
    _raised_as_it_is(control, *_failing_tasks(control))


@pytest.mark.usefixtures("on_amqp")
def test_on_amqp_a_reject_without_requeue_passes_through_a_periodic_task_only() -> None:
    control = Reject("retry not stored", requeue=False)
    work, periodic = _failing_tasks(control)
    _raised_as_it_is(control, periodic)
    with pytest.raises(Reject) as rejected:
        work()
    assert rejected.value.requeue is True


@pytest.mark.usefixtures("on_amqp")
def test_on_amqp_a_periodic_task_fails_as_it_is() -> None:
    error = RuntimeError("boom")
    _, periodic = _failing_tasks(error)
    _raised_as_it_is(error, periodic)


@pytest.mark.usefixtures("on_redis")
def test_on_redis_a_failure_is_raised_as_it_is() -> None:
    error = RuntimeError("boom")
    _raised_as_it_is(error, *_failing_tasks(error))


@pytest.mark.usefixtures("on_amqp")
def test_on_amqp_a_retry_that_could_not_be_published_goes_back_to_the_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = Celery("test-task-base", task_cls=OrdersyncTask, set_as_current=False)

    def unconfirmed(*_: Any, **__: Any) -> None:
        raise OperationalError("publish not confirmed within the confirm timeout")

    monkeypatch.setattr(app, "send_task", unconfirmed)

    @app.task(name="t.retrying", shared=False, bind=True, requeue_on_failure=True)
    def retrying(self: OrdersyncTask) -> None:
        raise self.retry(countdown=1)

    # As a worker runs it: a request from a message, not a direct call.
    delivery = {"exchange": DEFAULT_QUEUE, "routing_key": DEFAULT_QUEUE}
    retrying.push_request(id="t-1", called_directly=False, delivery_info=delivery, retries=0)
    try:
        with pytest.raises(Reject) as rejected:
            retrying()
    finally:
        retrying.pop_request()
    assert rejected.value.requeue is True


# --- the publish hook and the due header --------------------------------------------------------


@pytest.mark.parametrize(("amqp", "kept"), [(True, False), (False, True)])
def test_expires_becomes_no_message_ttl_on_amqp_only(
    monkeypatch: pytest.MonkeyPatch, amqp: bool, kept: bool
) -> None:
    monkeypatch.setattr(celery_app, "_AMQP", amqp)
    properties = {"expiration": "30000", "correlation_id": "c-1", "priority": 0}
    celery_app._no_broker_expiry(properties=properties, sender="ordersync.revive_monitors")
    assert ("expiration" in properties) is kept
    assert properties["correlation_id"] == "c-1"
    assert properties["priority"] == 0
    celery_app._no_broker_expiry(properties=None)  # a publish without properties


@pytest.mark.parametrize(("amqp", "expiration"), [(True, None), (False, "30000")])
def test_a_published_task_with_expires_carries_a_ttl_on_redis_only(
    monkeypatch: pytest.MonkeyPatch, amqp: bool, expiration: str | None
) -> None:
    """Through Celery's own publish (kombu's in-memory transport): the hook is connected."""
    monkeypatch.setattr(celery_app, "_AMQP", amqp)
    queue = f"test-expiry-{uuid.uuid4().hex[:8]}"
    app = Celery("test-task-base", broker="memory://", set_as_current=False)
    app.conf.task_default_queue = queue
    app.send_task("t.expiring", expires=30)
    with app.connection_for_write() as connection:
        message = Queue(queue).bind(connection.default_channel).get(no_ack=True)
    assert message is not None
    assert message.properties.get("expiration") == expiration
    assert message.headers["expires"] is not None  # the worker still discards it when expired


def test_a_check_reads_when_it_was_due_from_its_header_or_request() -> None:
    due = "2026-01-02T03:04:05.600000+00:00"
    assert tasks.due_of(SimpleNamespace(headers={DUE_HEADER: due})) == due
    assert tasks.due_of(SimpleNamespace(headers=None, **{DUE_HEADER: due})) == due
    assert tasks.due_of(SimpleNamespace(headers={"other": 1}, **{DUE_HEADER: due})) == due
    assert tasks.due_of(SimpleNamespace(headers={})) is None
    assert tasks.due_of(SimpleNamespace()) is None
