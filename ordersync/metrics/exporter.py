"""``ordersync exporter``: serves the gauges read from the database and Redis (one process
for the whole deployment; the workers serve their own counters)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Annotated, Any

import redis
import typer
from prometheus_client import CollectorRegistry, start_http_server
from rich.console import Console
from sqlalchemy.engine import make_url

from models.db import make_engine, make_sessionmaker
from ordersync.metrics.collector import Sources, StateCollector
from ordersync.redis_url import resolve_redis_url
from ordersync.settings import Settings, get_settings

# A source that hangs must not hold the scrape past Prometheus's 10 s scrape timeout.
REDIS_TIMEOUT_S = 2.0
DATABASE_TIMEOUT_S = 3


def state_registry(settings: Settings) -> CollectorRegistry:
    """A registry with the one state collector, for the exporter (its process's life)."""
    return open_state_registry(settings)[0]


def open_state_registry(settings: Settings) -> tuple[CollectorRegistry, Callable[[], None]]:
    """The registry, and what closes its database and Redis connections (the API's)."""
    engine = make_engine(settings.database_url, **_database_timeouts(settings.database_url))
    client = redis.Redis.from_url(
        resolve_redis_url(settings), socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S, decode_responses=True,
    )  # fmt: skip
    registry = CollectorRegistry(auto_describe=False)
    sources = Sources(settings, make_sessionmaker(engine), client, settings.transport_is_amqp())
    registry.register(StateCollector(sources))

    def close() -> None:
        client.close()
        engine.dispose()

    return registry, close


def _database_timeouts(url: str) -> dict[str, Any]:
    if make_url(url).get_backend_name() != "postgresql":
        return {}  # SQLite: local, and waits out a writer only for its busy timeout
    options = f"-c statement_timeout={DATABASE_TIMEOUT_S * 1000}"
    return {"connect_args": {"connect_timeout": DATABASE_TIMEOUT_S, "options": options}}


def exporter_command(
    host: Annotated[
        str | None, typer.Option(help="Address (default ORDERSYNC_EXPORTER_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (default ORDERSYNC_EXPORTER_PORT).")
    ] = None,
) -> None:
    """Serve the orders, budgets, sweeps, outbox, queues and workers gauges at /metrics."""
    settings = get_settings()
    host = settings.exporter_host if host is None else host
    port = settings.exporter_port if port is None else port
    try:
        server, _ = start_http_server(port, addr=host, registry=state_registry(settings))
    except OSError as error:
        Console(stderr=True).print(f"ordersync exporter: cannot serve on {host}:{port}: {error}",
                                   style="red", markup=False, highlight=False)  # fmt: skip
        raise typer.Exit(1) from error
    typer.echo(f"metrics at http://{host}:{server.server_port}/metrics", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
