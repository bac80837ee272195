"""The sender examples, run as a trading service runs them (a process of its own) against
real services: once a script says the send is done, the task is in ordersync's queue with
its fixed id and arguments; a send RabbitMQ cannot route, or a broker that does not answer,
is an error that says to send again with the same ids, never a claimed success; and a
decision sent twice is placed once by a real worker."""

from __future__ import annotations

import ast
import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection, Queue

from ordersync.embedded_redis import EmbeddedRedis
from tests.conftest import migrated_database
from tests.paper_exchange import PaperExchange
from tests.rabbitmq import free_port, purge
from tests.worker.conftest import ACCOUNT, TrackingSystem, tracking_system, wait_for
from worker import topology

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SENDERS = ("send_rabbitmq.py", "send_redis.py")
TASK = "ordersync.place_order"
EXPIRES_AT = "2026-11-21T14:30:00+00:00"


def order(decision_id: str) -> dict[str, str]:
    """The task arguments the scripts send for ``run(..., decision_id)``."""
    return {"account": "desk-1", "symbol": "AAPL", "side": "buy", "quantity": "12.5",
            "decision_id": decision_id, "expires_at": EXPIRES_AT}  # fmt: skip


def run(script: str, url: str, cwd: Path, decision_id: str,
        *extra: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """The example in a process of its own, outside the checkout, as a service runs it."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), url, "--account", "desk-1", "--symbol",
         "AAPL", "--side", "buy", "--quantity", "12.5", "--decision-id", decision_id,
         "--expires-at", EXPIRES_AT, *extra],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip


def sent_id(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    assert task_id, done.stderr
    return task_id


@pytest.fixture
def rabbitmq(rabbitmq_url: str) -> str:
    """The session's vhost with ordersync's queues declared, as a deployment has them, and
    empty."""
    with Connection(rabbitmq_url) as connection:
        topology.declare(connection, 5)
    purge(rabbitmq_url)
    return rabbitmq_url


def take_all(url: str, queue: str) -> list[Any]:
    """Every message in ``queue`` (taken and acknowledged: the test's own messages)."""
    taken = []
    with Connection(url) as connection:
        bound = Queue(queue, no_declare=True).bind(connection.channel())
        while (message := bound.get(no_ack=False)) is not None:
            taken.append(message)
            message.ack()
    return taken


@pytest.mark.integration
def test_a_confirmed_send_is_in_the_queue_and_a_resend_has_the_same_ids(
    rabbitmq: str, tmp_path: Path
) -> None:
    first = sent_id(run("send_rabbitmq.py", rabbitmq, tmp_path, "sig-1"))
    again = sent_id(run("send_rabbitmq.py", rabbitmq, tmp_path, "sig-1"))  # after an error
    other = sent_id(run("send_rabbitmq.py", rabbitmq, tmp_path, "sig-2"))
    assert first == again != other

    messages = take_all(rabbitmq, topology.DEFAULT_QUEUE)
    assert [(m.headers["task"], m.headers["id"]) for m in messages] == [
        (TASK, first), (TASK, first), (TASK, other),
    ]  # fmt: skip
    assert [m.decode()[:2] for m in messages] == [
        [[], order("sig-1")], [[], order("sig-1")], [[], order("sig-2")],
    ]  # fmt: skip
    assert {m.properties["delivery_mode"] for m in messages} == {2}  # persistent


@pytest.mark.integration
def test_a_send_no_queue_takes_fails_with_no_route(rabbitmq: str, tmp_path: Path) -> None:
    with Connection(rabbitmq) as connection:
        connection.channel().queue_delete(topology.DEFAULT_QUEUE)
    try:
        done = run("send_rabbitmq.py", rabbitmq, tmp_path, "sig-3")
        assert done.returncode == 1
        assert done.stdout == ""  # no task id: nothing claimed
        assert "312 NO_ROUTE" in done.stderr
        assert "not stored" in done.stderr
        assert "sending again with the same decision id" in done.stderr
    finally:
        with Connection(rabbitmq) as connection:
            topology.declare(connection, 5)
    assert take_all(rabbitmq, topology.DEFAULT_QUEUE) == []


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.delete("celery")
    yield client
    client.delete("celery")
    client.close()


@pytest.mark.integration
def test_a_send_that_returns_is_in_the_redis_list(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    first = sent_id(run("send_redis.py", redis_url, tmp_path, "sig-1"))
    again = sent_id(run("send_redis.py", redis_url, tmp_path, "sig-1"))
    assert first == again

    stored = [json.loads(raw) for raw in redis_client.lrange("celery", 0, -1)]
    assert [(m["headers"]["task"], m["headers"]["id"]) for m in stored] == [(TASK, first)] * 2
    for message in stored:
        assert message["properties"]["body_encoding"] == "base64"
        body = json.loads(base64.b64decode(message["body"]))
        assert body[:2] == [[], order("sig-1")]


@pytest.fixture(params=["rabbitmq", "redis"])
def system(
    request: pytest.FixtureRequest, paper_exchange: PaperExchange, tmp_path: Path
) -> Iterator[TrackingSystem]:
    """A worker system of the test's own (SQLite, an embedded Redis) with tasks over
    RabbitMQ (the session's vhost) or over that Redis."""
    broker_url = request.getfixturevalue("rabbitmq_url") if request.param == "rabbitmq" else None
    (tmp_path / "redis").mkdir()
    with EmbeddedRedis(tmp_path / "redis", persist=False) as redis_server:
        for database_url in migrated_database("sqlite", tmp_path):
            with tracking_system(database_url, redis_server.url, paper_exchange,
                                 tmp_path / "var", broker_url=broker_url) as tracking:  # fmt: skip
                yield tracking


@pytest.mark.integration
def test_a_decision_sent_twice_is_placed_once(system: TrackingSystem, tmp_path: Path) -> None:
    script, url = ("send_rabbitmq.py", system.broker_url) if system.broker_url else (
        "send_redis.py", system.redis_url)  # fmt: skip
    deadline = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    first, again = (
        sent_id(run(script, url, tmp_path, "sig-twice", "--account", ACCOUNT,
                    "--expires-at", deadline))
        for _ in range(2)
    )  # fmt: skip
    assert first == again
    system.start_worker("w1")
    order_id = system.client.AsyncResult(first).get(timeout=60)
    answered = f"ordersync.place_order[{first}] succeeded"
    wait_for(lambda: system.log("w1").count(answered) == 2, 60, "both messages answered")
    [order] = system.orders()
    assert (order.id, order.decision_id) == (order_id, "sig-twice")
    at_exchange = [o["client_order_id"] for o in system.exchange.truth()]
    assert at_exchange == [order.client_order_id]


@pytest.mark.parametrize(
    ("script", "scheme"), [("send_rabbitmq.py", "amqp"), ("send_redis.py", "redis")]
)
def test_a_broker_that_does_not_answer_is_an_error_to_resend(
    script: str, scheme: str, tmp_path: Path
) -> None:
    done = run(script, f"{scheme}://guest:guest@127.0.0.1:{free_port()}/0", tmp_path, "sig-4")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "may or may not be stored" in done.stderr
    assert "sending again with the same decision id (task " in done.stderr


@pytest.mark.parametrize("script", SENDERS)
@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [("--quantity", "0", "is not positive"), ("--quantity", "1.5.0", "is not a decimal"),
     ("--expires-at", "2026-11-21T14:30:00", "has no UTC offset")],
)  # fmt: skip
def test_bad_arguments_are_refused_before_anything_is_sent(
    script: str, option: str, value: str, problem: str, tmp_path: Path
) -> None:
    done = run(script, "redis://127.0.0.1:1/0", tmp_path, "sig-5", option, value)
    assert done.returncode == 2
    assert problem in done.stderr


@pytest.mark.parametrize("script", SENDERS)
def test_the_senders_import_nothing_of_ordersync(script: str) -> None:
    tree = ast.parse((EXAMPLES / script).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {node.module for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}  # fmt: skip
    roots = {name.split(".")[0] for name in imported}
    assert roots - set(sys.stdlib_module_names) <= {"celery", "kombu"}, roots
