"""ordersync's queues, and on RabbitMQ what surrounds them: quorum queues with a delivery
limit, the dead-letter queue for poison messages, and the delay levels (worker/delays.py).

Trading services send to ``celery``; the monitor's own traffic has a queue of its own so a
burst of placements never delays the checks and fill syncs of earlier orders.
"""

from __future__ import annotations

from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from worker import delays

DEFAULT_QUEUE = "celery"
MONITOR_QUEUE = "ordersync.monitor"
WORK_QUEUES = (MONITOR_QUEUE, DEFAULT_QUEUE)
DEAD_EXCHANGE = "ordersync.dead"
DEAD_QUEUE = "ordersync.dead"
DEAD_DELIVERY_LIMIT = 1_000_000  # not -1: RabbitMQ 3.x takes that as "none allowed"


def quorum_arguments(delivery_limit: int) -> dict[str, Any]:
    """A work queue's arguments: replicated, durable, at most ``delivery_limit`` deliveries
    of a message, then dead-lettered without loss (at-least-once needs reject-publish)."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_EXCHANGE,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def work_queues(amqp: bool, delivery_limit: int) -> tuple[Queue, ...]:
    """The queues workers consume, as Celery declares them on this transport."""
    if not amqp:
        return tuple(Queue(name) for name in WORK_QUEUES)
    return tuple(
        Queue(
            name,
            Exchange(name, type="direct", durable=True),
            routing_key=name,
            durable=True,
            queue_arguments=quorum_arguments(delivery_limit),
        )
        for name in WORK_QUEUES
    )


def _quorum(name: str, **arguments: Any) -> Queue:
    return Queue(name, queue_arguments={"x-queue-type": "quorum", **arguments}, durable=True)


def declare(connection: Connection, delivery_limit: int) -> None:
    """Declare (idempotently) everything the work queues rely on, and the work queues:
    run by every worker as its consumer starts, so a RabbitMQ that lost them gets them back."""
    channel = connection.channel()
    try:
        dead = Exchange(DEAD_EXCHANGE, type="fanout", durable=True)
        dead.bind(channel).declare()
        # RabbitMQ 4 gives quorum queues a default delivery limit of 20: reading the dead
        # letters (get, then return them) must never dead-letter them onward, into nowhere.
        dead_queue = _quorum(DEAD_QUEUE, **{"x-delivery-limit": DEAD_DELIVERY_LIMIT}).bind(channel)
        dead_queue.declare()
        dead_queue.bind_to(DEAD_EXCHANGE, routing_key="")

        names = [delays.level_name(k) for k in range(delays.LEVELS)]
        for name in [*names, delays.DELIVER_EXCHANGE]:
            Exchange(name, type="topic", durable=True).bind(channel).declare()
        for level, name in enumerate(names):
            after = names[level - 1] if level > 0 else delays.DELIVER_EXCHANGE
            queue = _quorum(
                name,
                **{
                    "x-message-ttl": delays.UNIT_MS * 2**level,
                    "x-dead-letter-exchange": after,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            ).bind(channel)
            queue.declare()
            queue.bind_to(name, routing_key=delays.level_pattern(level, "1"))
            # A 0 bit: on to the next level at once, through an exchange-to-exchange binding.
            Exchange(after, type="topic").bind(channel).bind_to(
                name, routing_key=delays.level_pattern(level, "0")
            )

        for queue in work_queues(True, delivery_limit):
            bound = queue.bind(channel)
            bound.declare()
            bound.bind_to(delays.DELIVER_EXCHANGE, routing_key=delays.delivery_pattern(queue.name))
    finally:
        channel.close()


def all_queue_names() -> tuple[str, ...]:
    """Every queue ordersync declares on RabbitMQ."""
    levels = tuple(delays.level_name(k) for k in range(delays.LEVELS))
    return (*WORK_QUEUES, DEAD_QUEUE, *levels)
