"""Serve the paper exchange with uvicorn: one process, uvloop and httptools, no access log;
the trade_updates WebSocket on the ``websockets`` package (its sans-I/O protocol)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from brokers.paper.app import create_app
from brokers.paper.state import Sim, SimConfig

GRACEFUL_SHUTDOWN_S = 2  # a request parked in a timeout fault must not hold up shutdown


class _AnnouncingServer(uvicorn.Server):
    """Reports the URL once the socket is bound, so ``--port 0`` tells where it landed."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[str], None]) -> None:
        super().__init__(config)
        self._announce = announce
        self._scheme = "https" if config.ssl_certfile else "http"

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            self._announce(f"{self._scheme}://{shown}:{port}")


def serve(
    config: SimConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    log_level: str = "warning",
    announce: Callable[[str], None] = print,
    tls: tuple[Path, Path] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM; over HTTPS with ``tls`` (certificate file, key file)."""
    app = create_app(Sim(config))
    uv_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",  # named, not "auto": no silent fallback to another library
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
        ssl_certfile=None if tls is None else str(tls[0]),
        ssl_keyfile=None if tls is None else str(tls[1]),
    )
    _AnnouncingServer(uv_config, announce).run()
