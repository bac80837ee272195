"""Shared fixtures: a migrated database on SQLite and PostgreSQL, Redis local or embedded,
RabbitMQ (a vhost of the session's own on the local server).

PostgreSQL, the local Redis and RabbitMQ are used when they answer and skipped when they
don't, except with ORDERSYNC_TEST_REQUIRE_SERVICES=1 (CI), where their absence fails the run.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from models import migrate
from models.db import make_engine, normalize_url
from ordersync.embedded_redis import EmbeddedRedis
from tests.rabbitmq import RabbitMQUnavailable, create_vhost, delete_vhost

pytest_plugins = ["tests.paper_exchange"]

POSTGRES_URL = os.environ.get(
    "ORDERSYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
LOCAL_REDIS_URL = os.environ.get("ORDERSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("ORDERSYNC_TEST_REQUIRE_SERVICES") == "1"

settings.register_profile(
    "ci", max_examples=300, derandomize=True, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
settings.register_profile("dev", max_examples=150, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def _unavailable(what: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (ORDERSYNC_TEST_REQUIRE_SERVICES=1) but not reachable")
    pytest.skip(f"{what} not reachable")


def _postgres_answers() -> bool:
    engine = create_engine(normalize_url(POSTGRES_URL), connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def _fresh_postgres_database() -> Iterator[str]:
    """A throwaway database per test session, so runs never see each other's rows."""
    name = f"ordersync_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalize_url(POSTGRES_URL)).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migrated_database(kind: str, directory: Path) -> Iterator[str]:
    """A fresh database of ``kind`` migrated to head by Alembic (the only way the schema
    is made): a SQLite file in ``directory``, or a throwaway PostgreSQL database."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'ordersync.db'}"
        migrate.upgrade(url)
        yield url
        return
    if not _postgres_answers():
        _unavailable(f"PostgreSQL at {POSTGRES_URL}")
    for url in _fresh_postgres_database():
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One migrated database per session and kind; tests isolate through ``db_session``."""
    yield from migrated_database(request.param, tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    connection = engine.connect()
    transaction = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@contextmanager
def claimed(url: str) -> Iterator[bool]:
    """Claim a local Redis db for this test session; False while another live one holds it.

    Two sessions on one db (two checkouts testing at once) would take each other's Celery
    tasks. The claim lives in db 0 and names its process; a dead claimer's claim is taken.
    """
    client = redis.Redis.from_url(url.rsplit("/", 1)[0] + "/0", socket_connect_timeout=1)
    key, me = f"ordersync:test-claim:{url}", f"{socket.gethostname()}:{os.getpid()}"
    holder = client.get(key)
    if holder is not None and holder.decode() != me and _alive(holder.decode()):
        client.close()
        yield False
        return
    client.set(key, me, ex=6 * 3600)
    try:
        yield True
    finally:
        if client.get(key) == me.encode():
            client.delete(key)
        client.close()


def _alive(claimer: str) -> bool:
    host, _, pid = claimer.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's session: cannot tell, so respect it
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def session_redis(tmp_path_factory: pytest.TempPathFactory, env_var: str, db: int) -> Iterator[str]:
    """The local Redis (``db``, or the URL in ``env_var``) when it answers and no other live
    test session holds it, else an embedded server of this session's own."""
    url = os.environ.get(env_var, LOCAL_REDIS_URL.rsplit("/", 1)[0] + f"/{db}")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError:
        if REQUIRE_SERVICES:
            pytest.fail(f"local Redis at {url} is required in CI")
    else:
        with claimed(url) as mine:
            if mine:
                yield url
                return
    finally:
        client.close()
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False) as server:
        yield server.url


@pytest.fixture(scope="session", params=["local", "embedded"])
def redis_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The local Redis server when it answers, and always the embedded binary."""
    if request.param == "local":
        client = redis.Redis.from_url(LOCAL_REDIS_URL, socket_connect_timeout=1)
        try:
            client.ping()
        except redis.RedisError:
            _unavailable(f"Redis at {LOCAL_REDIS_URL}")
        client.close()
        with claimed(LOCAL_REDIS_URL) as mine:
            if mine:
                redis.Redis.from_url(LOCAL_REDIS_URL).flushdb()
                yield LOCAL_REDIS_URL
                return
        # another test session holds the db: this one runs on its own server
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False) as server:
        yield server.url


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """A vhost of this test session's own on the local RabbitMQ (runs never collide),
    deleted at the end; tests empty its queues before use (``tests.rabbitmq.purge``)."""
    try:
        url = create_vhost()
    except RabbitMQUnavailable as error:
        _unavailable(f"RabbitMQ ({error})")
        raise
    try:
        yield url
    finally:
        delete_vhost(url)
