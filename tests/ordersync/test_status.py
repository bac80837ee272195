"""``ordersync status`` through the CLI: tables and ``--json`` from a real Redis, a real
database (SQLite and PostgreSQL, migrated by Alembic) and the real task transport; each
section of the database or the transport missing alone when its source is unreachable, a
clear message (never a traceback) and exit 2 when Redis is; ``--watch`` refreshing."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from kombu import Connection
from sqlalchemy import Engine, select
from sqlalchemy import text as sql
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from core.enums import OrderStatus
from models.db import make_engine
from models.orders import Account
from models.outbox import EventKind, add_event
from ordersync.cli import app
from ordersync.embedded_redis import STATE_FILE, EmbeddedRedis, free_port
from ordersync.settings import get_settings
from ordersync.status import RedisUnreachable, Status, StatusReader, open_database
from tests.conftest import REQUIRE_SERVICES, claimed, migrated_database
from tests.ordersync.metrics.test_readings import add_account, add_fill, add_order
from tests.rabbitmq import purge
from worker import topology
from worker.budget import bucket_key, stats_key
from worker.heartbeat import (
    DEEP_RECONCILE,
    FIRST_MISSING_KEY,
    PURGE_CLOSED_ORDERS,
    RECONCILE_OPEN_ORDERS,
    REPORT_STALE_ORDERS,
    record_run,
)
from worker.metrics import WORKERS_KEY
from worker.stale import StaleClass
from worker.stale_report import store_report
from worker.stream_health import mark_healthy
from worker.topology import DEFAULT_QUEUE

TEST_REDIS_URL = "redis://127.0.0.1:6379/6"
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def status_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local Redis (db 6) when it answers and no other test session holds it (the tests
    empty it), else an embedded server."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        answers = bool(client.ping())
    except redis.RedisError:
        answers = False
    finally:
        client.close()
    if not answers and REQUIRE_SERVICES:
        pytest.fail(f"Redis at {TEST_REDIS_URL} is required")
    if answers:
        with claimed(TEST_REDIS_URL) as mine:
            if mine:
                yield TEST_REDIS_URL
                return
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
    monkeypatch.delenv("ORDERSYNC_CELERY_BROKER_URL", raising=False)
    monkeypatch.setenv("ORDERSYNC_VAR_DIR", str(var_dir))
    # No database unless a test makes one (never the checkout's var/ordersync.db).
    monkeypatch.setenv("ORDERSYNC_DATABASE_URL", f"sqlite:///{var_dir / 'none.db'}")
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
    setting(monkeypatch, "ORDERSYNC_REDIS_URL", status_redis_url)
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


# --- the live state: database, Redis and transport -------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, settings_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Engine]:  # fmt: skip
    """A fresh migrated database of its own, where ``ordersync status`` looks."""
    for url in migrated_database(request.param, tmp_path):
        setting(monkeypatch, "ORDERSYNC_DATABASE_URL", url)
        engine = make_engine(url)
        yield engine
        engine.dispose()


def seed_system(engine: Engine, client: redis.Redis, now: datetime) -> None:
    """alpha (200/min): 2 new, 1 filled, its bucket blocked after 429s; beta (100/min): 1
    partially filled with a fill gap, 1 canceled, no bucket yet (full). Ten fills detected
    1..10 s after their execution, 2 events waiting for 30 s, 3 tasks in ``celery``, one
    worker online and one gone for 2 minutes."""
    with Session(engine) as session:
        alpha = add_account(session, "alpha", rate_limit_per_min=200)
        beta = add_account(session, "beta", rate_limit_per_min=100)
        for status in (OrderStatus.NEW, OrderStatus.NEW):
            add_order(session, alpha, status)
        filled = add_order(session, alpha, OrderStatus.FILLED, filled="10", broker_filled="10")
        add_order(session, beta, OrderStatus.PARTIALLY_FILLED, filled="3", broker_filled="5")
        add_order(session, beta, OrderStatus.CANCELED)
        for latency_s in range(1, 11):
            add_fill(session, filled, recorded_at=now - timedelta(seconds=20), latency_s=latency_s)
        for _ in range(2):
            add_event(session, EventKind.ORDER_PLACED, {}, now=now - timedelta(seconds=30))
        session.commit()
        alpha_id = alpha.id
    client.hset(
        bucket_key(alpha_id), mapping={"tokens": "0", "at": now.timestamp() * 1000 + 60_000}
    )
    client.hset(stats_key(alpha_id), mapping={"granted": 7, "waited": 2, "wait_ms": 1500,
                                             "exhausted": 1, "throttled_429": 3})  # fmt: skip
    client.lpush(DEFAULT_QUEUE, "t1", "t2", "t3")
    client.zadd(WORKERS_KEY, {"w1@host": now.timestamp(), "w2@host": now.timestamp() - 130})


def setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """Set an ORDERSYNC_ variable for the command (its settings are read anew)."""
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def cells(out: str, first: str) -> list[str]:
    """The cells of the first table row (or header) that starts with ``first``."""
    rows = [re.split("[│┃]", row)[1:-1] for row in out.splitlines() if row[:1] in "│┃"]
    found = next(row for row in rows if row[0].strip() == first)
    return [cell.strip() for cell in found]


def line(out: str, label: str) -> str:
    [found] = [text for text in out.splitlines() if text.startswith(label)]
    return " ".join(found.split())


def test_the_screen_shows_the_live_state(
    database: Engine, client: redis.Redis, status_redis_url: str
) -> None:
    seed_system(database, client, datetime.now(UTC))
    code, out, err = invoke("--redis-url", status_redis_url)
    assert code == 0, err
    assert line(out, "workers").startswith(
        "workers 1 online: w1@host; offline: w2@host (last seen 2"
    )
    assert line(out, "queues") == "queues celery 3 · ordersync.monitor 0"
    assert line(out, "fill detection") == (
        "fill detection 10 fills recorded in the last 5 min: "
        "p50 5.00 s · p90 9.00 s · p99 10.0 s · max 10.0 s"
    )
    assert re.fullmatch(r"outbox 2 events waiting, the oldest for 3\d s", line(out, "outbox"))
    assert "Orders by account and status" in out
    header = cells(out, "account")
    assert header[:6] == ["account", "new", "partially_filled", "filled", "canceled", "total"]
    assert cells(out, "alpha") == ["alpha", "2", "0", "1", "0", "3", "0"]
    assert cells(out, "beta") == ["beta", "0", "1", "0", "1", "2", "1"]
    assert "Request budget per account" in out
    budget_rows = [row for row in out.splitlines() if "/ 40" in row or "/ 20" in row]
    assert [[cell.strip() for cell in row.split("│")[1:-1]] for row in budget_rows] == [
        ["alpha", "0.0 / 40", "7", "2", "1.50 s", "1", "3"],
        ["beta", "20.0 / 20", "0", "0", "0.00 s", "0", "0"],
    ]
    assert "Stale orders (no report yet)" in out
    assert "Sweeps" in out
    assert line(out, "Broker streams") == "Broker streams: alpha down · beta down"
    with Session(database) as session:
        alpha_id = session.scalars(select(Account.id).where(Account.name == "alpha")).one()
    mark_healthy(client, alpha_id, 60)
    code, out, err = invoke("--redis-url", status_redis_url)
    assert line(out, "Broker streams") == "Broker streams: alpha healthy · beta down"


def test_json_carries_every_section(
    database: Engine, client: redis.Redis, status_redis_url: str
) -> None:
    seed_system(database, client, datetime.now(UTC))
    code, out, err = invoke("--json", "--redis-url", status_redis_url)
    assert code == 0, err
    status = json.loads(out)
    assert status["errors"] == {}
    assert status["workers"]["online"] == ["w1@host"]
    assert list(status["workers"]["last_seen"]) == ["w2@host", "w1@host"]
    assert status["queues"] == {"celery": 3, "ordersync.monitor": 0}
    assert status["orders"] == {
        "by_account": {"alpha": {"FILLED": 1, "NEW": 2},
                       "beta": {"CANCELED": 1, "PARTIALLY_FILLED": 1}},
        "fill_gaps": {"alpha": 0, "beta": 1},
    }  # fmt: skip
    assert status["budgets"] == [
        {"account": "alpha", "tokens": 0.0, "capacity": 40, "granted": 7, "waited": 2,
         "wait_s": 1.5, "exhausted": 1, "throttled_429": 3},
        {"account": "beta", "tokens": 20.0, "capacity": 20, "granted": 0, "waited": 0,
         "wait_s": 0.0, "exhausted": 0, "throttled_429": 0},
    ]  # fmt: skip
    assert status["streams"] == {"alpha": False, "beta": False}  # no stream process here
    assert status["detection_latency"] == {"window_s": 300.0, "count": 10, "p50_s": 5.0,
                                           "p90_s": 9.0, "p99_s": 10.0, "max_s": 10.0}  # fmt: skip
    assert status["outbox"]["waiting"] == 2
    assert 30 <= status["outbox"]["oldest_age_s"] < 60
    assert status["stale"] is None
    assert set(status["sweeps"]) >= {RECONCILE_OPEN_ORDERS, DEEP_RECONCILE}


def test_the_latency_window_is_a_setting(
    database: Engine, client: redis.Redis, status_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_system(database, client, datetime.now(UTC))  # the fills were recorded 20 s ago
    setting(monkeypatch, "ORDERSYNC_STATUS_LATENCY_WINDOW_S", "10")
    code, out, err = invoke("--redis-url", status_redis_url)
    assert code == 0, err
    assert line(out, "fill detection") == "fill detection no fills recorded in the last 10 s"


def test_status_writes_nothing(
    database: Engine, client: redis.Redis, status_redis_url: str
) -> None:
    seed_system(database, client, datetime.now(UTC))
    before = {key: client.dump(key) for key in client.keys("*")}
    assert invoke("--redis-url", status_redis_url)[0] == 0
    assert invoke("--json", "--redis-url", status_redis_url)[0] == 0
    assert {key: client.dump(key) for key in client.keys("*")} == before


def test_the_database_connection_cannot_write(database: Engine) -> None:
    engine = open_database(get_settings().database_url)
    try:
        with engine.connect() as connection, pytest.raises(SQLAlchemyError, match="read"):
            connection.execute(sql("DELETE FROM orders"))
    finally:
        engine.dispose()


def test_an_unreachable_database_blanks_only_its_sections(
    client: redis.Redis, status_redis_url: str, settings_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    seed(client, datetime.now(UTC))
    client.lpush(DEFAULT_QUEUE, "t1")
    setting(monkeypatch, "ORDERSYNC_DATABASE_URL",
            f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/x")  # fmt: skip
    code, out, err = invoke("--redis-url", status_redis_url)
    assert code == 0, err
    assert "Traceback" not in out + err
    assert "hunter2" not in out + err
    assert line(out, "Orders").startswith("Orders: database unavailable: OperationalError: ")
    assert line(out, "Request budget").startswith("Request budget: database unavailable")
    assert line(out, "fill detection").startswith("fill detection database unavailable")
    assert line(out, "outbox").startswith("outbox database unavailable")
    assert line(out, "queues") == "queues celery 1 · ordersync.monitor 0"
    assert "o-1 o-2 o-3" in cells(out, "unchecked")  # Redis's sections as ever

    code, out, err = invoke("--json", "--redis-url", status_redis_url)
    status = json.loads(out)
    assert sorted(status["errors"]) == ["budgets", "latency", "orders", "outbox", "streams"]
    assert status["orders"] is None
    assert status["queues"] == {"celery": 1, "ordersync.monitor": 0}
    assert status["stale"]["counts"]["unchecked"] == 3


def test_a_missing_sqlite_file_is_reported_not_created(
    client: redis.Redis, status_redis_url: str, settings_env: Path
) -> None:
    code, out, err = invoke("--json", "--redis-url", status_redis_url)
    assert code == 0, err
    missing = settings_env / "none.db"
    assert json.loads(out)["errors"]["orders"] == (
        f"database unavailable: DatabaseMissing: no SQLite database at {missing}"
    )
    assert not missing.exists()


def test_an_unreachable_transport_blanks_only_the_queues(
    database: Engine, client: redis.Redis, status_redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    seed_system(database, client, datetime.now(UTC))
    setting(monkeypatch, "ORDERSYNC_CELERY_BROKER_URL",
            f"amqp://guest:hunter2@127.0.0.1:{free_port()}//")  # fmt: skip
    code, out, err = invoke("--redis-url", status_redis_url)
    assert code == 0, err
    assert "hunter2" not in out + err
    assert line(out, "queues").startswith("queues task transport unavailable: OperationalError")
    assert cells(out, "alpha")[:2] == ["alpha", "2"]


def test_the_queues_on_rabbitmq(
    client: redis.Redis, status_redis_url: str, settings_env: Path, rabbitmq_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    with Connection(rabbitmq_url, connect_timeout=5) as connection:
        topology.declare(connection, delivery_limit=5)  # as a worker does when it starts
    purge(rabbitmq_url)
    setting(monkeypatch, "ORDERSYNC_CELERY_BROKER_URL", rabbitmq_url)
    code, out, err = invoke("--json", "--redis-url", status_redis_url)
    assert code == 0, err
    assert json.loads(out)["queues"] == {"celery": 0, "ordersync.monitor": 0, "ordersync.dead": 0}


def test_watch_refreshes_until_the_count(
    client: redis.Redis, status_redis_url: str, settings_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Each refresh reads again: a task sent between two shows in the next screen."""
    sleep = time.sleep

    def a_task_arrives(seconds: float) -> None:
        client.lpush(DEFAULT_QUEUE, "task")
        sleep(seconds)

    monkeypatch.setattr("ordersync.status.pause", a_task_arrives)
    code, out, err = invoke("--watch", "--interval", "0.05", "--count", "3",
                            "--redis-url", status_redis_url)  # fmt: skip
    assert code == 0, err
    assert out.count("ordersync status at ") == 3
    assert [line(screen, "queues") for screen in out.split("ordersync status at ")[1:]] == [
        f"queues celery {n} · ordersync.monitor 0" for n in (0, 1, 2)
    ]

    code, out, err = invoke("--watch", "--json", "--interval", "0.05", "--count", "2",
                            "--redis-url", status_redis_url)  # fmt: skip
    assert code == 0, err
    assert [json.loads(line)["queues"]["celery"] for line in out.splitlines()] == [2, 3]


def test_watch_on_a_terminal_redraws_in_place(
    client: redis.Redis, status_redis_url: str, settings_env: Path
) -> None:
    result = CliRunner().invoke(
        app, ["status", "--watch", "--interval", "0.05", "--count", "3", "--redis-url",
              status_redis_url],
        env={**ENV, "FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("ordersync status at ") >= 3
    assert "\x1b[" in result.stdout  # the cursor goes back up over the last screen


def test_watch_shows_redis_going_away_and_goes_on(
    client: redis.Redis, status_redis_url: str, settings_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    reads = 0
    real_read = StatusReader.read

    def flaky(self: StatusReader, now: datetime) -> Status:
        nonlocal reads
        reads += 1
        if reads == 2:
            raise RedisUnreachable("here", "ConnectionError: gone")
        return real_read(self, now)

    monkeypatch.setattr(StatusReader, "read", flaky)
    code, out, err = invoke("--watch", "--interval", "0.05", "--count", "3",
                            "--redis-url", status_redis_url)  # fmt: skip
    assert code == 0, err
    assert out.count("ordersync status at ") == 2
    assert "Redis is not reachable at here: ConnectionError: gone (trying again)" in out
