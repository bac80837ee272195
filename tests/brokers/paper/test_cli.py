"""``ordersync sim`` / ``python -m brokers.paper``: options, errors, and a clean serve-stop."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from brokers.paper import cli
from brokers.paper.state import SimConfig
from tests.paper_exchange import REPO_ROOT

URL_LINE = re.compile(r"http://127\.0\.0\.1:(\d+)")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Captures what ``serve`` would have been given instead of serving."""
    calls: list[dict[str, Any]] = []

    def fake_serve(config: SimConfig, **kw: Any) -> None:
        calls.append({"config": config, **kw})

    monkeypatch.setattr(cli, "serve", fake_serve)
    return calls


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    app = typer.Typer()
    app.command()(cli.sim_command)
    return CliRunner().invoke(app, list(args), env=env)


def test_options_reach_the_exchange_config(served: list[dict[str, Any]]) -> None:
    result = invoke(
        "--port", "9000", "--seed", "5", "--fill-delay-ms", "10-20", "--latency-ms", "7",
        "--p-5xx", "0.5", "--rate-limit-per-min", "0", "--tick-ms", "50",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    [call] = served
    config: SimConfig = call["config"]
    assert (call["host"], call["port"], call["log_level"]) == ("127.0.0.1", 9000, "warning")
    assert config.seed == 5
    assert config.faults.fill_delay_ms == (10, 20)
    assert config.faults.latency_ms == (7, 7)
    assert config.faults.p_5xx == 0.5
    assert config.faults.rate_limit_per_min == 0
    assert config.engine.tick_ms == 50
    assert (config.key_id, config.secret_key) == (None, None)


def test_credentials_come_from_the_environment(served: list[dict[str, Any]]) -> None:
    env = {"ORDERSYNC_SIM_KEY_ID": "env-key", "ORDERSYNC_SIM_SECRET_KEY": "env-secret"}
    result = invoke(env=env)

    assert result.exit_code == 0, result.output
    assert (served[0]["config"].key_id, served[0]["config"].secret_key) == ("env-key", "env-secret")


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--fill-delay-ms", "5-x"], "fill-delay-ms"),
        (["--fill-delay-ms", "300-10"], "fill-delay-ms"),
        (["--latency-ms", "fast"], "latency-ms"),
        (["--p-429", "1.5"], "p-429"),
        (["--port", "70000"], "port"),
        (["--log-level", "loud"], "log-level"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(
    served: list[dict[str, Any]], args: list[str], complaint: str
) -> None:
    result = invoke(*args)

    assert result.exit_code == 2
    assert complaint in result.output
    assert served == []


@pytest.mark.integration
def test_module_serves_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "brokers.paper", "--port", "0", "--seed", "1"],
            cwd=REPO_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not (match := URL_LINE.search(log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no URL printed within 30 s"
            time.sleep(0.05)
        health = httpx.get(f"{match.group(0)}/_sim/health")
    finally:
        process.terminate()
        code = process.wait(timeout=15)

    assert health.json() == {"ok": True}
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why.
    assert code in (0, -signal.SIGTERM)
    assert len(log.read_text().strip().splitlines()) == 1, log.read_text()
