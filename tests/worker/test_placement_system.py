"""Placements against a broker as strict, slow and faulty as a real one, on real parts (worker
processes, Redis, the paper exchange over HTTP, SQLite and PostgreSQL): every order asked for
is placed exactly once, or ends REJECTED with the reason once its deadline has passed; a
killed worker or a Redis restart loses no placement."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from models.orders import Account, Order
from models.outbox import OutboxEvent
from ordersync.embedded_redis import EmbeddedRedis
from tests.paper_exchange import PaperExchange
from tests.worker.conftest import ACCOUNT, TrackingSystem, tracking_system, wait_for
from tests.worker.truth import settled

pytestmark = pytest.mark.integration


def cid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def at_exchange(system: TrackingSystem, client_order_id: str) -> list[dict[str, object]]:
    return [o for o in system.exchange.truth() if o["client_order_id"] == client_order_id]


def local(system: TrackingSystem, client_order_id: str) -> Order | None:
    with Session(system.engine) as session:
        return session.scalar(select(Order).where(Order.client_order_id == client_order_id))


def test_a_placement_answered_503_is_sent_again_and_placed_once(system: TrackingSystem) -> None:
    system.exchange.set_faults(next_5xx=2, routes=["POST /v2/orders"])  # nothing is created
    system.start_worker("w1")
    order = cid("p503")
    result = system.place(client_order_id=order, symbol="AAPL", side="buy", quantity="1")
    order_id = result.get(timeout=60)
    settled(system, [order], 30)
    assert len(at_exchange(system, order)) == 1
    placed = local(system, order)
    assert placed is not None
    assert placed.id == order_id
    assert placed.status is not OrderStatus.REJECTED
    assert system.exchange.requests()["by_route"]["POST /v2/orders"] == 3


def test_under_429s_503s_and_lost_answers_every_order_is_placed_exactly_once(
    system: TrackingSystem,
) -> None:
    system.exchange.set_faults(p_429=0.2, p_5xx=0.1, p_lose_response=0.15, timeout_s=1.5)
    system.start_worker("w1", concurrency=3)
    orders = [cid("harsh") for _ in range(20)]
    # What is asserted is "exactly once", not the market deadline (30 s; a fifth of the
    # requests answered 429, each emptying the account's budget, can use it up on a busy
    # machine, and the order is then rightly rejected unsent): a deadline past the wait.
    for n, order in enumerate(orders):
        system.place(client_order_id=order, symbol="MSFT", side="buy" if n % 2 else "sell",
                     quantity="2", valid_for_s=110)  # fmt: skip
    settled(system, orders, 120)
    for order in orders:
        assert len(at_exchange(system, order)) == 1, order
        placed = local(system, order)
        assert placed is not None
        assert placed.status is not OrderStatus.REJECTED, placed.last_error


def test_an_order_that_cannot_reach_the_broker_by_its_deadline_is_rejected_with_the_reason(
    system: TrackingSystem,
) -> None:
    system.exchange.set_faults(p_5xx=1.0, routes=["POST /v2/orders"])
    system.start_worker("w1")
    order = cid("late")
    system.place(client_order_id=order, symbol="AAPL", side="buy", quantity="1", valid_for_s=3)

    def rejected() -> Order | None:
        found = local(system, order)
        return found if found is not None and found.status is OrderStatus.REJECTED else None

    done = wait_for(rejected, 30, "the order rejected past its deadline")
    assert "placement deadline" in done.last_error
    assert "never reached the broker" in done.last_error
    assert at_exchange(system, order) == []
    with Session(system.engine) as session:
        payloads = session.scalars(select(OutboxEvent.payload).where(
            OutboxEvent.order_id == done.id, OutboxEvent.kind == "ORDER_REJECTED"))  # fmt: skip
        assert ["placement deadline" in json.loads(p)["last_error"] for p in payloads] == [True]
    posts = system.exchange.requests()["by_route"]["POST /v2/orders"]
    system.exchange.clear_faults()
    time.sleep(3)  # nothing is due any more: a later send would show in the count
    assert system.exchange.requests()["by_route"]["POST /v2/orders"] == posts


def test_a_placement_whose_worker_dies_before_sending_is_taken_over_within_seconds(
    system: TrackingSystem,
) -> None:
    """The worker is killed while it waits for the account's budget, so the order was never
    sent: the monitor chain (revived by beat) sends it, not an hour later."""
    system.env.update(ORDERSYNC_ORDER_LOCK_TTL_S="6", ORDERSYNC_RATE_LIMIT_FRESH_MAX_WAIT_S="2.5")
    victim = system.start_worker("victim", concurrency=1)
    with Session(system.engine) as session:
        account_id = session.scalars(select(Account.id).where(Account.name == ACCOUNT)).one()
    client = redis.Redis.from_url(system.redis_url)
    wait_for(lambda: system.send("ping").get(timeout=10), 30, "the worker answers")
    # The budget is empty for the next 2 s: the placement waits for it at the gate.
    reset_ms = int(client.time()[0] * 1000) + 2000
    client.hset(f"ordersync:budget:{account_id}", mapping={"tokens": 0, "at": reset_ms})
    order = cid("killed")
    system.place(client_order_id=order, symbol="AAPL", side="buy", quantity="1",
                 valid_for_s=60)  # fmt: skip
    wait_for(lambda: local(system, order), 20, "the write-ahead row")
    os.killpg(victim.pid, signal.SIGKILL)  # the whole worker, as the OOM killer would
    victim.wait(timeout=10)
    killed_at = time.monotonic()
    assert at_exchange(system, order) == []  # it never got out
    system.start_worker("rescuer", concurrency=2)
    system.start_beat()
    settled(system, [order], 45)
    assert len(at_exchange(system, order)) == 1
    assert time.monotonic() - killed_at < 45
    client.close()


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", persist=False)
    server.start()
    yield server
    server.stop()


def test_a_redis_restart_does_not_cancel_a_placement_in_flight(
    system_database_url: str, paper_exchange: PaperExchange, tmp_path: Path,
    restartable_redis: EmbeddedRedis,
) -> None:  # fmt: skip
    paper_exchange.set_faults(latency_ms=[3000, 3000], routes=["POST /v2/orders"])
    with tracking_system(system_database_url, restartable_redis.url, paper_exchange,
                         tmp_path / "var") as system:  # fmt: skip
        system.env["ORDERSYNC_BROKER_TIMEOUT_S"] = "10"  # the answer comes after the restart
        system.start_worker("w1")
        wait_for(lambda: system.send("ping").get(timeout=10), 30, "the worker answers")
        order = cid("blip")
        system.place(client_order_id=order, symbol="AAPL", side="buy", quantity="1")
        wait_for(lambda: paper_exchange.requests()["by_route"].get("POST /v2/orders"), 20,
                 "the placement on its way")  # fmt: skip
        port = restartable_redis.port
        restartable_redis.stop()  # nothing persisted: its queues and keys are gone
        restartable_redis.port = port
        restartable_redis.start()
        # No beat and no sweep: only the task that was running can finish the placement.
        wait_for(lambda: (found := local(system, order)) is not None
                 and found.broker_order_id is not None, 30, "the placement recorded")  # fmt: skip
        assert len(at_exchange(system, order)) == 1
