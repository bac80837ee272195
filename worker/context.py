"""Per-process resources for tasks: database sessions, Redis, broker adapters.

Created lazily in each worker process (never inherited across a fork), so a prefork child
gets its own connections.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from brokers.base import BrokerAdapter
from brokers.registry import AccountConnection, AdapterCache
from core.enums import BrokerKind
from models.accounts import get_account
from models.db import make_engine, make_sessionmaker
from models.orders import Account
from models.repository import NEW_FILLS
from ordersync.metrics import record
from ordersync.redis_url import resolve_redis_url
from ordersync.settings import Settings, get_settings
from worker.budget import adapter_hooks


def utc_now() -> datetime:
    return datetime.now(UTC)


ACCOUNT_CACHE_TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What tasks need of an account, cached briefly per process (accounts rarely change)."""

    id: str
    name: str
    broker: BrokerKind
    base_url: str
    credentials_env: str
    is_active: bool
    rate_limit_per_min: int

    @classmethod
    def of(cls, account: Account) -> AccountInfo:
        return cls(account.id, account.name, account.broker, account.base_url,
                   account.credentials_env, account.is_active,
                   account.rate_limit_per_min)  # fmt: skip


RedisClient = redis.Redis  # a name the dataclass's ``redis`` field does not shadow


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis
    adapters: AdapterCache
    now: Callable[[], datetime] = field(default=utc_now)
    # Where the outbox relay publishes events; None: the same Redis as everything else.
    events_redis: RedisClient | None = None
    _accounts: dict[str, tuple[float, AccountInfo]] = field(default_factory=dict)

    @property
    def events(self) -> RedisClient:
        return self.events_redis if self.events_redis is not None else self.redis

    def account(
        self, session: Session, *, name: str | None = None, id: str | None = None
    ) -> AccountInfo:
        """The account by name or id (``UnknownAccount`` if none), from a short cache."""
        key = f"name:{name}" if name is not None else f"id:{id}"
        cached = self._accounts.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        if name is not None:
            info = AccountInfo.of(get_account(session, name))
        else:
            row = session.get(Account, id)
            if row is None:
                raise LookupError(f"no account with id {id!r}")
            info = AccountInfo.of(row)
        expires = time.monotonic() + ACCOUNT_CACHE_TTL_S
        self._accounts[f"name:{info.name}"] = self._accounts[f"id:{info.id}"] = (expires, info)
        return info

    def adapter(self, account: Account | AccountInfo) -> BrokerAdapter:
        """The account's adapter; every request it sends spends the account's shared budget."""
        return self.adapters.for_account(
            AccountConnection(account.name, account.broker, account.base_url,
                              account.credentials_env, account.id, account.rate_limit_per_min)
        )  # fmt: skip

    def close(self) -> None:
        self.adapters.close()
        self.redis.close()
        if self.events_redis is not None:
            self.events_redis.close()
        self.engine.dispose()


def count_committed_fills(ctx: WorkerContext) -> None:
    """Fill metrics once their transaction commits (detection latency ends at the commit)."""

    def committed(session: Session) -> None:
        added = session.info.pop(NEW_FILLS, None)
        if not added:
            return
        now = ctx.now()
        for account_id, broker, source, filled_at in added:
            record.fill_recorded(broker, _account_name(ctx, account_id), source, filled_at, now)

    def discarded(session: Session, *_: object) -> None:
        session.info.pop(NEW_FILLS, None)

    event.listen(ctx.sessions, "after_commit", committed)
    event.listen(ctx.sessions, "after_rollback", discarded)


def _account_name(ctx: WorkerContext, account_id: str) -> str:
    try:
        with ctx.sessions() as session:
            return ctx.account(session, id=account_id).name
    except Exception:  # a metrics label is not worth failing over
        return account_id


def build_context(settings: Settings | None = None) -> WorkerContext:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    client = redis.Redis.from_url(
        resolve_redis_url(settings), socket_timeout=10, decode_responses=True
    )
    ctx = WorkerContext(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        redis=client,
        adapters=AdapterCache(
            timeout_s=settings.broker_timeout_s,
            max_attempts=settings.broker_max_attempts,
            max_retry_wait_s=settings.broker_max_retry_wait_s,
            hooks=adapter_hooks(client, settings),
        ),
        events_redis=None if settings.events_redis_url is None else redis.Redis.from_url(
            settings.events_redis_url.get_secret_value(), socket_timeout=10,
            decode_responses=True,
        ),
    )  # fmt: skip
    count_committed_fills(ctx)
    return ctx


_lock = threading.Lock()
_context: WorkerContext | None = None
_pid: int | None = None


def context() -> WorkerContext:
    """This process's context; rebuilt after a fork."""
    global _context, _pid
    with _lock:
        if _context is None or _pid != os.getpid():
            _context = build_context()
            _pid = os.getpid()
        return _context
