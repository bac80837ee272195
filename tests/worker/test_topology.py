"""ordersync's queues on RabbitMQ (worker/topology.py): what ``declare`` binds, checked call
by call against the delay levels' routing model (tests/worker/test_delays.py), and on a real
RabbitMQ: idempotent, delayed messages wait their delay and reach their own queue only, and a
message returned more often than the delivery limit is dead-lettered."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu import Connection, Producer, Queue
from kombu.message import Message

from ordersync.settings import Settings
from tests.rabbitmq import purge
from tests.worker.test_delays import Binding, Topology, levels_as_declared, route
from worker import delays, topology
from worker.topology import (
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DEFAULT_QUEUE,
    MONITOR_QUEUE,
    WORK_QUEUES,
    all_queue_names,
    quorum_arguments,
    work_queues,
)

LEVEL_NAMES = {delays.level_name(k) for k in range(delays.LEVELS)}


# --- unit: the queues and what declare asks of the broker ---------------------------------


def test_on_redis_the_work_queues_are_plain_names() -> None:
    queues = work_queues(False, 5)
    assert [q.name for q in queues] == [MONITOR_QUEUE, DEFAULT_QUEUE]
    assert all(not q.queue_arguments for q in queues)


def test_on_rabbitmq_the_work_queues_are_quorum_queues_with_the_limit_and_dead_letters() -> None:
    queues = work_queues(True, 7)
    assert [q.name for q in queues] == [MONITOR_QUEUE, DEFAULT_QUEUE]
    for queue in queues:
        assert queue.queue_arguments == {
            "x-queue-type": "quorum",
            "x-delivery-limit": 7,
            "x-dead-letter-exchange": DEAD_EXCHANGE,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        assert queue.durable
        assert (queue.exchange.name, queue.exchange.type) == (queue.name, "direct")
        assert queue.routing_key == queue.name
    assert work_queues(True, 1)[0].queue_arguments["x-delivery-limit"] == 1


def test_all_queue_names_are_every_queue_declared() -> None:
    names = all_queue_names()
    assert len(names) == len(set(names)) == len(WORK_QUEUES) + 1 + delays.LEVELS
    assert set(names) == {MONITOR_QUEUE, DEFAULT_QUEUE, DEAD_QUEUE} | LEVEL_NAMES


class _RecordingChannel:
    """Takes the calls kombu makes while declaring, as a broker would receive them."""

    def __init__(self) -> None:
        self.exchanges: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.bindings: set[Binding] = set()
        self.closed = False

    def prepare_queue_arguments(self, arguments: dict[str, Any], **_: Any) -> dict[str, Any]:
        return dict(arguments)

    def exchange_declare(self, exchange: str, **options: Any) -> None:
        self.exchanges[exchange] = options

    def queue_declare(self, queue: str, **options: Any) -> tuple[str, int, int]:
        self.queues[queue] = options
        return queue, 0, 0

    def queue_bind(self, queue: str, exchange: str, routing_key: str, **_: Any) -> None:
        self.bindings.add((exchange, "queue", queue, routing_key))

    def exchange_bind(self, destination: str, source: str, routing_key: str, **_: Any) -> None:
        self.bindings.add((source, "exchange", destination, routing_key))

    def close(self) -> None:
        self.closed = True


class _RecordingConnection:
    def __init__(self) -> None:
        self.recorded = _RecordingChannel()

    def channel(self) -> _RecordingChannel:
        return self.recorded


def _declared(delivery_limit: int) -> _RecordingChannel:
    connection = _RecordingConnection()
    topology.declare(connection, delivery_limit)  # type: ignore[arg-type]
    return connection.recorded


def test_declare_binds_the_delay_levels_as_the_routing_model_has_them() -> None:
    recorded = _declared(5)
    model = levels_as_declared(WORK_QUEUES)
    delay_bindings = {
        b for b in recorded.bindings if b[0] in LEVEL_NAMES | {delays.DELIVER_EXCHANGE}
    }
    assert delay_bindings == model.bindings
    delay_queues = {
        name: (
            options["arguments"]["x-message-ttl"],
            options["arguments"]["x-dead-letter-exchange"],
        )
        for name, options in recorded.queues.items()
        if name in LEVEL_NAMES
    }
    assert delay_queues == model.delay_queues
    # So the routing the model proves is the routing declare makes.
    as_recorded = Topology(frozenset(delay_bindings), delay_queues)
    for delay_s, queue in [(0.01, DEFAULT_QUEUE), (0.25, MONITOR_QUEUE), (3600.0, MONITOR_QUEUE),
                           (delays.MAX_DELAY_S, DEFAULT_QUEUE)]:  # fmt: skip
        key = delays.routing_key(delay_s, queue)
        assert route(as_recorded, delays.entry_exchange(), key) == [
            (queue, delays.units_for(delay_s) * delays.UNIT_MS)
        ]


def test_declare_makes_every_queue_durable_quorum_and_loss_free() -> None:
    recorded = _declared(9)
    assert set(recorded.queues) == set(all_queue_names())
    for name, options in recorded.queues.items():
        assert options["durable"] is True, name
        assert options["arguments"]["x-queue-type"] == "quorum", name
    for name in LEVEL_NAMES:
        arguments = recorded.queues[name]["arguments"]
        assert arguments["x-dead-letter-strategy"] == "at-least-once", name
        assert arguments["x-overflow"] == "reject-publish", name  # at-least-once needs it
    for name in WORK_QUEUES:
        assert recorded.queues[name]["arguments"] == quorum_arguments(9)
        assert (name, "queue", name, name) in recorded.bindings  # Celery's own direct route
    for name in LEVEL_NAMES | {delays.DELIVER_EXCHANGE}:
        assert recorded.exchanges[name]["type"] == "topic", name
        assert recorded.exchanges[name]["durable"] is True, name
    assert recorded.exchanges[DEAD_EXCHANGE]["type"] == "fanout"
    assert (DEAD_EXCHANGE, "queue", DEAD_QUEUE, "") in recorded.bindings
    assert recorded.closed


# --- integration: a real RabbitMQ (3.10) ----------------------------------------------------


def _delivery_limit() -> int:
    """The configured default: the session's vhost is shared with the system tests, and a
    quorum queue cannot be declared again with another limit."""
    return Settings(_env_file=None).celery_delivery_limit  # type: ignore[call-arg]


@pytest.fixture
def broker(rabbitmq_url: str) -> Iterator[Connection]:
    with Connection(rabbitmq_url, connect_timeout=5) as connection:
        topology.declare(connection, _delivery_limit())
        purge(rabbitmq_url)
        yield connection


def _queues(connection: Connection) -> dict[str, Any]:
    """The queues to read from (``get`` declares nothing)."""
    return {name: Queue(name).bind(connection.default_channel) for name in all_queue_names()}


def _publish(connection: Connection, body: dict[str, str], exchange: str, key: str) -> None:
    Producer(connection.default_channel).publish(
        body, exchange=exchange, routing_key=key, serializer="json"
    )


def _poll(get: Callable[[], Message | None], timeout_s: float, what: str) -> tuple[Message, float]:
    """The first message ``get`` returns, and the monotonic time it was in hand."""
    deadline = time.monotonic() + timeout_s
    while True:
        message = get()
        in_hand = time.monotonic()
        if message is not None:
            return message, in_hand
        if in_hand > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.002)  # a poll interval: the deadline, not this, bounds the wait


@pytest.mark.integration
def test_declare_is_idempotent(rabbitmq_url: str) -> None:
    for _ in range(2):
        with Connection(rabbitmq_url, connect_timeout=5) as connection:
            topology.declare(connection, _delivery_limit())
    with Connection(rabbitmq_url, connect_timeout=5) as connection:
        channel = connection.channel()
        try:
            for name in all_queue_names():
                channel.queue_declare(queue=name, passive=True)  # raises if missing
        finally:
            channel.close()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("delay_s", "queue", "other"),
    [(0.25, MONITOR_QUEUE, DEFAULT_QUEUE), (0.13, DEFAULT_QUEUE, MONITOR_QUEUE)],
)
def test_a_delayed_message_arrives_after_its_delay_in_its_queue_only(
    broker: Connection, delay_s: float, queue: str, other: str
) -> None:
    queues = _queues(broker)
    marker = uuid.uuid4().hex
    published = time.monotonic()
    _publish(
        broker, {"marker": marker}, delays.entry_exchange(), delays.routing_key(delay_s, queue)
    )
    message, in_hand = _poll(lambda: queues[queue].get(no_ack=True), 20, f"the delayed {marker}")
    assert message.decode() == {"marker": marker}
    assert in_hand - published >= delay_s, "arrived before its delay"
    # Nothing went to the other queue: a message sent there now is the first it holds.
    sentinel = uuid.uuid4().hex
    _publish(broker, {"marker": sentinel}, "", other)
    first, _ = _poll(lambda: queues[other].get(no_ack=True), 10, f"the sentinel in {other}")
    assert first.decode() == {"marker": sentinel}
    assert queues[other].get(no_ack=True) is None


@pytest.mark.integration
def test_a_message_returned_past_the_delivery_limit_is_dead_lettered(broker: Connection) -> None:
    queues = _queues(broker)
    marker = uuid.uuid4().hex
    _publish(broker, {"marker": marker}, "", DEFAULT_QUEUE)
    deliveries = 0
    deadline = time.monotonic() + 30
    while (dead := queues[DEAD_QUEUE].get(no_ack=True)) is None:
        assert time.monotonic() < deadline, f"not dead-lettered after {deliveries} deliveries"
        message = queues[DEFAULT_QUEUE].get(no_ack=False)
        if message is None:
            time.sleep(0.002)  # a poll interval: the requeued message is on its way back
            continue
        assert message.decode() == {"marker": marker}
        deliveries += 1
        message.reject(requeue=True)
    assert dead.decode() == {"marker": marker}
    assert deliveries == _delivery_limit() + 1
    deaths = dead.headers["x-death"]
    assert [(d["reason"], d["queue"]) for d in deaths] == [("delivery_limit", DEFAULT_QUEUE)]
    assert queues[DEFAULT_QUEUE].get(no_ack=True) is None
