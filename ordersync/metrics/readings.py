"""Plain reads of the system's live state, the one source of ``ordersync status`` and of the
gauges the metrics collector reads at scrape time.

Each reading is one query or a handful of Redis calls, and writes nothing. A reading whose
source is unreachable raises that source's error (SQLAlchemy's, redis-py's, kombu's); the
caller decides how to show it.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from kombu.connection import Connection
from redis import Redis
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from models.orders import Account, Fill, Order
from models.outbox import OutboxEvent
from ordersync.settings import Settings
from worker.budget import BudgetSize, BudgetStats, bucket_key, stats_key
from worker.heartbeat import (
    RunInfo,
    SweepHealth,
    evaluate,
    first_missing,
    last_runs,
    sweep_intervals,
)
from worker.metrics import WORKER_ONLINE_S, WORKERS_KEY  # each worker writes it every 10 s
from worker.stream_health import PREFIX as HEALTHY_PREFIX
from worker.stream_health import STREAMING
from worker.topology import DEAD_QUEUE, DEFAULT_QUEUE, MONITOR_QUEUE
from worker.webhooks import COUNTS_KEY as WEBHOOK_COUNTS_KEY

# detection_latency looks at no more than this many of the most recently recorded fills.
LATENCY_SAMPLE_MAX: Final = 10_000
BROKER_CONNECT_TIMEOUT_S: Final = 3.0


# --- the database ----------------------------------------------------------------------------


def orders_by_status(session: Session) -> dict[tuple[str, str], int]:
    """(account name, OrderStatus value) -> number of orders, from one GROUP BY."""
    rows = session.execute(
        select(Account.name, Order.status, func.count())
        .join(Account, Order.account_id == Account.id)
        .group_by(Account.name, Order.status)
    )
    return {(name, status.value): int(count) for name, status, count in rows}


def fill_gaps_open(session: Session) -> dict[str, int]:
    """Account name -> its orders the broker reports more filled than their recorded fills,
    every account listed (0 without a gap). ``broker_filled_quantity`` never falls below
    ``filled_quantity``, so the two differing is the gap: exact on SQLite's decimal text."""
    gap = and_(
        Order.account_id == Account.id,
        Order.broker_filled_quantity != Order.filled_quantity,
    )
    rows = session.execute(
        select(Account.name, func.count(Order.id)).outerjoin(Order, gap).group_by(Account.name)
    )
    return {name: int(count) for name, count in rows}


def outbox_backlog(session: Session, now: datetime) -> tuple[int, float | None]:
    """Events not yet published, and the age in seconds of the oldest (None when none)."""
    count, oldest = session.execute(
        select(func.count(), func.min(OutboxEvent.created_at)).where(
            OutboxEvent.published_at.is_(None)
        )
    ).one()
    age_s = None if oldest is None else max(0.0, (now - oldest).total_seconds())
    return int(count), age_s


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Fill detection latency (commit in ordersync minus the broker's execution time) of the
    fills recorded within the last ``window_s``: nearest-rank percentiles, in seconds, None
    without fills. ``count`` is the fills looked at (at most ``LATENCY_SAMPLE_MAX``)."""

    window_s: float
    count: int
    p50_s: float | None
    p90_s: float | None
    p99_s: float | None
    max_s: float | None


def detection_latency(session: Session, now: datetime, window_s: float) -> LatencySummary:
    """Over the fills recorded in ``(now - window_s, now]``, of the ``LATENCY_SAMPLE_MAX``
    last recorded (by id: a range of the primary key, however large the table)."""
    since = now - timedelta(seconds=window_s)
    newest = select(func.max(Fill.id)).scalar_subquery()
    rows = session.execute(
        select(Fill.filled_at, Fill.recorded_at).where(
            Fill.id > newest - LATENCY_SAMPLE_MAX,
            Fill.recorded_at > since,
            Fill.recorded_at <= now,
        )
    )
    latencies = [max(0.0, (recorded - filled).total_seconds()) for filled, recorded in rows]
    return summarize_latency(latencies, window_s)


def summarize_latency(latencies_s: Sequence[float], window_s: float) -> LatencySummary:
    ordered = sorted(latencies_s)
    return LatencySummary(
        window_s, len(ordered), percentile(ordered, 50), percentile(ordered, 90),
        percentile(ordered, 99), ordered[-1] if ordered else None,
    )  # fmt: skip


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile of sorted values: the smallest value with at least ``p``
    percent of the values at or below it."""
    if not ordered:
        return None
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[min(len(ordered), max(rank, 1)) - 1]


# --- the request budget ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetReading:
    """One account's request budget: ``tokens`` in the bucket now (of ``capacity``, the
    whole tokens a full bucket holds), and its counts since Redis was last emptied."""

    account: str
    tokens: float
    capacity: int
    granted: int
    waited: int
    wait_s: float
    exhausted: int
    throttled_429: int


def budgets(
    session: Session, redis: Redis, settings: Settings, now: datetime
) -> list[BudgetReading]:
    """Every active account's bucket refilled to ``now`` (a missing bucket is full; a bucket
    blocked after a 429 stays empty until its reset) and its counts: one query, one
    pipelined Redis round trip."""
    accounts = session.execute(
        select(Account.id, Account.name, Account.rate_limit_per_min)
        .where(Account.is_active)
        .order_by(Account.name)
    ).all()
    pipe = redis.pipeline(transaction=False)
    for account_id, _, _ in accounts:
        pipe.hmget(bucket_key(account_id), ["tokens", "at"])
        pipe.hgetall(stats_key(account_id))
    replies = pipe.execute()
    readings = []
    for index, (_, name, limit) in enumerate(accounts):
        size = BudgetSize.of(
            limit, headroom=settings.rate_limit_headroom,
            sweep_reserve=settings.rate_limit_sweep_reserve,
            monitor_reserve=settings.rate_limit_monitor_reserve,
        )  # fmt: skip
        tokens, at_ms = replies[2 * index]
        stats = _budget_stats(replies[2 * index + 1])
        readings.append(BudgetReading(
            account=name, tokens=bucket_tokens(size, tokens, at_ms, now),
            capacity=math.floor(size.capacity), granted=stats.granted, waited=stats.waited,
            wait_s=stats.wait_ms / 1000, exhausted=stats.exhausted,
            throttled_429=stats.throttled_429,
        ))  # fmt: skip
    return readings


def bucket_tokens(
    size: BudgetSize, tokens: str | bytes | None, at_ms: str | bytes | None, now: datetime
) -> float:
    """The tokens a bucket holds at ``now``, refilled as its Lua scripts do (worker/budget.py)."""
    if tokens is None or at_ms is None:
        return size.capacity
    level, at = float(tokens), float(at_ms)
    now_ms = now.timestamp() * 1000
    if now_ms > at:
        level += (now_ms - at) * size.per_ms
    return max(0.0, min(level, size.capacity))


def _budget_stats(raw: Mapping[Any, Any]) -> BudgetStats:
    counts = {_text(name): int(value) for name, value in raw.items()}
    return BudgetStats(**{f.name: counts.get(f.name, 0) for f in fields(BudgetStats)})


# --- workers and queues ----------------------------------------------------------------------


def workers_seen(redis: Redis, since: datetime) -> dict[str, datetime]:
    """Each worker seen at or after ``since`` -> when it was last seen, oldest first."""
    rows = cast(
        "list[tuple[str | bytes, float]]",
        redis.zrangebyscore(WORKERS_KEY, since.timestamp(), "+inf", withscores=True),
    )
    return {_text(name): datetime.fromtimestamp(float(score), UTC) for name, score in rows}


def workers_online(redis: Redis, now: datetime) -> list[str]:
    """The workers seen within ``WORKER_ONLINE_S`` of ``now``, by name."""
    return sorted(workers_seen(redis, now - timedelta(seconds=WORKER_ONLINE_S)))


def queue_depths(amqp: bool, broker_url: str | None = None) -> dict[str, int | None]:
    """Messages waiting in ``celery`` and ``ordersync.monitor`` (and, on RabbitMQ, in
    ``ordersync.dead``), read by a passive declare: on Redis a queue without messages has
    no key, so 0; on RabbitMQ a queue not declared yet is None. Tasks a worker has already
    taken (prefetched, or waiting out a countdown) are not counted. ``broker_url`` defaults
    to the Celery app's transport; an unreachable broker raises kombu's error."""
    names = (DEFAULT_QUEUE, MONITOR_QUEUE, DEAD_QUEUE) if amqp else (DEFAULT_QUEUE, MONITOR_QUEUE)
    with _broker(broker_url) as connection:
        connection.ensure_connection(max_retries=0)  # kombu's OperationalError at once
        return {name: _depth(connection, name, amqp) for name in names}


def _broker(url: str | None) -> Any:
    if url is not None:
        return Connection(url, connect_timeout=BROKER_CONNECT_TIMEOUT_S)  # type: ignore[no-untyped-call]
    from worker.celery_app import app  # not at import: the worker's modules import this one

    return app.connection_for_read()


def _depth(connection: Any, queue: str, amqp: bool) -> int | None:
    channel = connection.channel()
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except connection.channel_errors:
        return None if amqp else 0
    finally:
        with contextlib.suppress(Exception):  # RabbitMQ closes a channel a declare failed on
            channel.close()


# --- what the beat jobs and webhook runs left in Redis ---------------------------------------


def sweeps(
    redis: Redis, settings: Settings, now: datetime
) -> tuple[dict[str, RunInfo], dict[str, SweepHealth]]:
    """Each sweep's recorded runs and its dead-man verdict at ``now``."""
    runs = last_runs(redis)
    health = evaluate(runs, first_missing(redis), sweep_intervals(settings),
                      settings.sweep_deadman_intervals, now)  # fmt: skip
    return runs, health


def webhook_counts(redis: Redis) -> dict[str, dict[str, Any]]:
    """Endpoint name -> {"pending", "dead", "at"}: what its last delivery run counted."""
    counts: dict[str, dict[str, Any]] = {}
    for name, raw in sorted(redis.hgetall(WEBHOOK_COUNTS_KEY).items()):
        try:
            value = json.loads(raw)
        except ValueError:
            continue  # a garbled entry is skipped; the next run rewrites it
        if isinstance(value, dict):
            counts[_text(name)] = value
    return counts


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def stream_health(session: Session, redis: Redis) -> dict[str, bool]:
    """Per active account with a broker stream, whether its stream is healthy now (one
    query, one pipelined Redis round trip)."""
    names = session.execute(
        select(Account.id, Account.name)
        .where(Account.is_active, Account.broker.in_(STREAMING))
        .order_by(Account.name)
    ).all()
    pipe = redis.pipeline(transaction=False)
    for account_id, _ in names:
        pipe.exists(HEALTHY_PREFIX + account_id)
    replies = pipe.execute()
    return {name: bool(up) for (_, name), up in zip(names, replies, strict=True)}
