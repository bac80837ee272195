"""The delay levels' arithmetic (worker/delays.py), and a model of RabbitMQ's topic routing
through the levels as worker/topology.py binds them: a key written for a delay waits exactly
its units in level queues, then reaches its own work queue and no other."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from worker.delays import (
    DELIVER_EXCHANGE,
    LEVELS,
    MAX_DELAY_S,
    UNIT_MS,
    DelayTooLong,
    delivery_pattern,
    entry_exchange,
    is_delay_exchange,
    level_name,
    level_pattern,
    routing_key,
    units_for,
)
from worker.topology import DEFAULT_QUEUE, MONITOR_QUEUE, WORK_QUEUES

# units_for rounds the delay in ms to 6 decimals before rounding up, so that float noise
# (0.1 + 0.2 = 0.30000000000000004) does not cost a whole extra unit: a delay may therefore
# be served at most this much (a nanosecond, in ms) short.
ROUNDING_MS = 1e-6


def bits_and_queue(key: str) -> tuple[int, str]:
    """The units a routing key encodes, and the queue named at its end."""
    words = key.split(".")
    bits, queue = words[:LEVELS], ".".join(words[LEVELS:])
    assert all(bit in ("0", "1") for bit in bits), key
    return int("".join(bits), 2), queue


# --- an AMQP topic exchange, in miniature -------------------------------------------------


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: words split on ".", ``*`` is exactly one word, ``#`` zero or
    more."""
    p, k = pattern.split("."), key.split(".")

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(p):
            return j == len(k)
        if p[i] == "#":
            return match(i + 1, j) or (j < len(k) and match(i, j + 1))
        return j < len(k) and p[i] in ("*", k[j]) and match(i + 1, j + 1)

    return match(0, 0)


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("*.a", "x.a", True),
        ("*.a", "a", False),
        ("*.a", "x.y.a", False),
        ("#.a", "a", True),
        ("#.a", "x.y.a", True),
        ("#.a", "x.a.b", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("a.#", "b.a", False),
        ("*.*.1.#", "0.0.1.celery", True),
        ("*.*.1.#", "0.1.1.celery", True),
        ("*.*.1.#", "0.0.0.celery", False),
        ("#.celery", "1.0.ordersync.monitor", False),
        ("#.ordersync.monitor", "1.0.ordersync.monitor", True),
        ("#.ordersync.monitor", "1.0.celery", False),
    ],
)
def test_the_topic_matcher_follows_amqp(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


Binding = tuple[str, str, str, str]  # (source exchange, "queue" | "exchange", destination, pattern)


@dataclass(frozen=True)
class Topology:
    """Bindings, and each delay queue's TTL (ms) and dead-letter exchange; a bound queue
    without a TTL is where a message stays (a work queue)."""

    bindings: frozenset[Binding]
    delay_queues: dict[str, tuple[int, str]]


def levels_as_declared(work_queues: Iterable[str] = WORK_QUEUES) -> Topology:
    """What worker/topology.py's ``declare`` binds: level k's queue by a 1 bit, the next
    exchange down by a 0 bit; level 0 goes on to the deliver exchange, which each work queue
    is bound to by its own name."""
    bindings: set[Binding] = set()
    delay_queues: dict[str, tuple[int, str]] = {}
    for level in range(LEVELS):
        name = level_name(level)
        after = level_name(level - 1) if level > 0 else DELIVER_EXCHANGE
        delay_queues[name] = (UNIT_MS * 2**level, after)
        bindings.add((name, "queue", name, level_pattern(level, "1")))
        bindings.add((name, "exchange", after, level_pattern(level, "0")))
    for queue in work_queues:
        bindings.add((DELIVER_EXCHANGE, "queue", queue, delivery_pattern(queue)))
    return Topology(frozenset(bindings), delay_queues)


def route(topology: Topology, exchange: str, key: str) -> list[tuple[str, int]]:
    """Every work queue a message published to ``exchange`` with ``key`` ends in, each with
    the TTLs (ms) it waited out on the way; dead-lettering keeps the routing key."""
    by_source: dict[str, list[Binding]] = {}
    for binding in topology.bindings:
        by_source.setdefault(binding[0], []).append(binding)
    arrived: list[tuple[str, int]] = []
    pending = [(exchange, 0)]
    hops = 0
    while pending:
        hops += 1
        assert hops < 10 * LEVELS, "the message goes round in circles"
        source, waited = pending.pop()
        for _, kind, destination, pattern in by_source.get(source, []):
            if not topic_matches(pattern, key):
                continue
            if kind == "exchange":
                pending.append((destination, waited))
            elif destination in topology.delay_queues:
                ttl_ms, dead_letter_exchange = topology.delay_queues[destination]
                pending.append((dead_letter_exchange, waited + ttl_ms))
            else:
                arrived.append((destination, waited))
    return sorted(arrived)


# --- units --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay_s", "units"),
    [
        (0.01, 1),
        (0.02, 2),
        (0.1, 10),
        (0.15, 15),
        (0.3, 30),
        (0.1 + 0.2, 30),  # 0.30000000000000004: a plain ceil would make it 31
        (57 * 0.01, 57),  # 0.5700000000000001
        (0.35000000000000003, 35),
        (0.1 * 1.5, 15),  # the monitor's backoff: 0.15000000000000002
        (0.1 * 1.5 * 1.5, 23),  # 0.225 rounds up
        (4.03, 403),  # 4.03 * 1000 is 4029.9999999999995
        (2.01, 201),
        (8.05, 805),
        (1.1, 110),
        (0.011, 2),  # a part of a unit is a whole unit: never early
        (0.019, 2),
        (0.0100001, 2),
        (1e-9, 1),  # tiny but positive: at least one unit
        (0.001, 1),
        (5e-324, 1),
        (MAX_DELAY_S, 2**LEVELS - 1),
    ],
)
def test_units_round_up_and_ignore_float_noise(delay_s: float, units: int) -> None:
    assert units_for(delay_s) == units


@given(units=st.integers(1, 2**LEVELS - 1))
def test_a_whole_number_of_units_is_exactly_that_many(units: int) -> None:
    assert units_for(units * UNIT_MS / 1000) == units
    assert units_for(units * 0.01) == units
    assert units_for(units / 100) == units


@given(delay_s=st.floats(min_value=0, max_value=MAX_DELAY_S, exclude_min=True))
@example(delay_s=0.3)
@example(delay_s=0.015)
@example(delay_s=MAX_DELAY_S)
def test_a_delay_is_never_served_early_nor_a_whole_unit_late(delay_s: float) -> None:
    units = units_for(delay_s)
    delay_ms = delay_s * 1000
    assert units >= 1
    assert units * UNIT_MS >= delay_ms - ROUNDING_MS
    assert units == 1 or (units - 1) * UNIT_MS < delay_ms


# --- routing keys and patterns --------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay_s", "queue", "key"),
    [
        (0.01, "celery", "0." * 23 + "1.celery"),
        (0.1, "celery", "0." * 20 + "1.0.1.0.celery"),  # 10 units
        (0.25, MONITOR_QUEUE, "0." * 19 + "1.1.0.0.1.ordersync.monitor"),  # 25 units
        (0.3, MONITOR_QUEUE, "0." * 19 + "1.1.1.1.0.ordersync.monitor"),  # 30 units
        (2**23 * UNIT_MS / 1000, "celery", "1." + "0." * 23 + "celery"),
        (MAX_DELAY_S, "celery", "1." * 24 + "celery"),
    ],
)
def test_a_routing_key_is_the_delay_in_binary_then_the_queue(
    delay_s: float, queue: str, key: str
) -> None:
    assert routing_key(delay_s, queue) == key
    assert bits_and_queue(key) == (units_for(delay_s), queue)


def test_a_delay_beyond_the_levels_is_refused_with_its_length() -> None:
    routing_key(MAX_DELAY_S, "celery")  # the longest still fits
    for too_long in (MAX_DELAY_S + 0.001, 2 * 86400.0, math.inf):
        with pytest.raises(DelayTooLong) as refused:
            routing_key(too_long, "celery")
        assert refused.value.delay_s == too_long
        assert isinstance(refused.value, ValueError)
        assert f"{MAX_DELAY_S:g}" in str(refused.value)
    assert MAX_DELAY_S == (2**LEVELS - 1) * UNIT_MS / 1000
    assert MAX_DELAY_S > 46 * 3600


def test_level_and_delivery_patterns() -> None:
    assert level_pattern(LEVELS - 1, "1") == "1.#"
    assert level_pattern(LEVELS - 1, "0") == "0.#"
    assert level_pattern(0, "1") == "*." * 23 + "1.#"
    assert level_pattern(3, "0") == "*." * 20 + "0.#"
    assert delivery_pattern("celery") == "#.celery"
    assert delivery_pattern(MONITOR_QUEUE) == "#.ordersync.monitor"
    key = routing_key(0.25, MONITOR_QUEUE)  # 11001 in binary: levels 4, 3 and 0
    ones = {level for level in range(LEVELS) if topic_matches(level_pattern(level, "1"), key)}
    zeros = {level for level in range(LEVELS) if topic_matches(level_pattern(level, "0"), key)}
    assert ones == {4, 3, 0}
    assert zeros == set(range(LEVELS)) - ones


def test_names_of_the_levels_and_exchanges() -> None:
    assert level_name(0) == "ordersync.delay.0"
    assert entry_exchange() == level_name(LEVELS - 1) == "ordersync.delay.23"
    assert DELIVER_EXCHANGE == "ordersync.delay.deliver"
    assert is_delay_exchange(DELIVER_EXCHANGE)
    assert is_delay_exchange(level_name(5))
    assert is_delay_exchange(entry_exchange())
    for other in ("celery", MONITOR_QUEUE, "ordersync.dead", "ordersync.delay", "", None, 3):
        assert not is_delay_exchange(other)


# --- routing through the levels -------------------------------------------------------------


@given(
    delay_s=st.one_of(
        st.floats(min_value=0, max_value=MAX_DELAY_S, exclude_min=True),
        st.integers(1, 2**LEVELS - 1).map(lambda units: units * UNIT_MS / 1000),
    ),
    queue=st.sampled_from(WORK_QUEUES),
)
@example(delay_s=0.01, queue=DEFAULT_QUEUE)
@example(delay_s=0.25, queue=MONITOR_QUEUE)
@example(delay_s=MAX_DELAY_S, queue=MONITOR_QUEUE)
@example(delay_s=2**23 * UNIT_MS / 1000, queue=DEFAULT_QUEUE)
def test_a_delayed_message_waits_its_units_then_reaches_its_queue_only(
    delay_s: float, queue: str
) -> None:
    key = routing_key(delay_s, queue)
    assert route(levels_as_declared(), entry_exchange(), key) == [
        (queue, units_for(delay_s) * UNIT_MS)
    ]


def test_the_model_notices_a_wrong_binding() -> None:
    """The routing model is not vacuous: binding a level by the wrong bit changes the wait,
    and a work queue bound by a too-wide pattern gets the other queue's messages."""
    right = levels_as_declared()
    key = routing_key(0.25, MONITOR_QUEUE)
    swapped = {
        (source, kind, dest, level_pattern(3, "0") if pattern == level_pattern(3, "1") else
         level_pattern(3, "1") if pattern == level_pattern(3, "0") else pattern)
        for source, kind, dest, pattern in right.bindings
    }  # fmt: skip
    assert route(Topology(frozenset(swapped), right.delay_queues), entry_exchange(), key) != [
        (MONITOR_QUEUE, 250)
    ]
    greedy = set(right.bindings) | {(DELIVER_EXCHANGE, "queue", DEFAULT_QUEUE, "#")}
    assert route(Topology(frozenset(greedy), right.delay_queues), entry_exchange(), key) == [
        (DEFAULT_QUEUE, 250),
        (MONITOR_QUEUE, 250),
    ]
