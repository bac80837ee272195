"""Reconciliation on beat with the real parts: worker and beat processes, Redis, the paper
exchange over HTTP. Sweep intervals are shortened to a second or two by settings."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderOrigin, OrderStatus
from models.orders import Order, OrderEvent
from tests.processes import stop_process
from tests.worker.conftest import TrackingSystem, wait_for
from worker.sweeps import executions_key, skipped_key

pytestmark = pytest.mark.integration

FAST_SWEEPS = {
    "ORDERSYNC_MONITOR_WINDOW_S": "1",  # monitors give up at once: the sweeps own the orders
    "ORDERSYNC_SWEEP_INTERVAL_S": "1",
    "ORDERSYNC_SWEEP_FRESH_S": "1",
    "ORDERSYNC_DEEP_RECONCILE_INTERVAL_S": "2",
    "ORDERSYNC_STALE_REPORT_INTERVAL_S": "2",
}


def resting_limits(system: TrackingSystem, n: int) -> list[str]:
    """``n`` buy limits far below the market, placed through ordersync, NEW and unwatched."""
    system.exchange.freeze_market()
    results = [
        system.place(symbol="AAPL", side="buy", quantity="3", order_type="limit",
                     limit_price="1.00", time_in_force="gtc", decision_id=f"rest-{i}")
        for i in range(n)
    ]  # fmt: skip
    ids = [str(result.get(timeout=60)) for result in results]
    client = redis.Redis.from_url(system.redis_url)

    def settled() -> bool:
        resting = all(o.status is OrderStatus.NEW and o.broker_order_id for o in system.orders())
        return resting and not client.keys("ordersync:monitor:chain:*")

    wait_for(settled, 60, "orders resting, their monitors done")
    client.close()
    return ids


def order(system: TrackingSystem, order_id: str) -> Order:
    with Session(system.engine) as session:
        found = session.get(Order, order_id)
        assert found is not None
        return found


def matches_truth(system: TrackingSystem, order_id: str) -> bool:
    local = order(system, order_id)
    truth = system.exchange.truth_order(str(local.broker_order_id))
    return bool(local.status.value.lower() == truth["status"]
                and local.filled_quantity == Decimal(truth["filled_qty"]))  # fmt: skip


def test_orders_filled_while_no_worker_runs_are_recorded_by_the_next_sweep(
    system: TrackingSystem,
) -> None:
    system.env.update(FAST_SWEEPS)
    worker = system.start_worker("w1")
    ids = resting_limits(system, 4)
    stop_process(worker, timeout_s=15, group=True)

    brokers = [order(system, i).broker_order_id for i in ids]
    system.exchange.force_fill(str(brokers[0]))  # whole
    system.exchange.force_fill(str(brokers[1]), qty="1")  # partly
    system.exchange.force_fill(str(brokers[2]), qty="1")
    system.exchange.force_fill(str(brokers[2]), qty="2")  # two fills, now whole

    system.start_worker("w2")
    system.start_beat()
    wait_for(lambda: all(matches_truth(system, i) for i in ids), 60, "orders match the truth")
    wait_for(lambda: all(order(system, i).fill_gap == 0 for i in ids), 60, "fills recorded")
    assert [order(system, i).filled_quantity for i in ids] == [3, 1, 3, 0]
    assert sorted(len([f for f in system.fills() if f.order_id == i]) for i in ids) == [0, 1, 1, 2]


def test_an_order_placed_directly_at_the_exchange_is_adopted(system: TrackingSystem) -> None:
    system.env.update(FAST_SWEEPS)
    exchange = system.exchange
    answer = httpx.post(
        f"{exchange.base_url}/v2/orders", headers=exchange.headers,
        json={"symbol": "MSFT", "qty": "2", "side": "buy", "type": "limit",
              "limit_price": "1.00", "time_in_force": "gtc", "client_order_id": "by-hand-1"},
    )  # fmt: skip
    answer.raise_for_status()
    broker_id = answer.json()["id"]
    system.start_worker("w1")
    system.start_beat()

    def adopted() -> Order | None:
        with Session(system.engine) as session:
            return session.scalar(select(Order).where(Order.broker_order_id == broker_id))

    found = wait_for(adopted, 60, "the order adopted")
    assert found.origin is OrderOrigin.ADOPTED
    assert found.client_order_id == "by-hand-1"
    assert found.quantity == Decimal(2)
    assert found.status is OrderStatus.NEW


def test_an_order_the_exchange_forgets_is_declared_lost_only_after_three_misses(
    system: TrackingSystem,
) -> None:
    system.env.update(FAST_SWEEPS)
    system.start_worker("w1")
    (order_id,) = resting_limits(system, 1)
    system.exchange.forget(str(order(system, order_id).broker_order_id))
    system.start_beat()

    lost = wait_for(lambda: order(system, order_id).lost_at and order(system, order_id), 60,
                    "the order declared lost")  # fmt: skip
    assert lost.miss_count >= 3
    assert lost.status is OrderStatus.NEW  # never forced into a terminal state
    with Session(system.engine) as session:
        events = list(session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order_id, OrderEvent.kind == "lost")
        ))  # fmt: skip
    assert len(events) == 1
    assert "3 lookups" in str(events[0].detail)


def test_two_beats_run_each_sweep_once_per_interval(system: TrackingSystem) -> None:
    system.env.update(FAST_SWEEPS)
    system.start_worker("w1")
    system.start_beat()
    system._start("beat2", ["beat", "-s", str(system.var_dir / "celerybeat-schedule-2")])
    client = redis.Redis.from_url(system.redis_url)

    def counts() -> tuple[int, int]:
        runs = client.get(executions_key("reconcile_open_orders"))
        skips = client.get(skipped_key("reconcile_open_orders"))
        return int(runs or 0), int(skips or 0)

    wait_for(lambda: counts()[0] >= 1, 60, "a first sweep")
    began, (first_runs, first_skips) = time.monotonic(), counts()
    wait_for(lambda: counts()[1] - first_skips >= 6, 60, "the second beat's sends skipped")
    elapsed = time.monotonic() - began
    runs = counts()[0] - first_runs
    client.close()
    # One run per interval (1 s) at most, however many beats send it.
    assert runs <= elapsed / 0.9 + 1, (runs, elapsed)
    assert runs >= 1
