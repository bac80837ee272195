"""The live readings (ordersync/metrics/readings.py) against real databases (SQLite and
PostgreSQL, migrated by Alembic), a real Redis (local and embedded) and real transports:
counts by account and status, open fill gaps, the outbox backlog, detection percentiles on
known latencies, the request budget refilled as its Lua scripts do, workers online, queue
depths."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import redis
from kombu import Connection, Exchange, Producer
from sqlalchemy.orm import Session

from core.enums import (
    BrokerKind,
    OrderOrigin,
    OrderStatus,
    OrderType,
    ReportSource,
    Side,
    TimeInForce,
)
from models.orders import Account, Fill, Order
from models.outbox import EventKind, add_event
from ordersync.metrics import readings
from ordersync.metrics.readings import (
    WORKERS_KEY,
    BudgetReading,
    LatencySummary,
    budgets,
    detection_latency,
    fill_gaps_open,
    orders_by_status,
    outbox_backlog,
    percentile,
    queue_depths,
    summarize_latency,
    sweeps,
    webhook_counts,
    workers_online,
    workers_seen,
)
from ordersync.settings import Settings
from tests.rabbitmq import free_port, purge
from worker import topology
from worker.budget import bucket_key, stats_key
from worker.heartbeat import DEEP_RECONCILE, RECONCILE_OPEN_ORDERS, Deadman, record_run
from worker.topology import DEAD_QUEUE, DEFAULT_QUEUE, MONITOR_QUEUE
from worker.webhooks import COUNTS_KEY

NOW = datetime(2031, 3, 14, 9, 26, 53, tzinfo=UTC)


def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def add_account(
    session: Session, name: str, *, rate_limit_per_min: int = 200, active: bool = True
) -> Account:
    account = Account(
        name=name, broker=BrokerKind.ALPACA, base_url="http://127.0.0.1:1",
        credentials_env=f"ORDERSYNC_ACCOUNT_{name.upper()}", rate_limit_per_min=rate_limit_per_min,
        is_active=active, created_at=NOW,
    )  # fmt: skip
    session.add(account)
    session.flush()
    return account


def add_order(
    session: Session, account: Account, status: OrderStatus, *, filled: str = "0",
    broker_filled: str = "0",
) -> Order:  # fmt: skip
    key = uuid.uuid4().hex[:12]
    order = Order(
        account_id=account.id, broker=BrokerKind.ALPACA, client_order_id=f"c-{key}",
        broker_order_id=f"b-{key}", origin=OrderOrigin.PLACED, symbol="AAPL", side=Side.BUY,
        order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY, quantity=Decimal(100),
        status=status, filled_quantity=Decimal(filled),
        broker_filled_quantity=Decimal(broker_filled), created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    session.add(order)
    session.flush()
    return order


def add_fill(session: Session, order: Order, *, recorded_at: datetime, latency_s: float) -> None:
    session.add(Fill(
        order_id=order.id, broker_fill_id=uuid.uuid4().hex, quantity=Decimal(1),
        price=Decimal(100), filled_at=recorded_at - timedelta(seconds=latency_s),
        recorded_at=recorded_at, source=ReportSource.MONITOR,
    ))  # fmt: skip
    session.flush()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


# --- the database ----------------------------------------------------------------------------


def test_orders_by_status_counts_per_account_name_and_status(db_session: Session) -> None:
    alpha, beta = add_account(db_session, "alpha"), add_account(db_session, "beta")
    add_account(db_session, "idle")
    for account, status, n in [
        (alpha, OrderStatus.NEW, 2), (alpha, OrderStatus.FILLED, 3),
        (beta, OrderStatus.FILLED, 1), (beta, OrderStatus.PENDING_CANCEL, 1),
    ]:  # fmt: skip
        for _ in range(n):
            add_order(db_session, account, status)

    assert orders_by_status(db_session) == {
        ("alpha", "NEW"): 2, ("alpha", "FILLED"): 3,
        ("beta", "FILLED"): 1, ("beta", "PENDING_CANCEL"): 1,
    }  # fmt: skip


def test_fill_gaps_open_compares_quantities_as_numbers(db_session: Session) -> None:
    """10 against 9 is a gap (as text "10" < "9"); 2.50 against 2.5 is none."""
    alpha, beta = add_account(db_session, "alpha"), add_account(db_session, "beta")
    add_order(db_session, alpha, OrderStatus.PARTIALLY_FILLED, filled="9", broker_filled="10")
    add_order(db_session, alpha, OrderStatus.FILLED, filled="99.5", broker_filled="100")
    add_order(db_session, alpha, OrderStatus.FILLED, filled="2.50", broker_filled="2.5")
    add_order(db_session, beta, OrderStatus.NEW)

    assert fill_gaps_open(db_session) == {"alpha": 2, "beta": 0}


def test_outbox_backlog_counts_unpublished_events_and_ages_the_oldest(
    db_session: Session,
) -> None:
    assert outbox_backlog(db_session, NOW) == (0, None)
    for seconds_ago in (90, 40, 5):
        add_event(db_session, EventKind.ORDER_PLACED, {}, now=NOW - timedelta(seconds=seconds_ago))
    db_session.flush()
    published = add_event(db_session, EventKind.ORDER_FILLED, {}, now=NOW - timedelta(hours=1))
    published.published_at = NOW - timedelta(minutes=59)
    db_session.flush()

    assert outbox_backlog(db_session, NOW) == (3, 90.0)


def test_detection_latency_percentiles_over_the_window(db_session: Session) -> None:
    """Latencies 1..100 s recorded within the window: nearest-rank p50 50, p90 90, p99 99;
    fills recorded before the window or after ``now`` do not count."""
    order = add_order(db_session, add_account(db_session, "alpha"), OrderStatus.FILLED)
    for latency in range(1, 101):
        add_fill(db_session, order, recorded_at=NOW - timedelta(seconds=latency % 60),
                 latency_s=latency)  # fmt: skip
    add_fill(db_session, order, recorded_at=NOW - timedelta(seconds=301), latency_s=1000)
    add_fill(db_session, order, recorded_at=NOW + timedelta(seconds=1), latency_s=1000)

    assert detection_latency(db_session, NOW, 300.0) == LatencySummary(
        window_s=300.0, count=100, p50_s=50.0, p90_s=90.0, p99_s=99.0, max_s=100.0
    )
    within_30_s = sum(1 for latency in range(1, 101) if latency % 60 < 30)
    assert detection_latency(db_session, NOW, 30.0).count == within_30_s


def test_detection_latency_clamps_a_fill_dated_after_its_recording(db_session: Session) -> None:
    order = add_order(db_session, add_account(db_session, "alpha"), OrderStatus.FILLED)
    add_fill(db_session, order, recorded_at=NOW, latency_s=-2.5)  # the broker's clock ahead
    add_fill(db_session, order, recorded_at=NOW, latency_s=0.25)

    summary = detection_latency(db_session, NOW, 60.0)
    assert (summary.count, summary.p50_s, summary.max_s) == (2, 0.0, 0.25)


def test_detection_latency_without_fills(db_session: Session) -> None:
    assert detection_latency(db_session, NOW, 300.0) == LatencySummary(
        300.0, 0, None, None, None, None
    )


def test_detection_latency_reads_only_the_most_recently_recorded_fills(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readings, "LATENCY_SAMPLE_MAX", 5)
    order = add_order(db_session, add_account(db_session, "alpha"), OrderStatus.FILLED)
    for latency in range(1, 11):  # recorded in this order: the last five are 6..10 s
        add_fill(db_session, order, recorded_at=NOW, latency_s=latency)

    summary = detection_latency(db_session, NOW, 300.0)
    assert (summary.count, summary.p50_s, summary.max_s) == (5, 8.0, 10.0)


def test_nearest_rank_percentiles() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 1) == percentile([7.0], 99) == 7.0
    ten = [float(n) for n in range(1, 11)]
    assert [percentile(ten, p) for p in (0, 10, 11, 50, 90, 91, 99, 100)] == [
        1.0, 1.0, 2.0, 5.0, 9.0, 10.0, 10.0, 10.0,
    ]  # fmt: skip
    assert summarize_latency([3.0, 1.0, 2.0], 60.0) == LatencySummary(60.0, 3, 2.0, 3.0, 3.0, 3.0)


# --- the request budget ----------------------------------------------------------------------


def test_budgets_refill_each_bucket_to_now(db_session: Session, client: redis.Redis) -> None:
    """200/min at headroom 0.8: a 40-token bucket refilling 120 tokens a minute (2 per s)."""
    names = {n: add_account(db_session, f"{n}-{uuid.uuid4().hex[:6]}") for n in "abcde"}
    add_account(db_session, f"off-{uuid.uuid4().hex[:6]}", active=False)
    small = add_account(db_session, f"f-{uuid.uuid4().hex[:6]}", rate_limit_per_min=10)
    now_ms = NOW.timestamp() * 1000
    buckets = {
        "a": (10.0, now_ms - 5000),  # 5 s ago: +10
        "b": (39.0, now_ms - 60_000),  # a minute ago: capped at 40
        "c": (0.0, now_ms + 20_000),  # blocked after a 429 until 20 s from now
        "d": (12.5, now_ms),
    }  # "e": no bucket (expired when full): full
    keys = [bucket_key(a.id) for a in [*names.values(), small]] + [stats_key(names["a"].id)]
    try:
        for letter, (tokens, at) in buckets.items():
            client.hset(bucket_key(names[letter].id), mapping={"tokens": repr(tokens), "at": at})
        client.hset(stats_key(names["a"].id), mapping={
            "granted": 70, "waited": 4, "wait_ms": 2500, "exhausted": 1, "throttled_429": 3,
        })  # fmt: skip
        client.hset(bucket_key(small.id), mapping={"tokens": "0.5", "at": now_ms - 1000})

        readings_by_name = {b.account: b for b in budgets(db_session, client, settings(), NOW)}
    finally:
        client.delete(*keys)

    assert set(readings_by_name) == {a.name for a in [*names.values(), small]}  # active only
    tokens = {letter: readings_by_name[a.name].tokens for letter, a in names.items()}
    assert tokens == pytest.approx({"a": 20.0, "b": 40.0, "c": 0.0, "d": 12.5, "e": 40.0})
    assert readings_by_name[names["a"].name] == BudgetReading(
        account=names["a"].name, tokens=pytest.approx(20.0), capacity=40, granted=70, waited=4,
        wait_s=2.5, exhausted=1, throttled_429=3,
    )  # fmt: skip
    assert readings_by_name[names["b"].name].granted == 0
    # 10/min: 8 a minute, a 2-token bucket refilling 6 a minute (0.1 per s)
    assert readings_by_name[small.name].capacity == 2
    assert readings_by_name[small.name].tokens == pytest.approx(0.6)


def test_budgets_in_account_name_order(db_session: Session, client: redis.Redis) -> None:
    add_account(db_session, "zulu")
    add_account(db_session, "alpha", rate_limit_per_min=100)
    assert [(b.account, b.capacity, b.tokens) for b in budgets(db_session, client,
            settings(), NOW)] == [("alpha", 20, 20.0), ("zulu", 40, 40.0)]  # fmt: skip


# --- workers, queues and what beat left in Redis ---------------------------------------------


def test_workers_online_are_those_seen_within_30_s(client: redis.Redis) -> None:
    now = NOW.timestamp()
    seen = {"w1@a": now - 2, "w2@b": now - 30, "w3@c": now - 30.5, "w4@d": now - 3600,
            "w0@e": now + 1}  # fmt: skip
    client.zadd(WORKERS_KEY, seen)
    try:
        assert workers_online(client, NOW) == ["w0@e", "w1@a", "w2@b"]
        assert workers_seen(client, NOW - timedelta(seconds=60)) == {
            "w3@c": NOW - timedelta(seconds=30.5), "w2@b": NOW - timedelta(seconds=30),
            "w1@a": NOW - timedelta(seconds=2), "w0@e": NOW + timedelta(seconds=1),
        }  # fmt: skip
        oldest_first = ["w4@d", "w3@c", "w2@b", "w1@a", "w0@e"]
        assert list(workers_seen(client, NOW - timedelta(days=1))) == oldest_first
        assert workers_online(client, NOW + timedelta(hours=2)) == []
    finally:
        client.delete(WORKERS_KEY)


def test_queue_depths_on_redis(redis_url: str, client: redis.Redis) -> None:
    """A queue without messages has no key on Redis: 0, not unknown."""
    assert queue_depths(False, redis_url) == {DEFAULT_QUEUE: 0, MONITOR_QUEUE: 0}
    client.lpush(DEFAULT_QUEUE, "m1", "m2", "m3")
    client.lpush(MONITOR_QUEUE + "\x06\x163", "a prioritized message")
    try:
        assert queue_depths(False, redis_url) == {DEFAULT_QUEUE: 3, MONITOR_QUEUE: 1}
    finally:
        client.delete(DEFAULT_QUEUE, MONITOR_QUEUE + "\x06\x163")


def test_queue_depths_on_rabbitmq(rabbitmq_url: str) -> None:
    purge(rabbitmq_url)
    with Connection(rabbitmq_url, connect_timeout=5) as connection:
        topology.declare(connection, delivery_limit=5)
        producer = Producer(connection.channel())
        for _ in range(2):
            producer.publish({"n": 1}, exchange=Exchange(DEFAULT_QUEUE, type="direct"),
                             routing_key=DEFAULT_QUEUE)  # fmt: skip
        producer.publish({"n": 1}, exchange=Exchange(topology.DEAD_EXCHANGE, type="fanout"))
    try:
        depths = queue_depths(True, rabbitmq_url)
    finally:
        purge(rabbitmq_url)
    assert depths == {DEFAULT_QUEUE: 2, MONITOR_QUEUE: 0, DEAD_QUEUE: 1}


def test_queue_depths_on_an_unreachable_broker_raise_at_once() -> None:
    from kombu.exceptions import OperationalError

    for url, amqp in [(f"redis://127.0.0.1:{free_port()}/0", False),
                      (f"amqp://guest:guest@127.0.0.1:{free_port()}//", True)]:  # fmt: skip
        with pytest.raises(OperationalError):
            queue_depths(amqp, url)


def test_sweeps_and_webhook_counts(client: redis.Redis) -> None:
    record_run(client, DEEP_RECONCILE, ok=True, started_at=NOW - timedelta(seconds=2),
               finished_at=NOW - timedelta(seconds=1), stats={"adopted": 1})  # fmt: skip
    client.hset(COUNTS_KEY, mapping={"crm": json.dumps({"pending": 2, "dead": 1}),
                                     "garbled": "{not json"})  # fmt: skip
    try:
        runs, health = sweeps(client, settings(), NOW)
        assert runs[DEEP_RECONCILE].last_stats == {"adopted": 1}
        assert health[DEEP_RECONCILE].state is Deadman.OK
        assert health[RECONCILE_OPEN_ORDERS].state is Deadman.UNWATCHED
        assert webhook_counts(client) == {"crm": {"pending": 2, "dead": 1}}
    finally:
        client.flushdb()
