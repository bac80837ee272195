"""``ordersync api``: the HTTP API and the dashboard on uvicorn."""

from __future__ import annotations

import logging
import socket
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from api.app import create_app
from ordersync.settings import get_settings

GRACEFUL_SHUTDOWN_S = 3


class NoQueryStrings(logging.Filter):
    """Access log lines without query strings: a key sent in a URL (refused with 400) must
    not reach the log either."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, _, query = args[2].partition("?")
            record.args = (*args[:2], path + ("?…" if query else ""), *args[3:])
        return True


def api_command(
    host: Annotated[str | None, typer.Option(help="Address (default ORDERSYNC_API_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (default ORDERSYNC_API_PORT).")
    ] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Proxies whose X-Forwarded-For is trusted, comma-separated (default "
            "ORDERSYNC_API_FORWARDED_ALLOW_IPS; unset: none, the peer is the client)."
        ),
    ] = None,
) -> None:
    """Serve the JSON API (/api/v1, /openapi.json, /docs), the dashboard (/dashboard/),
    /healthz, /readyz and /metrics."""
    settings = get_settings()
    host = settings.api_host if host is None else host
    port = settings.api_port if port is None else port
    try:  # a clear message for a taken port, before uvicorn's own start-up noise
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        Console(stderr=True).print(f"ordersync api: cannot serve on {host}:{port}: {error}",
                                   style="red", markup=False, highlight=False)  # fmt: skip
        raise typer.Exit(1) from error
    if settings.api_admin_key is None:
        typer.echo("ordersync api: no ORDERSYNC_API_ADMIN_KEY: account keys only", err=True)
    logging.getLogger("uvicorn.access").addFilter(NoQueryStrings())
    # Open event streams never end by themselves: a stop waits this long for them, no longer.
    # Behind a proxy the client's address (what failed authentications are counted by) is
    # the one the trusted proxy forwards; trusting no proxy, the peer's.
    proxies = forwarded_allow_ips or settings.api_forwarded_allow_ips
    uvicorn.run(create_app(settings), host=host, port=port, proxy_headers=proxies is not None,
                forwarded_allow_ips=proxies,
                server_header=False, log_level=settings.log_level.lower(),
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)  # fmt: skip
