"""The ``ordersync`` command, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

pytestmark = pytest.mark.integration


def _ordersync(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ordersync", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env}, check=False,
    )  # fmt: skip


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'o.db'}"
    result = _ordersync("db", "upgrade", env={"ORDERSYNC_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"accounts", "orders", "fills", "order_events", "alembic_version"} <= tables


def test_db_upgrade_reports_an_unreachable_database(tmp_path: Path) -> None:
    url = "postgresql://nobody@127.0.0.1:1/none"
    result = _ordersync("db", "upgrade", env={"ORDERSYNC_DATABASE_URL": url})
    assert result.returncode != 0
    assert "127.0.0.1" in result.stderr


def test_help_lists_the_commands() -> None:
    result = _ordersync("--help", env={})
    assert result.returncode == 0
    for command in ("sim", "db", "redis"):
        assert command in result.stdout
