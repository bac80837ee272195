"""What RabbitMQ as the transport must prove, on real parts (worker processes, RabbitMQ,
PostgreSQL, Redis, the paper exchange over HTTP): a killed worker's task runs again on
another worker within seconds; a RabbitMQ crash and restart loses no call a sender had
confirmed and doubles no order; a worker that loses its connection does not revoke the
task it is running."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from celery.result import AsyncResult
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.orders import Order
from tests.conftest import REQUIRE_SERVICES, migrated_database
from tests.paper_exchange import PaperExchange
from tests.rabbitmq import PrivateRabbitMQ, RabbitMQUnavailable
from tests.worker.conftest import TrackingSystem, tracking_system, wait_for
from tests.worker.truth import settled

pytestmark = pytest.mark.integration


def cid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def at_exchange(system: TrackingSystem, client_order_id: str) -> list[dict[str, object]]:
    return [o for o in system.exchange.truth() if o["client_order_id"] == client_order_id]


def recorded(system: TrackingSystem, client_order_id: str) -> bool:
    with Session(system.engine) as session:
        order = session.scalar(select(Order).where(Order.client_order_id == client_order_id))
        return order is not None and order.broker_order_id is not None


@pytest.fixture
def rabbitmq_system(
    rabbitmq_url: str, tracking_redis_url: str, paper_exchange: PaperExchange, tmp_path: Path
) -> Iterator[TrackingSystem]:
    for database_url in migrated_database("postgresql", tmp_path):
        with tracking_system(database_url, tracking_redis_url, paper_exchange,
                             tmp_path / "var", broker_url=rabbitmq_url) as system:  # fmt: skip
            yield system


@pytest.fixture
def node(tmp_path: Path) -> Iterator[PrivateRabbitMQ]:
    """A RabbitMQ node of this test's own, which the test may crash and restart."""
    directory = tmp_path / "rabbitmq"
    directory.mkdir()
    try:
        node = PrivateRabbitMQ(directory)
        node.start()
    except RabbitMQUnavailable as error:
        if REQUIRE_SERVICES:
            pytest.fail(f"a private RabbitMQ node is required in CI: {error}")
        pytest.skip(str(error))
    yield node
    node.kill()


@pytest.fixture
def node_system(
    node: PrivateRabbitMQ, tracking_redis_url: str, paper_exchange: PaperExchange,
    tmp_path: Path,
) -> Iterator[TrackingSystem]:  # fmt: skip
    """A system whose tasks travel over the private node."""
    for database_url in migrated_database("postgresql", tmp_path):
        with tracking_system(database_url, tracking_redis_url, paper_exchange,
                             tmp_path / "var", broker_url=node.url) as system:  # fmt: skip
            yield system


def test_a_worker_killed_mid_placement_has_its_task_run_again_at_once_and_placed_once(
    rabbitmq_system: TrackingSystem,
) -> None:
    system = rabbitmq_system
    system.env["ORDERSYNC_BROKER_TIMEOUT_S"] = "30"  # the victim waits on its request
    system.exchange.set_faults(latency_ms=[8000, 8000], routes=["POST /v2/orders"])
    victim = system.start_worker("victim", concurrency=1)
    order = cid("killed")
    sent = system.place(client_order_id=order, symbol="AAPL", side="buy", quantity="1",
                        valid_for_s=120)  # fmt: skip
    wait_for(lambda: system.exchange.requests()["by_route"].get("POST /v2/orders"), 30,
             "the placement on its way to the exchange")  # fmt: skip
    system.start_worker("rescuer", concurrency=1)
    # The victim's one slot holds the placement, so only the rescuer can answer.
    assert system.send("ping").get(timeout=60)
    assert sent.id not in system.log("rescuer")
    system.exchange.clear_faults()

    os.killpg(victim.pid, signal.SIGKILL)  # the whole worker, as the OOM killer would
    victim.wait(timeout=10)
    killed_at = time.monotonic()
    # RabbitMQ gives the unacknowledged message back when the connection closes.
    wait_for(lambda: sent.id in system.log("rescuer"), 5, "the task delivered to the rescuer")
    redelivered_s = time.monotonic() - killed_at
    # The dead attempt's order lock is taken over once its process is known gone (its
    # alive key lapses within 3 s), and the rescuer finds the order the victim sent.
    wait_for(lambda: recorded(system, order), 10, "the placement recorded")
    assert redelivered_s < 5
    assert time.monotonic() - killed_at < 10
    system.start_beat()  # revives the monitor chain the victim had begun
    settled(system, [order], 45)
    assert len(at_exchange(system, order)) == 1


@dataclass
class Sender:
    """A trading service sending placements with publisher confirms from its own thread:
    every call ends confirmed or with an error; an error is resent with the same ids."""

    system: TrackingSystem
    confirmed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    results: list[AsyncResult] = field(default_factory=list)
    task_ids: dict[str, str] = field(default_factory=dict)

    def send(self, order: str) -> None:
        task_id = self.task_ids.setdefault(order, str(uuid.uuid4()))
        try:
            self.system.client.send_task(
                "ordersync.place_order", task_id=task_id, mandatory=True,
                kwargs={"account": "test", "client_order_id": order, "symbol": "AAPL",
                        "side": "buy", "quantity": "1", "valid_for_s": 120},
            )  # fmt: skip
        except Exception as error:
            self.errors[order] = f"{type(error).__name__}: {error}"
        else:
            self.confirmed.append(order)
            self.errors.pop(order, None)


def test_a_rabbitmq_crash_and_restart_loses_no_confirmed_call_and_doubles_no_order(
    node: PrivateRabbitMQ, node_system: TrackingSystem
) -> None:
    system = node_system
    system.start_worker("w1", concurrency=2)
    system.start_worker("w2", concurrency=2)
    assert system.send("ping").get(timeout=60)
    sender, orders = Sender(system), [cid("flow") for _ in range(60)]
    done = threading.Event()

    def send_all() -> None:
        for order in orders:
            sender.send(order)
            time.sleep(0.1)  # a trading service's pace, not synchronisation
        done.set()

    thread = threading.Thread(target=send_all, daemon=True)
    thread.start()
    wait_for(lambda: len(sender.confirmed) >= 15, 30, "a flow under way")
    node.kill()  # mid-flow: calls in queues, in workers and on their way
    node.start()
    assert done.wait(60)
    thread.join(timeout=10)
    # Every call ended either confirmed or with an error the sender saw; an error means
    # "maybe stored": resent with the same ids, it can never double an order.
    assert set(sender.confirmed) | set(sender.errors) == set(orders)
    for order in list(sender.errors):
        wait_for(lambda o=order: (sender.send(o), o not in sender.errors)[1], 60,  # type: ignore[misc]
                 f"{order} sent again after the restart")  # fmt: skip
    settled(system, orders, 120)
    for order in orders:
        assert len(at_exchange(system, order)) == 1, order


def test_a_worker_that_loses_its_connection_does_not_revoke_the_task_it_runs(
    node: PrivateRabbitMQ, node_system: TrackingSystem
) -> None:
    system = node_system
    system.exchange.set_faults(latency_ms=[6000, 6000], routes=["POST /v2/orders"])
    system.env["ORDERSYNC_BROKER_TIMEOUT_S"] = "30"
    system.start_worker("w1", concurrency=2)
    assert system.send("ping").get(timeout=60)
    order = cid("running")
    sent = system.place(client_order_id=order, symbol="AAPL", side="buy", quantity="1",
                        valid_for_s=120)  # fmt: skip
    wait_for(lambda: system.exchange.requests()["by_route"].get("POST /v2/orders"), 30,
             "the placement running")  # fmt: skip
    node.kill()
    # The running attempt finishes and records the order while RabbitMQ is still down, so
    # its order's first monitor check cannot be sent; its message, never acknowledged on
    # the lost connection, runs again once RabbitMQ is back, places nothing, and starts the
    # monitor that brings the order to the exchange's state.
    wait_for(lambda: recorded(system, order), 60, "the placement recorded")
    node.start()
    system.exchange.clear_faults()
    assert sent.get(timeout=60) is not None
    assert sent.state == "SUCCESS"
    log = system.log("w1")
    assert "revoked" not in log.lower()
    assert "Terminating" not in log
    settled(system, [order], 60)
    assert len(at_exchange(system, order)) == 1
