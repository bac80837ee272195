"""The stale-order report against a migrated database (SQLite and PostgreSQL) and fakeredis:
the query, the stored counts, the alerts with their cooldown, and the dead-man's switch."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import fakeredis
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from brokers.registry import AdapterCache
from core.enums import BrokerKind, OrderOrigin, OrderStatus, OrderType, Side, TimeInForce
from models.orders import Account, Order
from ordersync.settings import Settings
from tests.worker.test_alerts import Hook
from worker.context import WorkerContext
from worker.heartbeat import RECONCILE_OPEN_ORDERS, REPORT_STALE_ORDERS, record_run
from worker.stale import (
    LOST,
    MARKET_NOT_TERMINAL,
    PENDING_CANCEL,
    PENDING_NEW,
    STALE_CLASSES,
    UNCHECKED,
    OrderSnapshot,
    Thresholds,
    classify,
    load_candidates,
)
from worker.stale_report import COUNTS_KEY, read_report, report_stale_orders

T0 = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
_numbers = itertools.count()


def ago(seconds: float) -> datetime:
    return T0 - timedelta(seconds=seconds)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctx(db_session: Session, engine: Engine, clock: Clock) -> Iterator[WorkerContext]:
    """A worker context whose sessions see the test's uncommitted rows (rolled back after)."""
    sessions = sessionmaker(bind=db_session.connection(), expire_on_commit=False,
                            join_transaction_mode="create_savepoint")  # fmt: skip
    client = fakeredis.FakeRedis(decode_responses=True)
    yield WorkerContext(
        settings=Settings(sweep_interval_s=30, stale_report_interval_s=30,
                          deep_reconcile_interval_s=300, purge_interval_s=3600),
        engine=engine, sessions=sessions, redis=client,
        adapters=AdapterCache(timeout_s=1, max_attempts=1, max_retry_wait_s=1), now=clock,
    )  # fmt: skip
    client.close()


@pytest.fixture
def make_order(db_session: Session) -> Callable[..., str]:
    account = Account(name=f"stale-{next(_numbers)}", broker=BrokerKind.ALPACA,
                      base_url="http://127.0.0.1:1", credentials_env="ORDERSYNC_ACCOUNT_STALE",
                      created_at=ago(86400))  # fmt: skip
    db_session.add(account)
    db_session.flush()

    def make(**fields: Any) -> str:
        n = next(_numbers)
        created = fields.pop("created_at", ago(3600))
        values: dict[str, Any] = {
            "account_id": account.id, "broker": BrokerKind.ALPACA,
            "client_order_id": f"c-{n}", "broker_order_id": f"b-{n}",
            "origin": OrderOrigin.PLACED, "symbol": "AAPL", "side": Side.BUY,
            "order_type": OrderType.LIMIT, "time_in_force": TimeInForce.DAY,
            "quantity": Decimal(1), "limit_price": Decimal(100), "status": OrderStatus.NEW,
            "created_at": created, "updated_at": created, "last_checked_at": T0,
        }  # fmt: skip
        values.update(fields)
        order = Order(**values)
        db_session.add(order)
        db_session.flush()
        return order.id

    return make


def seed(make_order: Callable[..., str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """One order in each class, one just inside each threshold (stale a moment later), and
    orders that are never stale: (stale ids by class, edge ids by class)."""
    market = {"order_type": OrderType.MARKET, "limit_price": None}
    stale = {
        MARKET_NOT_TERMINAL: [make_order(**market, created_at=ago(10) - TICK)],
        PENDING_NEW: [
            make_order(
                status=OrderStatus.PENDING_NEW, created_at=ago(60) - TICK, broker_order_id=None
            )
        ],
        PENDING_CANCEL: [make_order(status=OrderStatus.PENDING_CANCEL, updated_at=ago(60) - TICK)],
        UNCHECKED: [
            make_order(last_checked_at=ago(60) - TICK),
            make_order(last_checked_at=None, created_at=ago(60) - TICK),
        ],
        LOST: [make_order(lost_at=ago(5), miss_count=3)],
    }
    edge = {
        MARKET_NOT_TERMINAL: [make_order(**market, created_at=ago(10))],
        PENDING_NEW: [
            make_order(status=OrderStatus.PENDING_NEW, created_at=ago(60), broker_order_id=None)
        ],
        PENDING_CANCEL: [make_order(status=OrderStatus.PENDING_CANCEL, updated_at=ago(60))],
        UNCHECKED: [
            make_order(last_checked_at=ago(60)),
            make_order(last_checked_at=None, created_at=ago(60)),
        ],
    }
    make_order(**market, status=OrderStatus.FILLED, last_checked_at=None)
    make_order(status=OrderStatus.CANCELED, lost_at=ago(1))
    return stale, edge


def test_the_query_agrees_with_the_classifier_at_every_edge(
    ctx: WorkerContext, make_order: Callable[..., str], db_session: Session
) -> None:
    expected, _ = seed(make_order)
    limits = Thresholds.of(ctx.settings)
    with ctx.sessions() as session:
        candidates = load_candidates(session, T0, limits)
    every_open = [
        OrderSnapshot(*row)
        for row in db_session.execute(
            select(Order.id, Order.status, Order.order_type, Order.created_at,
                   Order.updated_at, Order.last_checked_at, Order.lost_at)
            .where(Order.status.not_in([OrderStatus.FILLED, OrderStatus.CANCELED]))
        )
    ]  # fmt: skip
    assert len(every_open) == 11
    assert {o.id for o in candidates} == {i for ids in expected.values() for i in ids}
    assert classify(candidates, T0, limits) == classify(every_open, T0, limits)


def test_report_counts_stores_and_alerts_once_per_cooldown(
    ctx: WorkerContext, make_order: Callable[..., str], clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    expected, edge = seed(make_order)
    caplog.set_level(logging.WARNING, logger="ordersync.alerts")

    report = report_stale_orders(ctx)

    assert report.counts == {name: len(ids) for name, ids in expected.items()}
    for name, ids in expected.items():
        assert sorted(report.classes[name].order_ids) == sorted(ids)
    assert report.alerted == STALE_CLASSES
    assert report.dead_sweeps == ()
    assert ctx.redis.hgetall(COUNTS_KEY) == {n: str(len(ids)) for n, ids in expected.items()}
    stored = read_report(ctx.redis)
    assert stored is not None
    assert stored.at == T0
    assert stored.counts == report.counts
    assert {n: sorted(ids) for n, ids in stored.order_ids.items()} == {
        n: sorted(ids) for n, ids in expected.items()
    }
    lines = alert_lines(caplog)
    assert len(lines) == len(STALE_CLASSES)
    for name, ids in expected.items():
        [line] = [m for m in lines if f"class={name} " in m]
        assert all(order_id in line for order_id in ids)
    assert report.stats()["unchecked"] == 2

    caplog.clear()
    clock.advance(1)  # the edge orders become stale: only they are new to an alert
    again = report_stale_orders(ctx)
    assert again.counts == {n: len(ids) + len(edge.get(n, [])) for n, ids in expected.items()}
    assert again.alerted == (MARKET_NOT_TERMINAL, PENDING_NEW, PENDING_CANCEL, UNCHECKED)
    lines = alert_lines(caplog)
    for name, ids in edge.items():
        [line] = [m for m in lines if f"class={name} " in m]
        assert f" new={len(ids)} " in line
    stored = read_report(ctx.redis)
    assert stored is not None
    assert stored.at == T0 + timedelta(seconds=1)

    caplog.clear()
    clock.advance(1)
    assert report_stale_orders(ctx).alerted == ()
    assert alert_lines(caplog) == []


def alert_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ordersync.alerts"]


def test_an_empty_database_stores_zeros_and_alerts_nothing(
    ctx: WorkerContext, caplog: pytest.LogCaptureFixture
) -> None:
    report = report_stale_orders(ctx)
    assert report.counts == dict.fromkeys(STALE_CLASSES, 0)
    assert report.alerted == ()
    assert ctx.redis.hgetall(COUNTS_KEY) == dict.fromkeys(STALE_CLASSES, "0")
    assert alert_lines(caplog) == []


def test_a_resolved_order_leaves_the_stored_counts(
    ctx: WorkerContext, make_order: Callable[..., str], db_session: Session
) -> None:
    order_id = make_order(last_checked_at=ago(120))
    assert report_stale_orders(ctx).counts[UNCHECKED] == 1
    order = db_session.get(Order, order_id)
    assert order is not None
    order.last_checked_at = T0
    db_session.flush()
    report_stale_orders(ctx)
    assert ctx.redis.hget(COUNTS_KEY, UNCHECKED) == "0"


def test_the_deadman_switch_alerts_for_sweeps_silent_for_three_intervals(
    ctx: WorkerContext, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ordersync.alerts")
    assert report_stale_orders(ctx).dead_sweeps == ()  # a fresh system: first seen now

    clock.advance(80)
    record_run(ctx.redis, RECONCILE_OPEN_ORDERS, ok=True, started_at=clock.now,
               finished_at=clock.now, stats={})  # fmt: skip
    clock.advance(10.5)  # 90.5 s: the reporter itself never succeeded (3 x 30 s)
    report = report_stale_orders(ctx)
    assert [s.name for s in report.dead_sweeps] == [REPORT_STALE_ORDERS]
    assert report.alerted == (REPORT_STALE_ORDERS,)
    [line] = [r for r in caplog.records if r.name == "ordersync.alerts"]
    assert line.levelno == logging.ERROR
    assert "sweep_deadman class=report_stale_orders" in line.getMessage()

    caplog.clear()
    clock.advance(30)
    report = report_stale_orders(ctx)  # still dead, but within the alert cooldown
    assert [s.name for s in report.dead_sweeps] == [REPORT_STALE_ORDERS]
    assert report.alerted == ()
    assert alert_lines(caplog) == []


def test_the_report_posts_each_class_to_the_webhook(
    ctx: WorkerContext, make_order: Callable[..., str]
) -> None:
    hook = Hook()
    hook.thread.start()
    try:
        order_id = make_order(lost_at=ago(5))
        ctx.settings = ctx.settings.model_copy(update={"alert_webhook_url": SecretStr(hook.url)})
        report_stale_orders(ctx)
        assert [(b["class"], b["count"], b["order_ids"]) for b in hook.delivered] == [
            (LOST, 1, [order_id])
        ]
    finally:
        hook.server.shutdown()
        hook.server.server_close()
        hook.thread.join(timeout=10)
