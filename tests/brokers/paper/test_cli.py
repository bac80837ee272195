"""``ordersync sim`` / ``python -m brokers.paper``: options, errors, and a clean serve-stop."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
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
    assert config.accounts == ()


def test_defaults_are_alpacas(served: list[dict[str, Any]]) -> None:
    result = invoke()

    assert result.exit_code == 0, result.output
    config: SimConfig = served[0]["config"]
    assert config.faults.rate_limit_per_min == 200
    assert (config.faults.session_s, config.faults.overnight_s) == (23400.0, 0.0)
    assert config.engine.starting_cash == Decimal(1_000_000)
    assert config.faults.late_activity_ms == (1000, 5000)
    assert config.default_account is None  # open mode


def test_accounts_sessions_cash_and_new_faults_reach_the_config(
    served: list[dict[str, Any]],
) -> None:
    result = invoke(
        "--key-id", "main", "--secret-key", "main-secret",
        "--accounts", "k2:s2, k3:s:3", "--session-s", "60", "--overnight-s", "30.5",
        "--starting-cash", "2500.50", "--p-late-activity", "0.25",
        "--late-activity-ms", "10-20", "--p-same-timestamp", "0.1",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    config: SimConfig = served[0]["config"]
    assert config.accounts == (("k2", "s2"), ("k3", "s:3"))
    assert config.credentials == {"main": "main-secret", "k2": "s2", "k3": "s:3"}
    assert config.default_account == "main"
    assert (config.faults.session_s, config.faults.overnight_s) == (60.0, 30.5)
    assert config.engine.starting_cash == Decimal("2500.50")
    assert (config.faults.p_late_activity, config.faults.late_activity_ms) == (0.25, (10, 20))
    assert config.faults.p_same_timestamp == 0.1


def test_accounts_come_from_the_environment(served: list[dict[str, Any]]) -> None:
    result = invoke(env={"ORDERSYNC_SIM_ACCOUNTS": "a:1,b:2"})

    assert result.exit_code == 0, result.output
    config: SimConfig = served[0]["config"]
    assert config.credentials == {"a": "1", "b": "2"}
    assert config.default_account == "a"


@pytest.mark.parametrize(
    ("accounts", "complaint"),
    [
        ("k2:hush-1,k3", "entry 2 is not KEY:SECRET"),
        ("k2:hush-1,:hush-2", "entry 2 is not KEY:SECRET"),
        ("k2:", "entry 1 is not KEY:SECRET"),
        ("k2:hush-1,k2:hush-2", "entry 2: key id 'k2' is configured twice"),
        ("main:hush-1", "entry 1: key id 'main' is configured twice"),
    ],
)
def test_bad_accounts_are_refused_without_echoing_secrets(
    served: list[dict[str, Any]], accounts: str, complaint: str
) -> None:
    result = invoke("--key-id", "main", "--accounts", accounts)

    assert result.exit_code == 2
    assert complaint in " ".join(result.output.split())
    assert "hush" not in result.output
    assert served == []


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
        (["--session-s", "-1"], "session-s"),
        (["--session-s", "0.05"], "session_s"),
        (["--starting-cash", "lots"], "starting-cash"),
        (["--late-activity-ms", "9-1"], "late-activity-ms"),
        (["--secret-key", "s", "--accounts", "a:b"], "--key-id"),
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
