"""Order locks name their holder's process: a lock whose holder died is taken over at once,
not after its TTL; a live holder's lock, or one of unknown form, is never broken."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import fakeredis
import pytest
import redis

from tests.worker.conftest import wait_for
from worker.locks import ALIVE_PREFIX, ALIVE_TTL_MS, HeldLock, break_if_holder_dead

HOLD_FOREVER = """
import sys, time, redis
from worker.locks import HeldLock
client = redis.Redis.from_url(sys.argv[1])
lock = HeldLock(client, sys.argv[2], ttl_s=60)
assert lock.__enter__()
print("held", flush=True)
time.sleep(600)
"""


def test_a_live_holders_lock_is_not_taken() -> None:
    client = fakeredis.FakeRedis()
    with HeldLock(client, "lock:a", ttl_s=30) as first:
        assert first
        assert not HeldLock(client, "lock:a", ttl_s=30).__enter__()
        assert not break_if_holder_dead(client, "lock:a")


def test_a_lock_whose_holder_is_gone_is_taken_at_once() -> None:
    client = fakeredis.FakeRedis()
    client.set("lock:b", "0badc0de.1234", px=30_000)  # its holder has no alive key
    lock = HeldLock(client, "lock:b", ttl_s=30)
    with lock as held:
        assert held
        assert client.get("lock:b") == lock.token.encode()


def test_a_lock_of_unknown_form_is_left_to_its_ttl() -> None:
    client = fakeredis.FakeRedis()
    client.set("lock:c", "someone-elses-token", px=30_000)
    assert not break_if_holder_dead(client, "lock:c")
    assert not HeldLock(client, "lock:c", ttl_s=30).__enter__()
    assert client.get("lock:c") == b"someone-elses-token"


def test_the_holder_stays_alive_while_its_process_runs() -> None:
    client = fakeredis.FakeRedis()
    lock = HeldLock(client, "lock:d", ttl_s=30)
    holder = lock.token.split(".")[0]
    deadline = time.monotonic() + 3 * ALIVE_TTL_MS / 1000
    while time.monotonic() < deadline:  # outlives several TTLs of the alive key
        assert client.exists(ALIVE_PREFIX + holder)
        time.sleep(0.2)


@pytest.mark.integration
def test_a_killed_processs_lock_is_taken_within_seconds_not_its_ttl(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    name = f"lock:killed:{os.getpid()}"
    client.delete(name)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOREVER, redis_url, name], stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        assert not HeldLock(client, name, ttl_s=30).__enter__()  # alive: not taken
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        killed = time.monotonic()
        lock = HeldLock(client, name, ttl_s=30)
        wait_for(lock.__enter__, 3 * ALIVE_TTL_MS / 1000, "the dead holder's lock taken")
        assert time.monotonic() - killed < 2 * ALIVE_TTL_MS / 1000
        assert client.pttl(name) > 20_000  # taken over, not expired: the old TTL was 60 s
        lock.__exit__(None, None, None)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
        client.delete(name)
        client.close()
