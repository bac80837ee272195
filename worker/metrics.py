"""A worker's metrics: the main process switches its pool to per-process files before the
pool forks, serves their sum on ``ORDERSYNC_METRICS_PORT``, and marks itself online in
Redis (``ordersync:workers``) for the exporter's ``ordersync_workers_online``."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Final
from wsgiref.simple_server import WSGIServer

import redis
from celery.signals import worker_init, worker_ready, worker_shutdown
from prometheus_client import CollectorRegistry, start_http_server

from ordersync.metrics.multiproc import PoolCollector, clear_dead_nodes, enable, node_dir
from ordersync.redis_url import resolve_redis_url
from ordersync.settings import Settings, get_settings

logger = logging.getLogger(__name__)

ONLINE_EVERY_S: Final = 10.0
# Sorted set: member = Celery nodename, score = epoch seconds it last said it is online.
WORKERS_KEY: Final = "ordersync:workers"
WORKER_ONLINE_S: Final = 30.0


class _State:
    server: WSGIServer | None = None
    thread: threading.Thread | None = None
    stop = threading.Event()
    port: int | None = None
    hostname: str | None = None


def metrics_base(settings: Settings) -> Path:
    return settings.metrics_dir or settings.var_dir / "metrics"


@worker_init.connect  # type: ignore[untyped-decorator]
def _switch_to_files(**_: Any) -> None:
    """Before the pool forks: every pool process then writes its own counts to files."""
    settings = get_settings()
    if settings.metrics_port == 0:
        return
    base = metrics_base(settings)
    clear_dead_nodes(base)
    enable(node_dir(base, os.getpid()))


@worker_ready.connect  # type: ignore[untyped-decorator]
def _serve(sender: Any = None, **_: Any) -> None:
    """Serve the pool's counts and start saying the worker is online."""
    settings = get_settings()
    hostname = str(getattr(sender, "hostname", "") or f"worker-{os.getpid()}")
    _State.hostname = hostname
    _State.stop.clear()
    _State.thread = threading.Thread(
        target=_online_loop, args=(hostname,), name="ordersync-online", daemon=True
    )
    _State.thread.start()
    if settings.metrics_port == 0:
        return
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PoolCollector(Path(directory)))
    try:
        server, _thread = start_http_server(
            settings.metrics_port, addr=settings.metrics_host, registry=registry
        )
    except OSError as error:
        # The worker works on without them; Prometheus shows this target down.
        logger.error(
            "metrics: cannot serve on %s:%s (%s); this worker's counts are not scraped",
            settings.metrics_host, settings.metrics_port, error,
        )  # fmt: skip
        return
    _State.server, _State.port = server, server.server_port
    logger.info("metrics: serving on http://%s:%d/metrics", settings.metrics_host,
                server.server_port)  # fmt: skip


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _stop(**_: Any) -> None:
    _State.stop.set()
    hostname = _State.hostname
    if _State.server is not None:
        _State.server.shutdown()
        _State.server = None
    if hostname:
        try:
            _client().zrem(WORKERS_KEY, hostname)
        except redis.RedisError as error:
            logger.warning("metrics: could not mark %s offline: %s", hostname, error)


def _client() -> redis.Redis:
    return redis.Redis.from_url(resolve_redis_url(), socket_timeout=5, socket_connect_timeout=5)


def _online_loop(hostname: str) -> None:
    """Every ``ONLINE_EVERY_S``: this worker is online; members silent for a day go."""
    client = _client()
    while not _State.stop.is_set():
        now = time.time()
        try:
            pipe = client.pipeline(transaction=False)
            pipe.zadd(WORKERS_KEY, {hostname: now})
            pipe.zremrangebyscore(WORKERS_KEY, "-inf", now - max(86400.0, WORKER_ONLINE_S))
            pipe.execute()
        except redis.RedisError as error:
            logger.warning("metrics: could not mark %s online: %s", hostname, error)
        _State.stop.wait(ONLINE_EVERY_S)
