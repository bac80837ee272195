"""The Coinbase options of ``ordersync sim``: keys by name and public-key file, their
starting balances, and HTTPS for clients that speak nothing else."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from brokers.paper import cli
from brokers.paper.state import SimConfig
from tests.brokers.coinbase.paper import PRIVATE, PUBLIC

Served = list[tuple[SimConfig, dict[str, Any]]]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Served:
    calls: Served = []

    def fake_serve(config: SimConfig, **kw: Any) -> None:
        calls.append((config, kw))

    monkeypatch.setattr(cli, "serve", fake_serve)
    return calls


def invoke(*args: str) -> Any:
    app = typer.Typer()
    app.command()(cli.sim_command)
    return CliRunner().invoke(app, list(args))


def test_coinbase_keys_and_balances_reach_the_config(served: Served, tmp_path: Path) -> None:
    pem = tmp_path / "key.pub.pem"
    pem.write_text(PUBLIC)
    result = invoke(
        "--coinbase-accounts", f"organizations/o/apiKeys/k1={pem}",
        "--coinbase-balances", "usd:250,BTC:0.5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [(config, kw)] = served
    assert config.coinbase_accounts == (("organizations/o/apiKeys/k1", PUBLIC),)
    assert config.coinbase_balances == (("USD", Decimal(250)), ("BTC", Decimal("0.5")))
    assert kw["tls"] is None


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("no-equals-sign", "entry 1 is not NAME=PEM_FILE"),
        ("k1=/nonexistent/key.pem", "cannot read /nonexistent/key.pem"),
        ("k1={private}", "not a PEM public key"),
    ],
)
def test_a_bad_coinbase_key_entry_is_refused_naming_it(
    served: Served, tmp_path: Path, entry: str, says: str
) -> None:
    private = tmp_path / "private.pem"
    private.write_text(PRIVATE)
    result = invoke("--coinbase-accounts", entry.format(private=private))
    output = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2
    assert says in output
    assert "PRIVATE KEY" not in result.output
    assert served == []


def test_https_needs_both_files(served: Served, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    half = invoke("--ssl-certfile", str(cert))
    both = invoke("--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    assert half.exit_code == 2
    assert both.exit_code == 0, both.output
    assert served[0][1]["tls"] == (cert, key)
