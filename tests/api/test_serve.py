"""``ordersync api`` as a process: it serves, a taken port is said plainly, and its access
log never carries a query string (where a misplaced key would be)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ADMIN_KEY
from tests.conftest import migrated_database
from tests.processes import stop_process
from tests.worker.conftest import wait_for

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_access_log_never_shows_a_query_string(tmp_path: Path, api_redis_url: str) -> None:
    database_url = next(migrated_database("sqlite", tmp_path))
    port = _free_port()
    env = {**os.environ, "ORDERSYNC_DATABASE_URL": database_url,
           "ORDERSYNC_REDIS_URL": api_redis_url, "ORDERSYNC_API_ADMIN_KEY": ADMIN_KEY,
           "ORDERSYNC_VAR_DIR": str(tmp_path / "var")}  # fmt: skip
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ordersync", "api", "--port", str(port)], env=env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{base}/healthz"), 30, "the API answering")
        secret = "osk_0123456789ab_" + "S" * 43
        refused = httpx.get(f"{base}/api/v1/accounts?api_key={secret}",
                            headers={"Authorization": f"Bearer {ADMIN_KEY}"})  # fmt: skip
        assert refused.status_code == 400
        assert (
            httpx.get(
                f"{base}/api/v1/accounts", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ).status_code
            == 200
        )
        wait_for(lambda: log.read_text().count("/api/v1/accounts") >= 2, 10, "access log lines")
    finally:
        stop_process(process, timeout_s=10, group=True)
    text = log.read_text()
    assert secret not in text
    assert ADMIN_KEY not in text
    assert '/api/v1/accounts?… HTTP/1.1" 400' in text


def test_a_taken_port_is_said_plainly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "ordersync", "api", "--port", str(port)],
            env={**os.environ, "ORDERSYNC_VAR_DIR": str(tmp_path)}, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
