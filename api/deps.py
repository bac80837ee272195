"""What every request handler shares: settings, the database, Redis, the broker adapters and
the Celery app the API sends tasks with. Built once per process by ``api.app.create_app``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from ordersync.settings import Settings
from ordersync.status import StatusReader
from worker.context import WorkerContext


@dataclass
class ApiState:
    settings: Settings
    ctx: WorkerContext  # sessions, Redis, adapters with the shared request budget
    send_task: Callable[..., Any]  # Celery's ``send_task``: the API places and cancels by task
    close: Callable[[], None]
    status_reader: Callable[[], StatusReader]  # what ``ordersync status`` reads, built once

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
