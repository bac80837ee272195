"""RabbitMQ for tests: a throwaway vhost on the local server per test session, and a private
node (its own port and data directory) for tests that crash and restart the broker."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from kombu import Connection

from worker.topology import all_queue_names

RABBITMQ_HOST, RABBITMQ_PORT = "127.0.0.1", 5672
RABBITMQ_USER = os.environ.get("ORDERSYNC_TEST_RABBITMQ_USER", "guest")
RABBITMQ_PASSWORD = os.environ.get("ORDERSYNC_TEST_RABBITMQ_PASSWORD", "guest")
# The server's own start script: the Debian wrapper on PATH drops the environment.
SERVER_SCRIPTS = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/lib/rabbitmq/sbin/rabbitmq-server")


class RabbitMQUnavailable(RuntimeError):
    """Why the RabbitMQ variants cannot run here."""


def answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        socket.create_connection((host, port), timeout_s).close()
    except OSError:
        return False
    return True


def _ctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise RabbitMQUnavailable("rabbitmqctl not found: cannot create a test vhost")
    done = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RabbitMQUnavailable(f"rabbitmqctl {args[0]} failed: {done.stderr.strip()[:300]}")


def create_vhost() -> str:
    """A new vhost on the local server, open to the test user; returns its amqp URL."""
    if not answers(RABBITMQ_HOST, RABBITMQ_PORT):
        raise RabbitMQUnavailable(f"RabbitMQ at {RABBITMQ_HOST}:{RABBITMQ_PORT} not reachable")
    vhost = f"ordersync-test-{uuid.uuid4().hex[:10]}"
    _ctl("add_vhost", vhost)
    _ctl("set_permissions", "-p", vhost, RABBITMQ_USER, ".*", ".*", ".*")
    return f"amqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{vhost}"


def delete_vhost(url: str) -> None:
    with contextlib.suppress(RabbitMQUnavailable, subprocess.TimeoutExpired):
        _ctl("delete_vhost", url.rsplit("/", 1)[1])


def purge(url: str) -> None:
    """Empty ordersync's queues (a test starts with nothing left by the one before)."""
    with Connection(url, connect_timeout=5) as connection:
        for name in all_queue_names():
            channel = connection.channel()
            try:
                channel.queue_purge(name)
            except connection.channel_errors:
                pass  # not declared yet
            finally:
                with contextlib.suppress(Exception):
                    channel.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRabbitMQ:
    """A RabbitMQ node of the test's own, on a free port with its data in ``directory``:
    ``kill()`` crashes it (SIGKILL to the whole node), ``start()`` brings it back on the same
    port and data, as a restarted server would."""

    def __init__(self, directory: Path) -> None:
        script = next((s for s in SERVER_SCRIPTS if os.access(s, os.X_OK)), None)
        if script is None:
            raise RabbitMQUnavailable("no rabbitmq-server start script to run a private node")
        self.script = script
        self.directory = directory
        self.port, self.dist_port = free_port(), free_port()
        self.name = f"ordersync-{uuid.uuid4().hex[:8]}@localhost"
        self.process: subprocess.Popen[bytes] | None = None
        (directory / "enabled_plugins").write_text("[].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, deadline_s: float = 90.0) -> None:
        env = {
            **os.environ,
            "HOME": str(self.directory),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "none"),
            "RABBITMQ_CONF_ENV_FILE": str(self.directory / "none.env"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
        }
        log = (self.directory / "node.log").open("ab")
        self.process = subprocess.Popen(
            [self.script], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=self.directory,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + deadline_s
        while not self._accepts():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                tail = (self.directory / "node.log").read_text(errors="replace")[-2000:]
                raise RabbitMQUnavailable(f"private RabbitMQ node did not start:\n{tail}")
            time.sleep(0.2)

    def _accepts(self) -> bool:
        if not answers("127.0.0.1", self.port, 0.5):
            return False
        try:
            with Connection(self.url, connect_timeout=2) as connection:
                connection.connect()
        except Exception:
            return False
        return True

    def kill(self) -> None:
        """Crash the node: SIGKILL to its process group, nothing flushed on the way out."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None
        deadline = time.monotonic() + 30
        while answers("127.0.0.1", self.port, 0.2) and time.monotonic() < deadline:
            time.sleep(0.1)
