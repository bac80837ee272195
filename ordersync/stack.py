"""The whole system as child processes (Redis, paper exchange, worker, beat, Flower, the
metrics exporter, the HTTP API), started in order with readiness deadlines and stopped in
reverse, for ``ordersync up`` and ``bench``.

Every child runs in its own process group (so Ctrl-C in a terminal reaches only us, and
stopping reaches its pool processes too) with its output in ``<var_dir>/logs/<name>.log``.
``<var_dir>/stack.json`` names the live children, so a start after a killed run clears them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import httpx
import redis
from celery import Celery
from celery.signals import before_task_publish
from kombu.connection import Connection
from kombu.entity import Queue

from core.enums import BrokerKind
from models import migrate
from models.accounts import UnknownAccount, ensure_account, get_account
from models.api_keys import create_key
from models.db import make_engine, make_sessionmaker
from ordersync.embedded_redis import STATE_FILE, EmbeddedRedis, free_port, ping
from ordersync.exchange_keys import ExchangeKeysError, exchange_accounts_env, new_key_pairs
from ordersync.metrics.record import stamp_sent_at
from ordersync.settings import AMQP_SCHEMES, get_settings
from worker import topology
from worker.stream_health import is_healthy
from worker.topology import DEFAULT_QUEUE

FLOWER_PORT = 5555
FLOWER_USER = "ordersync"  # the user of the password generated when FLOWER_BASIC_AUTH is unset
RATE_LIMIT_PER_MIN = 200  # Alpaca's documented limit per key: the paper exchange keeps it too
STACK_FILE = "stack.json"
BEAT_SCHEDULE = "celerybeat-schedule"
POLL_S = 0.05
LOG_TAIL_LINES = 15


class StackError(RuntimeError):
    """A part of the system would not start; the message names it and its log."""


@dataclass(frozen=True, slots=True)
class StackConfig:
    """What to start; ``*_port`` 0 picks a free port, ``redis_url``/``exchange_url`` reuse
    running services instead of starting them."""

    var_dir: Path
    database_url: str
    redis_url: str | None = None
    redis_persist: bool = True
    # Celery's transport: an amqp:// URL puts tasks on RabbitMQ (ordersync's queues are
    # declared before anything starts); None: on the stack's Redis. ``purge_queues``
    # empties ordersync's RabbitMQ queues first (the bench's runs: leftovers would load
    # the workers).
    broker_url: str | None = None
    purge_queues: bool = False
    exchange_url: str | None = None
    exchange_key_id: str | None = None
    exchange_secret_key: str | None = None
    sim_port: int = 8765
    sim_args: tuple[str, ...] = ()
    flower_port: int = FLOWER_PORT
    account: str = "demo"
    # The venue of the exchange the accounts trade at (their key pairs are made there).
    broker: BrokerKind = BrokerKind.ALPACA
    # Accounts (one key each at the exchange, each limited to ``rate_limit_per_min``):
    # 1 is ``account`` itself, more are ``<account>-1`` ... ``<account>-N``.
    accounts: int = 1
    ensure_account: bool = True
    rate_limit_per_min: int = RATE_LIMIT_PER_MIN
    # Tasks wait on the broker, Redis and the database much of the time: 4 processes keep
    # 2 cores busy (measured: 105 vs 129 orders/s on SQLite). 0: use running workers.
    worker_concurrency: int = 4
    # Worker processes (each with ``worker_concurrency`` pool processes): ``worker``, or
    # ``worker-1`` ... ``worker-N``, so that one can be killed while another works on.
    worker_processes: int = 1
    beat: bool = True
    flower: bool = True
    # Prometheus: each worker serves its pool's counts on 127.0.0.1 at ``metrics_port``
    # (the next worker one port up; 0 picks free ports; None serves none), and
    # ``exporter`` starts ``ordersync exporter`` (the database's and Redis's gauges) on
    # ``exporter_port`` (0 picks one).
    metrics_port: int | None = 0
    exporter: bool = False
    exporter_port: int = 0
    # ``ordersync api`` (the HTTP API and the dashboard) on 127.0.0.1 at ``api_port`` (0
    # picks one), with ORDERSYNC_API_ADMIN_KEY's admin key, else one generated for this run.
    api: bool = True
    api_port: int = 0
    # ``ordersync stream``: every account's order updates over the exchange's stream.
    stream: bool = False
    start_deadline_s: float = 90.0
    stop_deadline_s: float = 20.0


@dataclass(frozen=True, slots=True)
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    started: str | None  # kernel start time: tells this process from a later one on its pid
    argv: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # what it was started with, to start it again

    @property
    def pid(self) -> int:
        return self.process.pid


def credentials_env(account: str) -> str:
    """The environment prefix holding an account's key pair, e.g. ORDERSYNC_ACCOUNT_DEMO."""
    return "ORDERSYNC_ACCOUNT_" + re.sub(r"[^A-Z0-9]", "_", account.upper())


def account_names(config: StackConfig) -> list[str]:
    if config.accounts <= 1:
        return [config.account]
    return [f"{config.account}-{n}" for n in range(1, config.accounts + 1)]


class Stack:
    """Context manager: ``with Stack(config) as stack:`` runs the system; leaving stops it,
    also after a failed or interrupted start."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.var_dir = config.var_dir.resolve()
        self.logs = self.var_dir / "logs"
        self.children: list[Child] = []
        self.redis: EmbeddedRedis | None = None
        self.redis_url = ""
        self.exchange_url = ""
        self.flower_url: str | None = None
        self.metrics_urls: dict[str, str] = {}  # worker name -> its /metrics
        self.exporter_url: str | None = None
        # Flower's basic auth (user, password), once started; generated unless the
        # environment's FLOWER_BASIC_AUTH gave it.
        self.flower_auth: tuple[str, str] | None = None
        self.flower_auth_generated = False
        self.api_url: str | None = None  # http://127.0.0.1:<port>, once started
        # The API's admin key, once started: ORDERSYNC_API_ADMIN_KEY's, else generated (and
        # then only in the API's environment, never on a command line or in a file).
        self.api_admin_key: str | None = None
        self.api_admin_key_generated = False
        self.owns_exchange = config.exchange_url is None
        self.accounts = account_names(config)
        # Each account's key pair at the exchange, once started.
        self.key_pairs: dict[str, tuple[str, str]] = {}
        self._recording = False  # stack.json is ours only once stale state is cleared

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.stop()

    # -- start ------------------------------------------------------------------------------

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        clear_stale(self.var_dir, self.config.stop_deadline_s)
        self._recording = True
        self._record()
        self.redis_url = self._start_redis()
        if self.config.broker_url and urlsplit(self.config.broker_url).scheme in AMQP_SCHEMES:
            prepare_rabbitmq(self.config.broker_url, purge=self.config.purge_queues)
        migrate.upgrade(self.config.database_url)
        self.exchange_url = self._start_exchange()
        if self.config.ensure_account:
            self._ensure_account()
        waits: list[Callable[[], None]] = []
        if self.config.worker_concurrency > 0:
            waits.extend(self._start_worker(name) for name in self.worker_names)
        if self.config.beat:
            waits.append(self._start_beat())
        if self.config.flower:
            waits.append(self._start_flower())
        if self.config.exporter:
            waits.append(self._start_exporter())
        if self.config.api:
            waits.append(self._start_api())
        if self.config.stream:
            waits.append(self.start_stream())
        for wait in waits:  # started together, awaited in turn: their imports overlap
            wait()

    @property
    def broker_url(self) -> str:
        """Where Celery's tasks travel: RabbitMQ when configured, else Redis."""
        return self.config.broker_url or self.redis_url

    @property
    def key_pair(self) -> tuple[str, str]:
        """The first account's key pair."""
        return self.key_pairs.get(self.accounts[0], ("", ""))

    def credentials(self) -> dict[str, str]:
        """Every account's key pair as the environment variables its adapter reads."""
        env = {}
        for name, (key_id, secret) in self.key_pairs.items():
            prefix = credentials_env(name)
            env[f"{prefix}_KEY_ID"], env[f"{prefix}_SECRET_KEY"] = key_id, secret
        return env

    def child_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of every child: where Redis, the database and var/ are."""
        env = dict(os.environ)
        env.update(
            ORDERSYNC_REDIS_URL=self.redis_url,
            ORDERSYNC_DATABASE_URL=self.config.database_url,
            ORDERSYNC_VAR_DIR=str(self.var_dir),
            PYTHONUNBUFFERED="1",
        )
        env.pop("ORDERSYNC_CELERY_BROKER_URL", None)
        if self.config.broker_url is not None:
            env["ORDERSYNC_CELERY_BROKER_URL"] = self.config.broker_url
        env.update(extra or {})
        return env

    def spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None, *,
              append: bool = False) -> Child:  # fmt: skip
        """Start a child in its own process group, output to its log (``append``: after what
        an earlier run of it wrote); stopped with the stack."""
        log = self.logs / f"{name}.log"
        with log.open("ab" if append else "wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
                argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else self.child_env(), start_new_session=True,
            )  # fmt: skip
        child = Child(
            name,
            process,
            log,
            start_time(process.pid),
            tuple(argv),
            tuple(sorted((env if env is not None else self.child_env()).items())),
        )
        self.children.append(child)
        self._record()
        return child

    def child(self, name: str) -> Child:
        found = [c for c in self.children if c.name == name]
        if not found:
            raise StackError(f"no child named {name!r}")
        return found[-1]

    def kill(self, name: str) -> None:
        """SIGKILL a child's whole process group at once, as a crash or the OOM killer
        would (no graceful shutdown: its unacknowledged tasks are left as they are)."""
        child = self.child(name)
        _send(child.pid, signal.SIGKILL, group=True)
        _poll(lambda: not group_members(child.pid), 10.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=5)
        self.children.remove(child)
        self._record()

    def restart(self, name: str) -> Child:
        """Start a killed child again, with what it was started with."""
        argv, env = self.child(name).argv, dict(self.child(name).env)
        self.kill(name)
        return self.spawn(name, list(argv), env, append=True)

    def restart_exited(self, names: frozenset[str]) -> list[tuple[str, int]]:
        """Start again each of these children that has exited, as a process supervisor
        would; returns (name, exit code) of each one started again."""
        started = []
        for child in list(self.children):
            code = child.process.poll()
            if code is not None and child.name in names:
                self.restart(child.name)
                started.append((child.name, code))
        return started

    def restart_redis(self, down_s: float = 1.0) -> None:
        """Stop the embedded Redis (it keeps nothing: queues, locks and chains are gone)
        and start it again on the same port after ``down_s``."""
        if self.redis is None:
            raise StackError("Redis is external: the stack cannot restart it")
        port, persist = self.redis.port, self.config.redis_persist
        self.redis.stop()
        time.sleep(down_s)  # an outage of this length, not synchronisation
        self.redis = EmbeddedRedis(self.var_dir / "redis", port=port, persist=persist)
        self.redis.start()
        self._record()

    def _start_redis(self) -> str:
        if self.config.redis_url:
            url = self.config.redis_url
            wait_until(f"Redis at {redact_url(url)}", lambda: ping(url), 15.0)
            return url
        state = self.var_dir / STATE_FILE
        with contextlib.suppress(OSError, ValueError, KeyError):
            known = json.loads(state.read_text())
            if ping(known["url"]):
                raise StackError(
                    f"an embedded Redis for {self.var_dir} already runs at {known['url']} "
                    f"(pid {known.get('pid')}); stop it or set ORDERSYNC_REDIS_URL to it"
                )
        self.redis = EmbeddedRedis(self.var_dir / "redis", persist=self.config.redis_persist)
        url = self.redis.start()
        self._record()
        state.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        return url

    def _start_exchange(self) -> str:
        config = self.config
        if config.exchange_url:
            if len(self.accounts) > 1:
                raise StackError("several accounts need an exchange the stack starts")
            url = config.exchange_url.rstrip("/")
            self.key_pairs = {self.accounts[0]: (
                config.exchange_key_id or secrets.token_hex(8),
                config.exchange_secret_key or secrets.token_hex(16),
            )}  # fmt: skip
            wait_until(f"paper exchange at {url}", lambda: sim_healthy(url), 15.0)
            return url
        port = config.sim_port or free_port()
        require_free_port(port, "paper exchange")
        self.key_pairs = new_key_pairs(config.broker, self.accounts)
        url = f"http://127.0.0.1:{port}"
        try:
            accounts = exchange_accounts_env(
                config.broker, list(self.key_pairs.values()), self.var_dir / "exchange-keys"
            )
        except ExchangeKeysError as exc:
            raise StackError(str(exc)) from exc
        env = self.child_env(accounts)
        child = self.spawn(
            "paper-exchange",
            [sys.executable, "-m", "brokers.paper", "--host", "127.0.0.1", "--port", str(port),
             "--rate-limit-per-min", str(config.rate_limit_per_min), *config.sim_args],
            env,
        )  # fmt: skip
        wait_until("paper exchange", lambda: sim_healthy(url), config.start_deadline_s, child)
        return url

    def _ensure_account(self) -> None:
        config = self.config
        engine = make_engine(config.database_url)
        try:
            with make_sessionmaker(engine)() as session, session.begin():
                for name in self.accounts:
                    ensure_account(
                        session, name=name, broker=config.broker,
                        base_url=self.exchange_url, credentials_env=credentials_env(name),
                        rate_limit_per_min=config.rate_limit_per_min, now=datetime.now(UTC),
                    )  # fmt: skip
        finally:
            engine.dispose()

    def _celery(self, *role: str) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "worker", *role]

    @property
    def worker_names(self) -> list[str]:
        n = self.config.worker_processes
        return ["worker"] if n <= 1 else [f"worker-{i}" for i in range(1, n + 1)]

    def _start_worker(self, name: str) -> Callable[[], None]:
        """Task events follow ORDERSYNC_TASK_EVENTS (no ``-E``): they cost throughput."""
        env = self.child_env({**self.credentials(), **self._metrics_env(name)})
        child = self.spawn(
            name,
            self._celery("worker", "--pool", "prefork", "--concurrency",
                         str(self.config.worker_concurrency), "--loglevel", "WARNING",
                         "-n", f"ordersync-{os.getpid()}-{name}@%h"),
            env,
        )  # fmt: skip
        return lambda: wait_for_ping(self, self.config.start_deadline_s, child)

    def _metrics_env(self, worker: str) -> dict[str, str]:
        """The worker's metrics port (free, or the configured one plus its index)."""
        first = self.config.metrics_port
        if first is None:
            return {"ORDERSYNC_METRICS_PORT": "0"}
        index = self.worker_names.index(worker)
        port = first + index if first else free_port()
        if first:
            require_free_port(port, f"{worker}'s metrics")
        self.metrics_urls[worker] = f"http://127.0.0.1:{port}/metrics"
        return {"ORDERSYNC_METRICS_PORT": str(port), "ORDERSYNC_METRICS_HOST": "127.0.0.1"}

    def _start_exporter(self) -> Callable[[], None]:
        port = self.config.exporter_port or free_port()
        require_free_port(port, "metrics exporter")
        child = self.spawn("exporter", [sys.executable, "-m", "ordersync.cli", "exporter",
                                        "--host", "127.0.0.1", "--port", str(port)],
                           self.child_env())  # fmt: skip
        url = self.exporter_url = f"http://127.0.0.1:{port}/metrics"
        return lambda: wait_until("the metrics exporter", lambda: http_ok(url),
                                  self.config.start_deadline_s, child)  # fmt: skip

    def start_stream(self) -> Callable[[], None]:
        """``ordersync stream``, ready once every account's stream is healthy (connected,
        listening and caught up). Key pairs reach it in its environment."""
        child = self.spawn("stream", [sys.executable, "-m", "ordersync.cli", "stream",
                                      "--metrics-port", "0"],
                           self.child_env(self.credentials()))  # fmt: skip

        def healthy() -> bool:
            engine = make_engine(self.config.database_url)
            try:
                with make_sessionmaker(engine)() as session:
                    ids = [get_account(session, name).id for name in self.accounts]
            finally:
                engine.dispose()
            client = redis.Redis.from_url(self.redis_url)
            try:
                return all(is_healthy(client, account_id) for account_id in ids)
            finally:
                client.close()

        return lambda: wait_until("the broker streams", healthy, self.config.start_deadline_s,
                                  child)  # fmt: skip

    def _start_api(self) -> Callable[[], None]:
        """``ordersync api`` on 127.0.0.1, ready once its /readyz answers (the database,
        Redis and the transport reached). Keys reach it in its environment, never on its
        command line: the admin key, and the accounts' key pairs at the exchange (its admin
        view lists the broker's orders). Its dashboard links to this stack's Flower."""
        port = self.config.api_port or free_port()
        require_free_port(port, "API")
        settings = get_settings()
        extra = self.credentials()
        if settings.api_admin_key is None:  # a local run's own (`ordersync up` prints it)
            self.api_admin_key = extra["ORDERSYNC_API_ADMIN_KEY"] = secrets.token_urlsafe(32)
            self.api_admin_key_generated = True
        else:
            self.api_admin_key = settings.api_admin_key.get_secret_value()
            self.api_admin_key_generated = False
        if self.flower_url is not None:
            extra["ORDERSYNC_FLOWER_URL"] = self.flower_url
        if settings.metrics_url or self.exporter_url:
            extra["ORDERSYNC_METRICS_URL"] = str(settings.metrics_url or self.exporter_url)
        if settings.grafana_url:
            extra["ORDERSYNC_GRAFANA_URL"] = settings.grafana_url
        child = self.spawn("api", [sys.executable, "-m", "ordersync.cli", "api",
                                   "--host", "127.0.0.1", "--port", str(port)],
                           self.child_env(extra))  # fmt: skip
        self.api_url = f"http://127.0.0.1:{port}"
        ready, deadline = f"{self.api_url}/readyz", self.config.start_deadline_s
        return lambda: wait_until("the API", lambda: http_ok(ready), deadline, child)

    def create_api_key(self, account: str | None = None, *, label: str = "demo") -> str:
        """A new API key of ``account`` (default: the first), to show once: the database
        keeps only its digest."""
        name = account or self.accounts[0]
        engine = make_engine(self.config.database_url)
        try:
            with make_sessionmaker(engine)() as session, session.begin():
                try:
                    row = get_account(session, name)
                except UnknownAccount as exc:
                    raise StackError(f"no account {name!r} to create an API key for") from exc
                return create_key(session, row, label=label, now=datetime.now(UTC)).key
        finally:
            engine.dispose()

    def _start_beat(self) -> Callable[[], None]:
        schedule = self.var_dir / BEAT_SCHEDULE
        for stale in self.var_dir.glob(BEAT_SCHEDULE + "*"):  # a killed beat's shelve
            stale.unlink()
        child = self.spawn("beat", self._celery("beat", "-s", str(schedule), "--loglevel", "INFO"))
        deadline = self.config.start_deadline_s
        return lambda: wait_until(
            "celery beat", lambda: any(self.var_dir.glob(BEAT_SCHEDULE + "*")), deadline, child
        )

    def _start_flower(self) -> Callable[[], None]:
        """Flower on 127.0.0.1 behind HTTP basic auth, which reaches it in its environment
        (FLOWER_BASIC_AUTH), never on its command line."""
        port = self.config.flower_port or free_port()
        require_free_port(port, "Flower")
        given = os.environ.get("FLOWER_BASIC_AUTH", "")
        auth = flower_basic_auth(given)
        self.flower_auth_generated = auth is None
        if auth is None:  # a local run's own password (`ordersync up` prints it)
            auth = (FLOWER_USER, secrets.token_urlsafe(18))
            given = f"{auth[0]}:{auth[1]}"
        self.flower_auth = auth
        child = self.spawn(
            "flower",
            self._celery("flower", f"--port={port}", "--address=127.0.0.1"),
            self.child_env({"FLOWER_BASIC_AUTH": given}),
        )
        self.flower_url = f"http://127.0.0.1:{port}"
        url, deadline = self.flower_url, self.config.start_deadline_s
        return lambda: wait_until("Flower", lambda: flower_healthy(url, auth), deadline, child)

    # -- stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Reverse order; safe to call twice, and not interrupted by a second Ctrl-C."""
        failures: list[Exception] = []
        with signals_deferred():
            while self.children:
                child = self.children.pop()
                try:
                    stop_group(child.pid, child.started, self.config.stop_deadline_s, child.process)
                except Exception as exc:  # stop the others all the same
                    failures.append(exc)
            if self.redis is not None:
                redis_pid = self.redis.process.pid if self.redis.process else None
                self.redis.stop()
                if redis_pid is not None:
                    stop_group(redis_pid, None, 5.0)
                self.redis = None
                with contextlib.suppress(OSError):
                    (self.var_dir / STATE_FILE).unlink()
            if self._recording and not failures:
                self._recording = False
                with contextlib.suppress(OSError):
                    (self.var_dir / STACK_FILE).unlink()
        if failures:
            raise StackError(f"could not stop every process: {failures[0]}") from failures[0]

    def _record(self) -> None:
        """Write who runs here, so a start after this process is killed can clean up."""
        if not self._recording:
            return
        processes = [{"name": c.name, "pid": c.pid, "started": c.started} for c in self.children]
        if self.redis is not None and self.redis.process is not None:
            pid = self.redis.process.pid
            processes.insert(0, {"name": "redis", "pid": pid, "started": start_time(pid)})
        owner = {"pid": os.getpid(), "started": start_time(os.getpid())}
        path = self.var_dir / STACK_FILE
        path.with_suffix(".tmp").write_text(json.dumps({"owner": owner, "processes": processes}))
        path.with_suffix(".tmp").replace(path)


# -- readiness -------------------------------------------------------------------------------


def wait_until(
    what: str, ready: Callable[[], bool], deadline_s: float, child: Child | None = None
) -> None:
    """Poll ``ready`` until it holds; fail early with the log's tail if ``child`` exits."""
    deadline = time.monotonic() + deadline_s
    while True:
        if child is not None and child.process.poll() is not None:
            raise StackError(
                f"{what} exited with code {child.process.returncode} while starting; "
                f"{child.log}:\n{log_tail(child.log)}"
            )
        if ready():
            return
        if time.monotonic() >= deadline:
            where = f"; see {child.log}" if child is not None else ""
            raise StackError(f"{what} not ready within {deadline_s:g} s{where}")
        time.sleep(POLL_S)


def sender(name: str, broker_url: str, backend_url: str) -> Celery:
    """A Celery app that sends ordersync's tasks by name as a trading service does: on
    RabbitMQ with publisher confirms, into the queues as ordersync declared them."""
    client = Celery(name, broker=broker_url, backend=backend_url)
    before_task_publish.connect(stamp_sent_at)  # the placement latency starts at the send
    if urlsplit(broker_url).scheme in AMQP_SCHEMES:
        client.conf.broker_transport_options = {"confirm_publish": True}
        client.conf.task_queues = [Queue(DEFAULT_QUEUE, no_declare=True)]  # type: ignore[no-untyped-call]
    return client


def prepare_rabbitmq(url: str, *, purge: bool) -> None:
    """Declare ordersync's queues (a call sent before the first worker starts waits in
    them), and empty them when asked."""
    with Connection(url, connect_timeout=10) as connection:  # type: ignore[no-untyped-call]
        topology.declare(connection, get_settings().celery_delivery_limit)
        if purge:
            channel = connection.channel()
            try:
                for name in topology.all_queue_names():
                    channel.queue_purge(name)
            finally:
                channel.close()


def wait_for_ping(stack: Stack, deadline_s: float, child: Child | None = None) -> None:
    """A worker is ready when it answers ``ordersync.ping`` sent by name."""
    client = sender("ordersync-stack", stack.broker_url, stack.redis_url)
    try:
        result = client.send_task("ordersync.ping")
        wait_until("celery worker", result.ready, deadline_s, child)
        result.get(timeout=5)
        result.forget()
    finally:
        client.close()


def sim_healthy(url: str) -> bool:
    try:
        return bool(httpx.get(f"{url}/_sim/health", timeout=1).json() == {"ok": True})
    except (httpx.HTTPError, ValueError):
        return False


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def flower_basic_auth(value: str) -> tuple[str, str] | None:
    """The first ``user:password`` of a FLOWER_BASIC_AUTH value, split as Flower splits it
    (a comma-separated list), None when it is blank. The error never shows the value."""
    if not value.strip():
        return None
    user, colon, password = value.split(",", 1)[0].partition(":")
    if not (colon and user and password):
        raise StackError("FLOWER_BASIC_AUTH must be user:password (several: comma-separated)")
    return user, password


def flower_healthy(url: str, auth: tuple[str, str] | None = None) -> bool:
    """Flower answers its /healthcheck (which needs no credentials; they are sent anyway)."""
    try:
        return httpx.get(f"{url}/healthcheck", auth=auth, timeout=1).text == "OK"
    except httpx.HTTPError:
        return False


def require_free_port(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise StackError(f"port {port} for the {what} is in use ({exc.strerror})") from exc


def port_free(port: int) -> bool:
    """Whether a child could listen on 127.0.0.1 at ``port`` now."""
    try:
        require_free_port(port, "probe")
    except StackError:
        return False
    return True


def log_tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    return ""


def redact_url(url: str) -> str:
    """The URL without its password, for printing."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


# -- processes (Linux /proc) -----------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields after the command name: [0] state, [2] process group, [19] start time."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def start_time(pid: int) -> str | None:
    """The kernel's start time of a live (not zombie) process, None when there is none."""
    fields = _stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def group_members(pgid: int) -> list[int]:
    """Live processes in a process group (zombies excluded: they are only awaiting a wait)."""
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def _poll(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def _send(pgid: int, sig: signal.Signals, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        (os.killpg if group else os.kill)(pgid, sig)


def stop_group(
    pid: int, started: str | None, deadline_s: float,
    process: subprocess.Popen[bytes] | None = None,
) -> None:  # fmt: skip
    """SIGTERM the group leader (a Celery worker then finishes its running tasks), then the
    whole group; SIGKILL whatever is left at the deadline. ``pid`` leads its own group."""

    def leader_gone() -> bool:
        if process is not None:
            return process.poll() is not None
        return start_time(pid) is None or start_time(pid) != started

    if not leader_gone():
        _send(pid, signal.SIGTERM, group=False)
        _poll(leader_gone, deadline_s)
    if group_members(pid):
        _send(pid, signal.SIGTERM, group=True)
        if not _poll(lambda: not group_members(pid), 3.0):
            _send(pid, signal.SIGKILL, group=True)
            _poll(lambda: not group_members(pid), 5.0)
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def clear_stale(var_dir: Path, deadline_s: float) -> None:
    """Stop what a killed run left (recorded in stack.json); refuse if its owner still runs."""
    path = var_dir / STACK_FILE
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    owner = recorded.get("owner", {})
    owner_pid = int(owner.get("pid", 0))
    if owner_pid and owner_pid != os.getpid() and start_time(owner_pid) == owner.get("started"):
        raise StackError(f"another ordersync stack runs in {var_dir} (pid {owner_pid})")
    for entry in reversed(recorded.get("processes", [])):
        pid, started = int(entry["pid"]), entry.get("started")
        now = start_time(pid)
        if now is not None and now != started:
            continue  # the pid belongs to someone else now; the old group is empty
        if now is not None or group_members(pid):
            stop_group(pid, started, deadline_s)
    path.unlink()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM/SIGHUP while stopping, so a second Ctrl-C or a closed terminal
    cannot leave children behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in stops}
    for sig in previous:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
