"""A real Celery worker process consumes tasks sent by name from a client that imports
nothing of ordersync, on the local Redis and on the embedded one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from tests.processes import stop_process
from worker.celery_app import VISIBILITY_TIMEOUT_S, app

pytestmark = pytest.mark.integration


def test_reliability_settings() -> None:
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT_S


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
