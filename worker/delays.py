"""Delayed delivery on RabbitMQ with 10 ms steps, for the monitor's sub-second countdowns.

Quorum queues cannot hold countdown messages in a worker the way Redis does: their prefetch
is fixed per consumer, so a message held until its time blocks a slot of the worker all
along. Celery's own native delayed delivery moves the wait into RabbitMQ, but in whole
seconds (and truncates, so a 0.1 s countdown cannot be sent at all). This is the same
scheme with 10 ms units: a delay of N units is written in binary into the routing key; level
k is a queue whose messages all live 2^k units (one TTL per queue, so they expire in order)
and then dead-letter to level k-1; a 0 bit skips its level through an exchange binding.
After level 0 the message reaches ``DELIVER_EXCHANGE``, where each work queue is bound by its
own name at the end of the key. Every queue is a durable quorum queue with at-least-once
dead-lettering: a delayed task survives a RabbitMQ restart and is never dropped on a hop.
A message never arrives early (delays round up), and arrives late by the hops' latency.
"""

from __future__ import annotations

import math

UNIT_MS = 10
LEVELS = 24  # the longest delay: 2**24 units, about 46 hours
PREFIX = "ordersync.delay"
DELIVER_EXCHANGE = f"{PREFIX}.deliver"
MAX_DELAY_S = (2**LEVELS - 1) * UNIT_MS / 1000


class DelayTooLong(ValueError):
    """A countdown beyond what the delay levels can hold."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(f"a delay of {delay_s:g} s is beyond the longest of {MAX_DELAY_S:g} s")
        self.delay_s = delay_s


def level_name(level: int) -> str:
    """The exchange and the queue of one level (they share the name)."""
    return f"{PREFIX}.{level}"


def entry_exchange() -> str:
    """Where every delayed message is published: the highest level's exchange."""
    return level_name(LEVELS - 1)


def units_for(delay_s: float) -> int:
    """The delay in units, rounded up: a delayed task never runs early."""
    return max(1, math.ceil(round(delay_s * 1000, 6) / UNIT_MS))


def routing_key(delay_s: float, queue: str) -> str:
    """``b23.b22. ... .b0.<queue>``: the delay's bits from the highest level down."""
    if delay_s > MAX_DELAY_S:
        raise DelayTooLong(delay_s)
    bits = format(units_for(delay_s), f"0{LEVELS}b")
    return ".".join(bits) + "." + queue


def is_delay_exchange(exchange: object) -> bool:
    """Whether a message came (or would go) through the delay levels: its retry must not
    reuse that routing."""
    return isinstance(exchange, str) and exchange.startswith(PREFIX + ".")


def level_pattern(level: int, bit: str) -> str:
    """The topic pattern matching keys whose bit for ``level`` is ``bit``."""
    return "*." * (LEVELS - 1 - level) + bit + ".#"


def delivery_pattern(queue: str) -> str:
    """How a work queue is bound to ``DELIVER_EXCHANGE``: by its name at the end."""
    return "#." + queue
