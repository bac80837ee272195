"""A whole tracking system for integration tests: a fresh migrated database, Redis, the
paper exchange over HTTP, real Celery worker (and beat) processes, and a trading-service
client that sends tasks by name."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from models.accounts import ensure_account
from models.db import make_engine
from models.enums import BrokerKind
from models.orders import Fill, InvalidTaskCall, Order
from ordersync.embedded_redis import EmbeddedRedis
from tests.conftest import LOCAL_REDIS_URL, REQUIRE_SERVICES, migrated_database
from tests.paper_exchange import PaperExchange
from tests.processes import stop_process

ACCOUNT = "test"
CREDENTIALS_ENV = "ORDERSYNC_ACCOUNT_TEST"


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll until truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def tracking_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local Redis (db 12) when it answers, else one embedded server for the session."""
    url = os.environ.get(
        "ORDERSYNC_TEST_TRACKING_REDIS_URL", LOCAL_REDIS_URL.rsplit("/", 1)[0] + "/12"
    )
    client = redis.Redis.from_url(url)
    try:
        client.ping()
        client.close()
        yield url
        return
    except redis.RedisError:
        client.close()
        if REQUIRE_SERVICES:
            pytest.fail("local Redis required in CI")
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False) as server:
        yield server.url


@dataclass
class TrackingSystem:
    database_url: str
    redis_url: str
    exchange: PaperExchange
    var_dir: Path
    engine: Engine
    client: Celery
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, name: str, concurrency: int = 2) -> subprocess.Popen[bytes]:
        return self._start(name, ["worker", "--pool", "prefork", "--concurrency",
                                  str(concurrency), "-n", f"{name}@%h", "--without-mingle",
                                  "--without-gossip"])  # fmt: skip

    def start_beat(self) -> subprocess.Popen[bytes]:
        return self._start("beat", ["beat", "-s", str(self.var_dir / "celerybeat-schedule")])

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.var_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", *args, "--loglevel", "INFO"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.processes.append(process)
        return process

    def send(self, task: str, **kwargs: Any) -> AsyncResult:
        return self.client.send_task(f"ordersync.{task}", kwargs=kwargs)

    def place(self, **kwargs: Any) -> AsyncResult:
        return self.send("place_order", account=ACCOUNT, **kwargs)

    def orders(self) -> list[Order]:
        with Session(self.engine) as session:
            return list(session.scalars(select(Order)))

    def fills(self) -> list[Fill]:
        with Session(self.engine) as session:
            return list(session.scalars(select(Fill)))

    def invalid_calls(self) -> list[InvalidTaskCall]:
        with Session(self.engine) as session:
            return list(session.scalars(select(InvalidTaskCall)))

    def count_orders(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(Order)) or 0)

    def log(self, name: str) -> str:
        path = self.var_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(params=["sqlite", "postgresql"])
def system_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test: worker processes commit, so no rollback isolation."""
    yield from migrated_database(request.param, tmp_path)


@pytest.fixture
def system(
    system_database_url: str, tracking_redis_url: str, paper_exchange: PaperExchange,
    tmp_path: Path,
) -> Iterator[TrackingSystem]:  # fmt: skip
    redis.Redis.from_url(tracking_redis_url).flushdb()
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    engine = make_engine(system_database_url)
    with Session(engine) as session:
        ensure_account(
            session, name=ACCOUNT, broker=BrokerKind.ALPACA, base_url=paper_exchange.base_url,
            credentials_env=CREDENTIALS_ENV, rate_limit_per_min=100_000, now=datetime.now(UTC),
        )  # fmt: skip
        session.commit()
    env = {
        **os.environ,
        "ORDERSYNC_DATABASE_URL": system_database_url,
        "ORDERSYNC_REDIS_URL": tracking_redis_url,
        "ORDERSYNC_VAR_DIR": str(var_dir),
        f"{CREDENTIALS_ENV}_KEY_ID": paper_exchange.key_id,
        f"{CREDENTIALS_ENV}_SECRET_KEY": paper_exchange.secret_key,
        "ORDERSYNC_BROKER_TIMEOUT_S": "1.0",
        "ORDERSYNC_MONITOR_REVIVE_OVERDUE_S": "3",
        "ORDERSYNC_MONITOR_REVIVE_INTERVAL_S": "1",
    }
    client = Celery(f"trading-service-{uuid.uuid4().hex[:6]}", broker=tracking_redis_url,
                    backend=tracking_redis_url)  # fmt: skip
    tracking = TrackingSystem(system_database_url, tracking_redis_url, paper_exchange, var_dir,
                              engine, client, env)  # fmt: skip
    try:
        yield tracking
    finally:
        for process in reversed(tracking.processes):
            stop_process(process, timeout_s=15, group=True)
        client.close()
        engine.dispose()
