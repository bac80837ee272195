"""What every request handler shares: settings, the database, Redis, the broker adapters and
the Celery app the API sends tasks with. Built once per process by ``api.app.create_app``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from fastapi import Request
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session

from ordersync.metrics.exporter import open_state_registry
from ordersync.settings import Settings
from ordersync.status import StatusReader
from worker.context import WorkerContext

T = TypeVar("T")


class Lazy(Generic[T]):
    """A value built on first use, once, whichever thread asks first."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self.built: T | None = None

    def __call__(self) -> T:
        with self._lock:
            if self.built is None:
                self.built = self._build()
            return self.built


class Cached(Generic[T]):
    """A value built again once it is ``ttl_s`` old, by one thread at a time: many readers
    of the monitoring status cost one reading every few seconds."""

    def __init__(self, ttl_s: float, build: Callable[[], T]) -> None:
        self._ttl_s = ttl_s
        self._build = build
        self._lock = threading.Lock()
        self._value: tuple[float, T] | None = None

    def __call__(self) -> T:
        with self._lock:
            if self._value is None or time.monotonic() - self._value[0] >= self._ttl_s:
                self._value = (time.monotonic(), self._build())
            return self._value[1]


@dataclass
class ApiState:
    settings: Settings
    ctx: WorkerContext  # sessions, Redis, adapters with the shared request budget
    send_task: Callable[..., Any]  # Celery's ``send_task``: the API places and cancels by task
    close: Callable[[], None]
    status_reader: Callable[[], StatusReader]  # what ``ordersync status`` reads, built once
    # The exporter's gauges and what closes their connections, built on first use.
    metrics: Lazy[tuple[CollectorRegistry, Callable[[], None]]] = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Lazy(lambda: open_state_registry(self.settings))

    def shutdown(self) -> None:
        self.close()
        if self.metrics.built is not None:
            self.metrics.built[1]()

    @property
    def now(self) -> Callable[[], datetime]:
        return self.ctx.now


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def db_session(request: Request) -> Iterator[Session]:
    """A read session per request; writers open their own transactions."""
    with api_state(request).ctx.sessions() as session:
        yield session
