"""``ordersync stream``: the broker streams of every active account, until SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer
from prometheus_client import start_http_server
from rich.console import Console

from ordersync.metrics.instruments import REGISTRY
from ordersync.settings import get_settings
from worker.context import build_context
from worker.stream import run_streams


def stream_command(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve the stream counts here (default ORDERSYNC_STREAM_METRICS_PORT; 0: none).",
        ),
    ] = None,
) -> None:
    """Hold each account's order-update stream (one process per account at a time through
    a Redis lease; run two for a hot standby) and apply every update as it arrives."""
    settings = get_settings()
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    # Frames at DEBUG would include the authentication message: never below WARNING.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    port = settings.stream_metrics_port if metrics_port is None else metrics_port
    server = None
    if port:
        try:
            server, _ = start_http_server(port, addr=settings.metrics_host, registry=REGISTRY)
        except OSError as error:
            Console(stderr=True).print(f"ordersync stream: cannot serve metrics on port {port}: "
                                       f"{error}", style="red", markup=False)  # fmt: skip
            raise typer.Exit(1) from error
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ctx = build_context(settings)
    try:
        run_streams(ctx, stop)
    finally:
        ctx.close()
        if server is not None:
            server.shutdown()
