"""The scrape-time collector: gauges read from a real database and Redis state, and a source
that does not answer marked down without hiding the others."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import fakeredis
import pytest
import redis
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.enums import BrokerKind, OrderOrigin, OrderStatus, OrderType, Side, TimeInForce
from models.db import make_engine
from models.orders import Account, Order
from models.outbox import OutboxEvent
from ordersync.metrics.collector import COLLECTED_METRICS, Sources, StateCollector
from ordersync.settings import Settings
from tests.conftest import migrated_database
from worker.heartbeat import record_run
from worker.metrics import WORKERS_KEY
from worker.stale import UNCHECKED, StaleClass
from worker.stale_report import store_report
from worker.stream_health import mark_healthy

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    for url in migrated_database("sqlite", tmp_path):
        engine = make_engine(url)
        yield sessionmaker(engine, expire_on_commit=False)
        engine.dispose()


def _seed(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        account = Account(name="acme", broker=BrokerKind.ALPACA, base_url="http://x",
                          credentials_env="X", created_at=NOW, rate_limit_per_min=200)  # fmt: skip
        session.add(account)
        session.flush()
        statuses = [OrderStatus.NEW] * 3 + [OrderStatus.FILLED] * 2 + [OrderStatus.CANCELED]
        for n, status in enumerate(statuses):
            gap = n == 0  # the broker says filled 5 of 10; none recorded yet
            session.add(Order(
                account_id=account.id, broker=BrokerKind.ALPACA, client_order_id=f"c{n}",
                broker_order_id=f"b{n}", origin=OrderOrigin.PLACED, symbol="AAPL",
                side=Side.BUY, order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY,
                quantity=Decimal(10), status=status, created_at=NOW, updated_at=NOW,
                broker_filled_quantity=Decimal(5 if gap else 0),
            ))  # fmt: skip
        for age_s in (90, 30):
            session.add(OutboxEvent(kind="ORDER_PLACED", priority=7, order_id=None,
                                    payload="{}",
                                    created_at=NOW - timedelta(seconds=age_s)))  # fmt: skip
        session.commit()


def _account_id(sessions: sessionmaker[Session], name: str) -> str:
    with sessions() as session:
        return session.scalars(select(Account.id).where(Account.name == name)).one()


def _collect(sources: Sources) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = CollectorRegistry()
    registry.register(StateCollector(sources))
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in registry.collect():
        values = found.setdefault(family.name, {})
        for sample in family.samples:
            values[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_gauges_come_from_the_database_and_redis(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    client = fakeredis.FakeRedis(decode_responses=True)
    settings = Settings(_env_file=None, redis_url="redis://unused")  # type: ignore[call-arg]
    store_report(client, NOW, {UNCHECKED: StaleClass(UNCHECKED, 2, ("a", "b"))})
    record_run(client, "reconcile_open_orders", ok=True, started_at=NOW - timedelta(seconds=2),
               finished_at=NOW - timedelta(seconds=1), stats={})  # fmt: skip
    client.zadd(WORKERS_KEY, {"w1@host": NOW.timestamp() - 5, "gone@host": NOW.timestamp() - 600})
    sources = Sources(settings, sessions, client, amqp=False, broker_url=UNREACHABLE,
                      now=lambda: NOW)  # fmt: skip

    found = _collect(sources)

    orders = found["ordersync_orders"]
    assert orders[(("account", "acme"), ("status", "NEW"))] == 3
    assert orders[(("account", "acme"), ("status", "FILLED"))] == 2
    assert orders[(("account", "acme"), ("status", "CANCELED"))] == 1
    assert found["ordersync_fill_gaps_open"] == {(("account", "acme"),): 1}
    assert found["ordersync_outbox_backlog_events"] == {(): 2}
    assert found["ordersync_outbox_oldest_event_age_seconds"] == {(): 90}
    assert found["ordersync_stale_orders"][(("class", UNCHECKED),)] == 2
    assert found["ordersync_stale_report_timestamp_seconds"] == {(): NOW.timestamp()}
    success = found["ordersync_sweep_last_success_timestamp_seconds"]
    assert (
        success[(("sweep", "reconcile_open_orders"),)] == (NOW - timedelta(seconds=1)).timestamp()
    )
    interval = found["ordersync_sweep_interval_seconds"][(("sweep", "reconcile_open_orders"),)]
    assert interval == settings.sweep_interval_s
    assert found["ordersync_workers_online"] == {(): 1}
    budget = found["ordersync_budget_tokens"][(("account", "acme"),)]
    capacity = found["ordersync_budget_capacity_tokens"][(("account", "acme"),)]
    assert budget == capacity > 0  # an untouched bucket is full
    assert found["ordersync_stream_healthy"] == {(("account", "acme"),): 0}
    mark_healthy(client, _account_id(sessions, "acme"), 30)
    assert _collect(sources)["ordersync_stream_healthy"] == {(("account", "acme"),): 1}
    # The transport did not answer: its gauges are absent and it is marked down; the rest
    # of the scrape stands.
    up = found["ordersync_collector_source_up"]
    assert up == {(("source", "database"),): 1, (("source", "redis"),): 1,
                  (("source", "budget"),): 1, (("source", "transport"),): 0}  # fmt: skip
    assert "ordersync_queue_depth_messages" not in found
    assert set(found) <= set(COLLECTED_METRICS)


def test_an_unreachable_redis_leaves_the_database_gauges(sessions: sessionmaker[Session]) -> None:
    _seed(sessions)
    settings = Settings(_env_file=None, redis_url=UNREACHABLE)  # type: ignore[call-arg]
    client = redis.Redis.from_url(UNREACHABLE, socket_connect_timeout=0.5)
    sources = Sources(settings, sessions, client, amqp=False, broker_url=UNREACHABLE)
    found = _collect(sources)
    up = found["ordersync_collector_source_up"]
    assert up == {(("source", "database"),): 1, (("source", "redis"),): 0,
                  (("source", "budget"),): 0, (("source", "transport"),): 0}  # fmt: skip
    assert found["ordersync_orders"][(("account", "acme"), ("status", "NEW"))] == 3
    assert "ordersync_stale_orders" not in found
    assert "ordersync_budget_tokens" not in found
