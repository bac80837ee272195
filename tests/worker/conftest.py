"""A whole tracking system for integration tests: a fresh migrated database, Redis, the
paper exchange over HTTP, real Celery worker (and beat) processes, and a trading-service
client that sends tasks by name. Also an alert webhook receiver on a free local port, and a
worker context on SQLite and fakeredis for tests of the plain functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from celery import Celery
from celery.result import AsyncResult
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.orm import Session

from core.enums import BrokerKind, OrderOrigin, OrderStatus, OrderType, Side, TimeInForce
from models import migrate
from models.accounts import ensure_account
from models.db import make_engine, make_sessionmaker
from models.ledger import Position, Trade
from models.orders import Account, Fill, InvalidTaskCall, Order
from models.trades import TradeStatus
from ordersync.settings import Settings
from ordersync.stack import prepare_rabbitmq, sender
from tests.conftest import migrated_database, session_redis
from tests.paper_exchange import PaperExchange
from tests.processes import stop_process
from worker.context import WorkerContext
from worker.stream_health import is_healthy

ACCOUNT = "test"
CREDENTIALS_ENV = "ORDERSYNC_ACCOUNT_TEST"
# Alpaca's documented limit, which the paper exchange enforces per key: the accounts of
# system tests are sized for it, as a real deployment's would be.
LIMIT_PER_MIN = 200


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


def start_streaming(system: TrackingSystem, account: str) -> None:
    """A worker and a stream process, until ``account``'s stream is healthy."""
    system.start_worker("w1")
    system.start_stream()
    _wait_streaming(system, account)


def _wait_streaming(system: TrackingSystem, account: str) -> None:
    with Session(system.engine) as session:
        account_id = session.scalar(select(Account.id).where(Account.name == account))
    health = redis.Redis.from_url(system.redis_url)
    wait_for(lambda: is_healthy(health, str(account_id)), 30, f"the stream of {account} healthy")


def place_until_faults_drawn(
    system: TrackingSystem,
    account: str,
    faults: dict[str, int],
    batch: Callable[[int], list[str]],
) -> list[str]:
    """Set the stream ``faults`` and place ``batch(n)`` after batch, each once ``account``'s
    stream is healthy again (a fault is drawn only while it is connected), until each fault
    was drawn (at most 20 batches); every cid placed."""
    system.exchange.set_faults(**faults)
    cids: list[str] = []
    for n in range(20):
        _wait_streaming(system, account)
        cids += batch(n)
        left = system.exchange.set_faults()
        if not any(left[name] for name in faults):
            break
    return cids


@pytest.fixture(scope="session")
def tracking_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local Redis (db 12) when it answers, else one embedded server for the session."""
    yield from session_redis(tmp_path_factory, "ORDERSYNC_TEST_TRACKING_REDIS_URL", 12)


@dataclass
class TrackingSystem:
    database_url: str
    redis_url: str
    exchange: PaperExchange
    var_dir: Path
    engine: Engine
    client: Celery
    env: dict[str, str]
    broker_url: str | None = None  # RabbitMQ's, when tasks travel over it (else Redis)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, name: str, concurrency: int = 2) -> subprocess.Popen[bytes]:
        return self._start(name, ["worker", "--pool", "prefork", "--concurrency",
                                  str(concurrency), "-n", f"{name}@%h", "--without-mingle",
                                  "--without-gossip"])  # fmt: skip

    def start_beat(self) -> subprocess.Popen[bytes]:
        return self._start("beat", ["beat", "-s", str(self.var_dir / "celerybeat-schedule")])

    def start_stream(self, name: str = "stream") -> subprocess.Popen[bytes]:
        """``ordersync stream``: a holder of each account's stream, or a standby."""
        return self._start(name, [], ["-m", "ordersync.cli", "stream", "--metrics-port", "0"])

    def _start(self, name: str, args: list[str],
               argv: list[str] | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
        log = (self.var_dir / f"{name}.log").open("ab")
        command = argv or ["-m", "celery", "-A", "worker", *args, "--loglevel", "INFO"]
        process = subprocess.Popen(
            [sys.executable, *command],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.processes.append(process)
        return process

    def send(self, task: str, **kwargs: Any) -> AsyncResult:
        # On RabbitMQ a call no queue takes is an error, not a message dropped in silence.
        options = {"mandatory": True} if self.broker_url else {}
        return self.client.send_task(f"ordersync.{task}", kwargs=kwargs, **options)

    def place(self, account: str = ACCOUNT, **kwargs: Any) -> AsyncResult:
        return self.send("place_order", account=account, **kwargs)

    def add_accounts(self, n: int, rate_limit_per_min: int = LIMIT_PER_MIN) -> list[str]:
        """``test`` and ``n - 1`` more accounts (``test-2`` ...), each on one of the
        exchange's keys and limited as it is: volume goes over several accounts, as trading
        teams do. Call before starting workers (their credentials go in the environment)."""
        names = [ACCOUNT]
        with Session(self.engine) as session:
            for index, (key_id, secret) in enumerate(self.exchange.accounts[1:n], start=2):
                name, env = f"{ACCOUNT}-{index}", f"{CREDENTIALS_ENV}_{index}"
                ensure_account(session, name=name, broker=BrokerKind.ALPACA,
                               base_url=self.exchange.base_url, credentials_env=env,
                               rate_limit_per_min=rate_limit_per_min,
                               now=datetime.now(UTC))  # fmt: skip
                self.env.update({f"{env}_KEY_ID": key_id, f"{env}_SECRET_KEY": secret})
                names.append(name)
            session.commit()
        return names

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


def trading_service(broker_url: str, backend_url: str) -> Celery:
    """A trading service's Celery app as the README's sender examples make it: on RabbitMQ
    with publisher confirms, sending to ordersync's queues without declaring them."""
    return sender(f"trading-service-{uuid.uuid4().hex[:6]}", broker_url, backend_url)


# The transports the system tests run on: Redis on both databases, and RabbitMQ on
# PostgreSQL as production runs (id: the variant's name in the test ids).
SYSTEM_VARIANTS = {
    "sqlite": ("sqlite", "redis"),
    "postgresql": ("postgresql", "redis"),
    "rabbitmq": ("postgresql", "rabbitmq"),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def system_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test: worker processes commit, so no rollback isolation."""
    yield from migrated_database(request.param, tmp_path)


@contextmanager
def tracking_system(
    database_url: str, redis_url: str, exchange: PaperExchange, var_dir: Path,
    rate_limit_per_min: int = LIMIT_PER_MIN, broker_url: str | None = None,
) -> Iterator[TrackingSystem]:  # fmt: skip
    """A system on this database, Redis and exchange (tasks over ``broker_url``, RabbitMQ,
    when given, else Redis): the account ``test`` on the exchange's first key; workers and
    beat started by the test are stopped at the end."""
    redis.Redis.from_url(redis_url).flushdb()
    if broker_url is not None:
        # Deployed queues outlive workers: a call sent before the first worker starts waits.
        prepare_rabbitmq(broker_url, purge=True)
    var_dir.mkdir(exist_ok=True)
    engine = make_engine(database_url)
    with Session(engine) as session:
        ensure_account(
            session, name=ACCOUNT, broker=BrokerKind.ALPACA, base_url=exchange.base_url,
            credentials_env=CREDENTIALS_ENV, rate_limit_per_min=rate_limit_per_min,
            now=datetime.now(UTC),
        )  # fmt: skip
        session.commit()
    env = {
        **os.environ,
        "ORDERSYNC_DATABASE_URL": database_url,
        "ORDERSYNC_REDIS_URL": redis_url,
        "ORDERSYNC_VAR_DIR": str(var_dir),
        f"{CREDENTIALS_ENV}_KEY_ID": exchange.key_id,
        f"{CREDENTIALS_ENV}_SECRET_KEY": exchange.secret_key,
        "ORDERSYNC_BROKER_TIMEOUT_S": "1.0",
        "ORDERSYNC_MONITOR_REVIVE_OVERDUE_S": "3",
        "ORDERSYNC_MONITOR_REVIVE_INTERVAL_S": "1",
        "ORDERSYNC_METRICS_PORT": "0",  # a test that scrapes a worker gives it a port
    }
    env.pop("ORDERSYNC_CELERY_BROKER_URL", None)
    if broker_url is not None:
        env["ORDERSYNC_CELERY_BROKER_URL"] = broker_url
    client = trading_service(broker_url or redis_url, redis_url)
    tracking = TrackingSystem(database_url, redis_url, exchange, var_dir, engine, client, env,
                              broker_url)  # fmt: skip
    try:
        yield tracking
    finally:
        for process in reversed(tracking.processes):
            stop_process(process, timeout_s=15, group=True)
        client.close()
        engine.dispose()


@pytest.fixture(params=list(SYSTEM_VARIANTS))
def system(
    request: pytest.FixtureRequest, tracking_redis_url: str, paper_exchange: PaperExchange,
    tmp_path: Path,
) -> Iterator[TrackingSystem]:  # fmt: skip
    database, transport = SYSTEM_VARIANTS[request.param]
    broker_url = request.getfixturevalue("rabbitmq_url") if transport == "rabbitmq" else None
    for database_url in migrated_database(database, tmp_path):
        with tracking_system(database_url, tracking_redis_url, paper_exchange,
                             tmp_path / "var", broker_url=broker_url) as tracking:  # fmt: skip
            yield tracking


HOOK_TOKEN = "s3cr3t-hook-token-7f9a"


@dataclass(frozen=True)
class HookRequest:
    """One POST as the receiver got it: what a signature check needs, and the answer."""

    status: int
    headers: dict[str, str]
    raw: bytes


class Hook:
    """A webhook receiver on a free port: answers ``fail_with`` to the first ``failures``
    POSTs, and to every POST while ``down`` is set, else 200; records every request (also
    with headers and raw body in ``requests``). Its URL carries a token, as real ones do."""

    def __init__(self, failures: int = 0, fail_with: int = 503) -> None:
        self.failures = failures
        self.fail_with = fail_with
        self.down = False
        self.seen: list[tuple[str, int, dict[str, Any]]] = []
        self.requests: list[HookRequest] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                with hook.lock:
                    failing = hook.down or len(hook.seen) < hook.failures
                    status = hook.fail_with if failing else 200
                    if self.path != f"/hooks/{HOOK_TOKEN}?key={HOOK_TOKEN}":
                        status = 404
                    hook.seen.append((self.path, status, body))
                    hook.requests.append(HookRequest(status, dict(self.headers.items()), raw))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}/hooks/{HOOK_TOKEN}?key={HOOK_TOKEN}"

    @property
    def attempts(self) -> int:
        with self.lock:
            return len(self.seen)

    @property
    def delivered(self) -> list[dict[str, Any]]:
        with self.lock:
            return [body for _, status, body in self.seen if status == 200]


@pytest.fixture
def hook_factory() -> Iterator[type[Hook]]:
    """Start receivers with ``hook_factory(...)``; all are stopped after the test."""
    started: list[Hook] = []

    class Started(Hook):
        def __init__(self, failures: int = 0, fail_with: int = 503) -> None:
            super().__init__(failures, fail_with)
            self.thread.start()
            started.append(self)

    yield Started
    for hook in started:
        hook.server.shutdown()
        hook.server.server_close()
        hook.thread.join(timeout=10)


T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@dataclass
class UnitWorker:
    """A worker context on a migrated SQLite file and fakeredis, with one account; the test
    sets ``adapter`` (a stub broker) and moves ``clock``."""

    ctx: WorkerContext
    account_id: str
    clock: list[datetime]
    adapter: Any = None

    def add_order(
        self, client_order_id: str, *, broker_order_id: str | None = None,
        status: OrderStatus = OrderStatus.PENDING_NEW, order_type: OrderType = OrderType.LIMIT,
        quantity: str = "5", filled: str = "0",
    ) -> str:  # fmt: skip
        now = self.clock[0]
        with self.ctx.sessions.begin() as session:
            order = Order(
                account_id=self.account_id, broker=BrokerKind.ALPACA,
                client_order_id=client_order_id, broker_order_id=broker_order_id,
                origin=OrderOrigin.PLACED, symbol="AAPL", side=Side.BUY, order_type=order_type,
                time_in_force=TimeInForce.GTC, quantity=Decimal(quantity),
                limit_price=Decimal("10") if order_type is OrderType.LIMIT else None,
                status=status, broker_filled_quantity=Decimal(filled), created_at=now,
                updated_at=now,
            )  # fmt: skip
            session.add(order)
            session.flush()
            return order.id

    def order(self, order_id: str) -> Order:
        with self.ctx.sessions() as session:
            found = session.get(Order, order_id)
            assert found is not None
            return found

    def concurrent_writer(self, order_id: str, times: int = 1) -> list[int]:
        """The next ``times`` flushes that update the order are preceded by another writer's
        committed update of the same row (check_count + 1, so its version moves on), as a
        monitor in another process would do. Returns the list of versions it wrote."""
        written: list[int] = []

        def write_first(session: Session, *_: Any) -> None:
            mine = [o for o in session.dirty if isinstance(o, Order) and o.id == order_id]
            if not mine or len(written) >= times:
                return
            with self.ctx.engine.begin() as other:
                other.execute(
                    update(Order).where(Order.id == order_id)
                    .values(check_count=Order.check_count + 1, version=Order.version + 1)
                )  # fmt: skip
                written.append(int(other.scalar(
                    select(Order.version).where(Order.id == order_id)
                ) or 0))  # fmt: skip

        event.listen(self.ctx.sessions, "before_flush", write_first)
        return written


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[UnitWorker]:
    url = f"sqlite:///{tmp_path / 'unit.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        account = ensure_account(session, name="a", broker=BrokerKind.ALPACA, base_url="x",
                                 credentials_env="X", rate_limit_per_min=200, now=T0)  # fmt: skip
        session.flush()
        account_id = account.id
    clock = [T0]
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    ctx = WorkerContext(settings, engine, sessions, fakeredis.FakeRedis(decode_responses=True),
                        None, now=lambda: clock[0])  # type: ignore[arg-type]  # fmt: skip
    worker = UnitWorker(ctx, account_id, clock)
    ctx.adapter = lambda account: worker.adapter  # type: ignore[method-assign]
    yield worker
    engine.dispose()


def position_of(system: TrackingSystem, symbol: str) -> Decimal:
    """Our recorded position in ``symbol`` (0 when none)."""
    with Session(system.engine) as session:
        held = session.scalar(select(Position.quantity).where(Position.symbol == symbol))
    return Decimal(0) if held is None else held


def trade_status(system: TrackingSystem, trade_id: str) -> TradeStatus | None:
    with Session(system.engine) as session:
        return session.scalar(select(Trade.status).where(Trade.id == trade_id))
