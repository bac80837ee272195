"""A real Celery worker process consumes tasks sent by name from a client that imports
nothing of ordersync, on the local Redis and on the embedded one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from celery import Celery

from ordersync.embedded_redis import free_port
from tests.processes import stop_process
from worker.celery_app import VISIBILITY_TIMEOUT_S, app
from worker.tasks import cancel_order, place_order

pytestmark = pytest.mark.integration


def test_reliability_settings() -> None:
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT_S
    # retry(max_retries=None) means the task's own limit: a placement's retries are bounded
    # by its deadline only when the task has none.
    assert place_order.max_retries is None
    assert cancel_order.max_retries is None


@pytest.fixture
def worker_process(redis_url: str, tmp_path: Path) -> Iterator[str]:
    env = {**os.environ, "ORDERSYNC_REDIS_URL": redis_url, "ORDERSYNC_VAR_DIR": str(tmp_path)}
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool", "prefork",
         "--concurrency", "1", "--loglevel", "WARNING", "--without-mingle", "--without-gossip"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield redis_url
    finally:
        stop_process(process)
        log.close()


def test_worker_answers_a_task_sent_by_name(worker_process: str) -> None:
    client = Celery("trading-service", broker=worker_process, backend=worker_process)
    try:
        result = client.send_task("ordersync.ping")
        answer = result.get(timeout=60)
        assert set(answer) == {"pong"}
    finally:
        client.close()


def _wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen within {timeout_s} s")


def _flower_healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=1).text == "OK"
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("role", ["beat", "flower"])
def test_beat_and_flower_start_with_the_worker_app(
    role: str, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    extra = ["-s", str(tmp_path / "beat-schedule")] if role == "beat" else [f"--port={port}"]
    env = {**os.environ, "ORDERSYNC_REDIS_URL": redis_url, "ORDERSYNC_VAR_DIR": str(tmp_path)}
    log_path = tmp_path / f"{role}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", role, "--loglevel", "INFO", *extra],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            if role == "beat":
                _wait_until(lambda: b"beat: Starting" in log_path.read_bytes(), 60, "beat start")
            else:
                _wait_until(lambda: _flower_healthy(port), 60, "flower /healthcheck")
            assert process.poll() is None, log_path.read_text()
        finally:
            stop_process(process)
