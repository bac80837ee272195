"""Migration 0018 (fill cursors per symbol) up and down on SQLite and PostgreSQL: the
account's cursor is kept both ways; a per-symbol one goes on the way down."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from models import migrate
from models.db import make_engine
from tests.conftest import migrated_database

AT = "2026-12-04 10:00:00"


def _cursors(engine: Engine) -> list[tuple[str, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(
            "SELECT * FROM fill_cursors ORDER BY cursor"))]  # fmt: skip


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_0018_keeps_the_accounts_cursor_and_adds_one_per_symbol(kind: str, tmp_path: Path) -> None:
    for url in migrated_database(kind, tmp_path):
        migrate.downgrade(url, "0017")
        engine = make_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(text(
                    "INSERT INTO accounts (id, name, broker, base_url, credentials_env, "
                    f"rate_limit_per_min, is_active, created_at) VALUES ('a', 'a', 'binance', "
                    f"'x', 'X', 6000, true, '{AT}')"))  # fmt: skip
                connection.execute(text(
                    "INSERT INTO fill_cursors (account_id, cursor, updated_at) VALUES "
                    f"('a', 'whole', '{AT}')"))  # fmt: skip

            migrate.upgrade(url)
            with engine.begin() as connection:
                connection.execute(text(
                    "INSERT INTO fill_cursors (account_id, symbol, cursor, updated_at) "
                    f"VALUES ('a', 'BTCUSDT', 'btc', '{AT}')"))  # fmt: skip
            assert [(r[0], r[1], r[2]) for r in _cursors(engine)] == [
                ("a", "BTCUSDT", "btc"), ("a", "", "whole")]  # fmt: skip

            migrate.downgrade(url, "0017")
            assert [(r[0], r[1]) for r in _cursors(engine)] == [("a", "whole")]
        finally:
            engine.dispose()
