"""Test sessions claim a local Redis db, so two checkouts testing at once never share one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import redis

from tests.conftest import LOCAL_REDIS_URL, claimed

URL = LOCAL_REDIS_URL.rsplit("/", 1)[0] + "/9"  # a db no fixture uses


@pytest.fixture
def claims() -> redis.Redis:
    client = redis.Redis.from_url(LOCAL_REDIS_URL.rsplit("/", 1)[0] + "/0")
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no local Redis")
    client.delete(f"ordersync:test-claim:{URL}")
    return client


def test_the_same_session_may_claim_again_and_the_claim_ends_with_it(
    claims: redis.Redis,
) -> None:
    with claimed(URL) as first, claimed(URL) as again:
        assert (first, again) == (True, True)
    assert claims.get(f"ordersync:test-claim:{URL}") is None


def test_a_live_session_keeps_its_db_and_a_dead_ones_claim_is_taken(
    claims: redis.Redis,
) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        claims.set(f"ordersync:test-claim:{URL}", f"{socket.gethostname()}:{other.pid}")
        with claimed(URL) as mine:
            assert mine is False
    finally:
        other.kill()
        other.wait()
    with claimed(URL) as mine:  # its process is gone
        assert mine is True
        assert claims.get(f"ordersync:test-claim:{URL}") == (
            f"{socket.gethostname()}:{os.getpid()}".encode()
        )
