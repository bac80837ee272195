"""The Stack starts the real system (Redis, paper exchange, worker, beat, Flower, the HTTP
API) and leaves no process behind: after a clean stop, a failed start, or a start after a
killed run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis
from celery import Celery
from kombu import Connection
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from core.enums import BrokerKind
from models.accounts import ensure_account
from models.orders import Account
from ordersync.stack import (
    STACK_FILE,
    Child,
    Stack,
    StackConfig,
    StackError,
    clear_stale,
    credentials_env,
    flower_healthy,
    group_members,
    http_ok,
    redact_url,
    sim_healthy,
)
from tests.conftest import claimed
from tests.processes import stop_process

LOCAL_REDIS_URL = os.environ.get("ORDERSYNC_TEST_STACK_REDIS_URL", "redis://127.0.0.1:6379/13")
REQUIRE_SERVICES = os.environ.get("ORDERSYNC_TEST_REQUIRE_SERVICES") == "1"


def test_credentials_env_names_the_variable_prefix() -> None:
    assert credentials_env("demo") == "ORDERSYNC_ACCOUNT_DEMO"
    assert credentials_env("desk-2.eu") == "ORDERSYNC_ACCOUNT_DESK_2_EU"


def test_redact_url_hides_passwords() -> None:
    assert redact_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("redis://user:s3cret@host/0") == "redis://user:***@host/0"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def make_config(tmp_path: Path, redis_url: str | None = None, **changes: object) -> StackConfig:
    fields: dict[str, object] = {
        "var_dir": tmp_path / "var", "database_url": f"sqlite:///{tmp_path / 'o.db'}",
        "redis_url": redis_url, "sim_port": 0, "flower_port": 0, "worker_concurrency": 1,
        **changes,
    }  # fmt: skip
    return StackConfig(**fields)  # type: ignore[arg-type]


def all_gone(pids: list[int]) -> bool:
    """No live process remains in any of these process groups (pool children included)."""
    return not any(group_members(pid) for pid in pids)


@pytest.fixture(params=["embedded", "local"])
def stack_redis(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: the stack starts its own Redis; else db 13 of the local server, when it answers."""
    if request.param == "embedded":
        yield None
        return
    client = redis.Redis.from_url(LOCAL_REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis at {LOCAL_REDIS_URL} is required but not reachable")
        pytest.skip(f"Redis at {LOCAL_REDIS_URL} not reachable")
    finally:
        client.close()
    with claimed(LOCAL_REDIS_URL) as mine:  # else another session's workers share the db
        if mine:
            redis.Redis.from_url(LOCAL_REDIS_URL).flushdb()
        yield LOCAL_REDIS_URL if mine else None


@pytest.mark.integration
def test_the_stack_serves_and_leaves_nothing_behind(
    tmp_path: Path, stack_redis: str | None
) -> None:
    config = make_config(tmp_path, stack_redis)
    with Stack(config) as stack:
        pids = [child.pid for child in stack.children]
        if stack.redis is not None:
            assert stack.redis.process is not None
            pids.append(stack.redis.process.pid)
        assert {child.name for child in stack.children} == {
            "paper-exchange", "worker", "beat", "flower", "api",
        }  # fmt: skip
        client = Celery("trading-service", broker=stack.redis_url, backend=stack.redis_url)
        try:
            assert set(client.send_task("ordersync.ping").get(timeout=60)) == {"pong"}
        finally:
            client.close()
        assert stack.flower_url is not None
        assert flower_healthy(stack.flower_url)
        assert_flower_switches_task_events_on(stack.redis_url)
        assert sim_healthy(stack.exchange_url)
        recorded = json.loads((config.var_dir / STACK_FILE).read_text())
        assert {p["pid"] for p in recorded["processes"]} == set(pids)
        engine = create_engine(config.database_url)
        with engine.connect() as connection:
            account = connection.execute(select(Account).where(Account.name == "demo")).one()
        engine.dispose()
        assert account.base_url == stack.exchange_url
        assert account.credentials_env == "ORDERSYNC_ACCOUNT_DEMO"
        assert_secret_stays_in_the_environment(stack)
        keys = assert_the_api_answers_each_key_with_its_accounts(stack)
        keys.append(assert_the_api_is_started_again_with_its_admin_key(stack))
    assert all_gone(pids)
    assert not (config.var_dir / STACK_FILE).exists()
    for path in (p for p in config.var_dir.rglob("*") if p.is_file()):
        for key in keys:
            assert key.encode() not in path.read_bytes(), path


def account_names(api_url: str, key: str) -> list[str]:
    answer = httpx.get(f"{api_url}/api/v1/accounts", timeout=10,
                       headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return [account["name"] for account in answer.json()]


def assert_the_api_answers_each_key_with_its_accounts(stack: Stack) -> list[str]:
    """/healthz and /readyz answer; an account's key sees its account, the admin key every
    account; the admin view reaches the exchange with the account's key pair. Returns the
    keys used."""
    assert stack.api_url is not None
    assert stack.api_admin_key is not None
    assert httpx.get(f"{stack.api_url}/healthz", timeout=10).json()["status"] == "ok"
    ready = httpx.get(f"{stack.api_url}/readyz", timeout=10).json()
    assert ready["status"] == "ok", ready
    assert set(ready["checks"].values()) == {"ok"}, ready
    engine = create_engine(stack.config.database_url)
    with Session(engine) as session, session.begin():
        ensure_account(
            session, name="other-desk", broker=BrokerKind.ALPACA, base_url=stack.exchange_url,
            credentials_env="ORDERSYNC_ACCOUNT_OTHER_DESK", rate_limit_per_min=200,
            now=datetime.now(UTC),
        )  # fmt: skip
    engine.dispose()
    demo_key = stack.create_api_key()
    assert account_names(stack.api_url, demo_key) == ["demo"]
    assert account_names(stack.api_url, stack.api_admin_key) == ["demo", "other-desk"]
    refused = httpx.get(f"{stack.api_url}/api/v1/accounts", timeout=10,
                        headers={"Authorization": f"Bearer {demo_key}x"})  # fmt: skip
    assert refused.status_code == 401
    debug = httpx.get(
        f"{stack.api_url}/api/v1/admin/accounts/demo/broker-orders", timeout=30,
        headers={"Authorization": f"Bearer {stack.api_admin_key}"},
    )  # fmt: skip
    assert debug.status_code == 200, debug.text
    assert debug.json()["broker_error"] is None
    with pytest.raises(StackError, match="no account 'nobody'"):
        stack.create_api_key("nobody")
    return [demo_key, stack.api_admin_key]


def assert_the_api_is_started_again_with_its_admin_key(stack: Stack) -> str:
    """Killed, the API is started again as ``ordersync up`` supervises it, with the same
    admin key (a generated one lives only in its environment). Returns a key it answered."""
    assert stack.api_url is not None
    assert stack.api_admin_key is not None
    api = stack.child("api")
    os.killpg(api.pid, signal.SIGKILL)
    api.process.wait(timeout=10)
    assert stack.restart_exited(frozenset({"api"})) == [("api", -signal.SIGKILL)]
    deadline = time.monotonic() + 60
    while not http_ok(f"{stack.api_url}/readyz"):
        assert stack.child("api").process.poll() is None, (stack.logs / "api.log").read_text()
        assert time.monotonic() < deadline, "the API did not answer again"
        time.sleep(0.1)
    assert account_names(stack.api_url, stack.api_admin_key) == ["demo", "other-desk"]
    demo_key = stack.create_api_key()
    assert account_names(stack.api_url, demo_key) == ["demo"]
    return demo_key


def assert_flower_switches_task_events_on(redis_url: str, deadline_s: float = 60) -> None:
    """Task events are off by default; the running Flower turns them on in the worker."""
    client = Celery("trading-service", broker=redis_url, backend=redis_url)
    succeeded: set[str] = set()
    sent: list[str] = []
    deadline = time.monotonic() + deadline_s
    try:
        with client.connection_for_read() as connection:
            receiver = client.events.Receiver(connection, handlers={})

            def on_event(event: Mapping[str, object]) -> None:
                if event.get("type") == "task-succeeded":
                    succeeded.add(str(event.get("uuid")))
                receiver.should_stop = bool(succeeded.intersection(sent))

            def on_iteration() -> None:  # about once a second while subscribed
                assert time.monotonic() < deadline, "no task event from the worker"
                sent.append(client.send_task("ordersync.ping").id)

            receiver.handlers = {"*": on_event}
            receiver.on_iteration = on_iteration  # type: ignore[method-assign]
            receiver.capture(wakeup=False)  # one subscription until should_stop
    finally:
        client.close()
    assert succeeded.intersection(sent)


def environment_value(pid: int, name: str) -> bytes:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next(v for v in environ if v.startswith(name.encode() + b"=")).split(b"=", 1)[1]


def assert_secret_stays_in_the_environment(stack: Stack) -> None:
    """The worker has the key pair in its environment, the API its admin key; no command
    line or log shows them."""
    secret = environment_value(stack.child("worker").pid, "ORDERSYNC_ACCOUNT_DEMO_SECRET_KEY")
    admin = environment_value(stack.child("api").pid, "ORDERSYNC_API_ADMIN_KEY")
    assert admin.decode() == stack.api_admin_key
    for value in (secret, admin):
        assert len(value) >= 32
        for child in stack.children:
            assert value not in Path(f"/proc/{child.pid}/cmdline").read_bytes()
        for path in [*stack.logs.iterdir(), stack.var_dir / STACK_FILE]:
            assert value not in path.read_bytes(), path
    for child in stack.children:  # the admin key reaches the API alone
        if child.name != "api" and stack.api_admin_key_generated:
            assert admin not in Path(f"/proc/{child.pid}/environ").read_bytes(), child.name


class RecordingStack(Stack):
    """Remembers every process it started, for checking after a failed start."""

    started_pids: list[int]

    def spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Child:
        child = super().spawn(name, argv, env)
        self.started_pids = [*getattr(self, "started_pids", []), child.pid]
        return child

    def _start_redis(self) -> str:
        url = super()._start_redis()
        if self.redis is not None and self.redis.process is not None:
            self.started_pids = [*getattr(self, "started_pids", []), self.redis.process.pid]
        return url


@pytest.mark.integration
@pytest.mark.parametrize("taken", ["sim_port", "flower_port", "api_port"])
def test_a_failed_start_stops_what_it_started(tmp_path: Path, taken: str) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        config = make_config(tmp_path, **{taken: blocker.getsockname()[1]})
        stack = RecordingStack(config)
        with pytest.raises(StackError, match=r"port \d+ for the .* is in use"), stack:
            pytest.fail("the stack started on a taken port")
    started = stack.started_pids
    # redis; or + sim, worker, beat; or + flower
    assert len(started) == {"sim_port": 1, "flower_port": 4, "api_port": 5}[taken]
    assert all_gone(started)
    assert stack.children == []
    assert not (config.var_dir / STACK_FILE).exists()


KILLED_RUN = """
import pathlib, sys, threading
from ordersync.stack import Stack, StackConfig
config = StackConfig(var_dir=pathlib.Path(sys.argv[1]), database_url=sys.argv[2], sim_port=0,
                     flower=False, worker_concurrency=1)
Stack(config).start()
print("ready", flush=True)
threading.Event().wait()
"""


@pytest.mark.integration
def test_a_start_after_a_killed_run_clears_what_it_left(tmp_path: Path) -> None:
    config = make_config(tmp_path, flower=False)
    owner = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(config.var_dir), config.database_url],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "ready"
        left = [
            p["pid"] for p in json.loads((config.var_dir / STACK_FILE).read_text())["processes"]
        ]
        with pytest.raises(StackError, match="another ordersync stack runs"), Stack(config):
            pytest.fail("a second stack started in the same var dir")
        assert (config.var_dir / STACK_FILE).exists()  # the running stack's record stays
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        assert not all_gone(left)  # the children outlive their killed owner
        with Stack(config) as stack:
            assert all_gone(left)
            assert stack.redis_url not in {"", None}
    finally:
        stop_process(owner)
        if owner.stdout is not None:
            owner.stdout.close()
        clear_stale(config.var_dir.resolve(), 10.0)  # whatever a failed assertion left


def test_a_stack_on_rabbitmq_declares_the_queues_and_its_worker_answers_over_it(
    tmp_path: Path, rabbitmq_url: str
) -> None:
    with Connection(rabbitmq_url) as connection:  # a call left by an earlier run
        connection.default_channel.queue_delete("celery")
    config = make_config(tmp_path, None, flower=False, beat=False, worker_concurrency=1,
                         broker_url=rabbitmq_url, purge_queues=True)  # fmt: skip
    with Stack(config) as stack:
        assert stack.broker_url == rabbitmq_url
        worker_env = dict(stack.child("worker").env)
        assert worker_env["ORDERSYNC_CELERY_BROKER_URL"] == rabbitmq_url
        with Connection(rabbitmq_url) as connection:
            declared = connection.default_channel.queue_declare("celery", passive=True)
            assert declared.message_count == 0  # answered: the ping went over RabbitMQ
        assert "amqp://guest:**@" in (stack.logs / "worker.log").read_text()
