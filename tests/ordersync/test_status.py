"""``ordersync status`` through the CLI: tables and ``--json`` from a real Redis, and a clear
message (never a traceback) when Redis is unreachable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from ordersync.cli import app
from ordersync.embedded_redis import STATE_FILE, EmbeddedRedis, free_port
from ordersync.settings import get_settings
from tests.conftest import REQUIRE_SERVICES
from worker.heartbeat import (
    DEEP_RECONCILE,
    FIRST_MISSING_KEY,
    PURGE_CLOSED_ORDERS,
    RECONCILE_OPEN_ORDERS,
    REPORT_STALE_ORDERS,
    record_run,
)
from worker.stale import StaleClass
from worker.stale_report import store_report

TEST_REDIS_URL = "redis://127.0.0.1:6379/6"
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def status_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local Redis (db 6) when it answers, else an embedded server."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
        client.close()
        yield TEST_REDIS_URL
        return
    except redis.RedisError:
        client.close()
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis at {TEST_REDIS_URL} is required")
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False) as server:
        yield server.url


@pytest.fixture
def client(status_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(status_redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A clean environment for ``get_settings()``: its own var dir, no Redis URL."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    monkeypatch.delenv("ORDERSYNC_REDIS_URL", raising=False)
    monkeypatch.setenv("ORDERSYNC_VAR_DIR", str(var_dir))
    get_settings.cache_clear()
    yield var_dir
    get_settings.cache_clear()


def seed(client: redis.Redis, now: datetime) -> None:
    """Reconcile dead (last success 1000 s ago, then failing), deep fine, the reporter
    waiting since it was first seen missing, purge never looked at; 3 unchecked orders."""
    record_run(client, RECONCILE_OPEN_ORDERS, ok=True, started_at=now - timedelta(seconds=1001),
               finished_at=now - timedelta(seconds=1000), stats={"checked": 4})  # fmt: skip
    record_run(client, RECONCILE_OPEN_ORDERS, ok=False, started_at=now - timedelta(seconds=11),
               finished_at=now - timedelta(seconds=10), stats={},
               error="BrokerUnavailable: [503] down")  # fmt: skip
    record_run(client, DEEP_RECONCILE, ok=True, started_at=now - timedelta(seconds=12),
               finished_at=now - timedelta(seconds=10), stats={"adopted": 1})  # fmt: skip
    client.hset(FIRST_MISSING_KEY, REPORT_STALE_ORDERS, (now - timedelta(seconds=5)).isoformat())
    store_report(client, now - timedelta(seconds=3), {
        "unchecked": StaleClass("unchecked", 3, ("o-1", "o-2", "o-3")),
        "lost": StaleClass("lost", 0, ()),
    })  # fmt: skip


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["status", *args], env=ENV)
    return result.exit_code, result.stdout, result.stderr


def test_tables_show_counts_runs_and_deadman_state(
    client: redis.Redis, status_redis_url: str, settings_env: Path
) -> None:
    seed(client, datetime.now(UTC))
    code, out, err = invoke("--redis-url", status_redis_url)
    assert code == 0, err
    [unchecked] = [line for line in out.splitlines() if "unchecked" in line]
    assert "3" in unchecked
    assert "o-1 o-2 o-3" in unchecked
    [reconcile] = [line for line in out.splitlines() if f"│ {RECONCILE_OPEN_ORDERS}" in line]
    assert "failed" in reconcile
    assert "dead" in reconcile
    assert "16 min ago" in reconcile  # the last success
    [deep] = [line for line in out.splitlines() if DEEP_RECONCILE in line]
    assert " ok " in deep
    assert "waiting" in next(line for line in out.splitlines() if REPORT_STALE_ORDERS in line)
    assert "unwatched" in next(line for line in out.splitlines() if PURGE_CLOSED_ORDERS in line)
    assert "last errors: reconcile_open_orders: BrokerUnavailable: [503] down" in out


def test_json_output(client: redis.Redis, status_redis_url: str, settings_env: Path) -> None:
    seed(client, datetime.now(UTC))
    code, out, err = invoke("--json", "--redis-url", status_redis_url)
    assert code == 0, err
    status = json.loads(out)
    assert status["stale"]["counts"] == {
        "market_not_terminal": 0, "pending_new": 0, "pending_cancel": 0, "unchecked": 3,
        "lost": 0,
    }  # fmt: skip
    assert status["stale"]["order_ids"]["unchecked"] == ["o-1", "o-2", "o-3"]
    sweeps = status["sweeps"]
    assert list(sweeps) == [RECONCILE_OPEN_ORDERS, DEEP_RECONCILE, REPORT_STALE_ORDERS,
                            PURGE_CLOSED_ORDERS]  # fmt: skip
    assert sweeps[RECONCILE_OPEN_ORDERS]["runs"] == 2
    assert sweeps[RECONCILE_OPEN_ORDERS]["failures"] == 1
    assert sweeps[RECONCILE_OPEN_ORDERS]["last_run_ok"] is False
    assert sweeps[RECONCILE_OPEN_ORDERS]["deadman"]["state"] == "dead"
    assert sweeps[RECONCILE_OPEN_ORDERS]["deadman"]["limit_s"] == 90
    assert sweeps[DEEP_RECONCILE]["deadman"]["state"] == "ok"
    assert sweeps[DEEP_RECONCILE]["last_stats"] == {"adopted": 1}
    assert sweeps[REPORT_STALE_ORDERS]["deadman"]["state"] == "waiting"
    assert sweeps[PURGE_CLOSED_ORDERS]["deadman"]["state"] == "unwatched"


def test_the_url_comes_from_the_settings(
    client: redis.Redis, status_redis_url: str, settings_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("ORDERSYNC_REDIS_URL", status_redis_url)
    get_settings.cache_clear()
    code, out, err = invoke("--json")
    assert code == 0, err
    assert json.loads(out)["stale"] is None  # before any report


def test_the_embedded_server_is_found_through_the_var_dir(
    client: redis.Redis, status_redis_url: str, settings_env: Path
) -> None:
    (settings_env / STATE_FILE).write_text(json.dumps({"url": status_redis_url, "pid": 1}))
    seed(client, datetime.now(UTC))
    code, out, err = invoke("--json")
    assert code == 0, err
    assert json.loads(out)["stale"]["counts"]["unchecked"] == 3


def assert_clear_error(code: int, out: str, err: str, *expected: str) -> None:
    assert code == 2
    assert "Traceback" not in out + err
    assert "Redis is not reachable" in err
    for text in expected:
        assert text in err.replace("\n", " ")


def test_an_unreachable_redis_is_a_clear_error(settings_env: Path) -> None:
    port = free_port()
    code, out, err = invoke("--redis-url", f"redis://:hunter2@127.0.0.1:{port}/0")
    assert_clear_error(code, out, err, f"127.0.0.1:{port}")
    assert "hunter2" not in out + err


def test_no_embedded_redis_running_is_a_clear_error(settings_env: Path) -> None:
    code, out, err = invoke("--json")
    assert_clear_error(code, out, err, "ordersync up", "ORDERSYNC_REDIS_URL")


def test_a_dead_embedded_redis_is_a_clear_error(settings_env: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    (settings_env / STATE_FILE).write_text(json.dumps({"url": url, "pid": 1}))
    code, out, err = invoke()
    assert_clear_error(code, out, err, url)
