"""``ordersync tasks dead`` and ``replay``: RabbitMQ's dead-lettered tasks listed (table and
JSON) and moved back to their queues, chosen by task id or all; on Redis, which has no
dead-letter queue, both say so and fail; the broker's password is never shown."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from ordersync import tasks_cli
from ordersync.cli import app
from ordersync.settings import get_settings
from tests.rabbitmq import free_port
from tests.worker.test_dead_letters import fresh_queues, get_raw, kill, publish_task
from worker.topology import DEFAULT_QUEUE, MONITOR_QUEUE

ENV = {"COLUMNS": "200", "NO_COLOR": "1"}
BROKER = "ORDERSYNC_CELERY_BROKER_URL"


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set ORDERSYNC_CELERY_BROKER_URL (or not) through this; settings are read afresh."""
    monkeypatch.delenv(BROKER, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def tasks(*args: str) -> tuple[int, str]:
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["tasks", *args], env=ENV)
    return result.exit_code, result.output


@pytest.mark.parametrize("transport", [None, "redis://127.0.0.1:6379/0"])
def test_on_redis_both_commands_say_there_is_no_dead_letter_queue(
    broker: pytest.MonkeyPatch, transport: str | None
) -> None:
    if transport is not None:
        broker.setenv(BROKER, transport)
    for command in (["dead"], ["replay", "--all"]):
        code, output = tasks(*command)
        assert code == 2, output
        assert "Redis" in output
        assert "no dead-letter queue" in output
        assert "sweeps" in output


def test_replay_needs_task_ids_or_all(broker: pytest.MonkeyPatch) -> None:
    broker.setenv(BROKER, "amqp://guest:guest@127.0.0.1:1//")
    for command in (["replay"], ["replay", "some-id", "--all"]):
        code, output = tasks(*command)
        assert code == 2, output
        assert "TASK_ID ... or --all" in output


def test_an_unreachable_rabbitmq_is_named_without_its_password(broker: pytest.MonkeyPatch) -> None:
    broker.setenv(BROKER, f"amqp://ordersync:pa55-w0rd-x@127.0.0.1:{free_port()}/prod")
    for command in (["dead"], ["replay", "--all"]):
        code, output = tasks(*command)
        assert code == 2, output
        assert "cannot connect to RabbitMQ at amqp://ordersync:**@127.0.0.1:" in output
        assert "pa55-w0rd-x" not in output


def test_an_unexpected_failure_is_one_line_never_a_traceback(broker: pytest.MonkeyPatch) -> None:
    # Typer's tracebacks show each frame's locals: the broker URL, password and all.
    broker.setenv(BROKER, "amqp://ordersync:pa55-w0rd-x@127.0.0.1:5672/prod")

    def broken(*_: object) -> None:
        raise ConnectionResetError("Connection reset by peer")

    broker.setattr(tasks_cli, "list_dead", broken)
    broker.setattr(tasks_cli, "replay_ids", broken)
    for command in (["dead"], ["replay", "--all"]):
        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["tasks", *command], env=ENV)
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit)
        assert result.output.strip() == "ConnectionResetError: Connection reset by peer"


@pytest.mark.integration
def test_dead_lists_and_replay_moves_back_what_rabbitmq_dead_lettered(
    broker: pytest.MonkeyPatch, rabbitmq_url: str
) -> None:
    fresh_queues(rabbitmq_url)
    broker.setenv(BROKER, rabbitmq_url)
    code, output = tasks("dead")
    assert (code, "none" in output) == (0, True), output

    failed = publish_task(rabbitmq_url, DEFAULT_QUEUE, task="ordersync.place_order")
    kill(rabbitmq_url, DEFAULT_QUEUE)
    rejected = publish_task(rabbitmq_url, MONITOR_QUEUE, delay_s=0.03)
    kill(rabbitmq_url, MONITOR_QUEUE, reject=True)

    code, table = tasks("dead")
    assert code == 0, table
    for shown in (failed, rejected, "ordersync.place_order", "ordersync.monitor_order",
                  "delivery_limit", "rejected", MONITOR_QUEUE, "('o-1',)",
                  "2; replay: ordersync tasks replay"):  # fmt: skip
        assert shown in table
    code, limited = tasks("dead", "--limit", "1")
    assert (code, "1 of 2; replay" in limited) == (0, True), limited
    code, as_json = tasks("dead", "--json")
    assert code == 0, as_json
    document = json.loads(as_json)
    assert document["total"] == 2
    by_id = {d["task_id"]: d for d in document["dead"]}
    assert set(by_id) == {failed, rejected}
    assert {k: by_id[rejected][k] for k in ("task", "queue", "reason", "deaths", "args")} == {
        "task": "ordersync.monitor_order", "queue": MONITOR_QUEUE, "reason": "rejected",
        "deaths": 1, "args": "('o-1',)",
    }  # fmt: skip
    assert by_id[failed]["died_at"].endswith("+00:00")

    code, output = tasks("replay", rejected)
    assert (code, output.strip()) == (0, "replayed 1 task")
    assert get_raw(rabbitmq_url, MONITOR_QUEUE).headers["id"] == rejected
    code, output = tasks("replay", "no-such-task")
    assert code == 1
    assert "replayed 0 tasks" in output
    assert "not in the dead-letter queue: no-such-task" in output
    code, output = tasks("replay", "--all")
    assert (code, output.strip()) == (0, "replayed 1 task")
    assert get_raw(rabbitmq_url, DEFAULT_QUEUE).headers["id"] == failed
    code, output = tasks("dead", "--json")
    assert json.loads(output) == {"total": 0, "dead": []}
