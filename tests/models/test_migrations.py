"""The schema comes from Alembic and matches the models exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

import models.api_keys
import models.fees
import models.fill_sync
import models.ledger
import models.orders
import models.outbox
import models.webhooks  # noqa: F401
from models import migrate
from models.base import Base
from models.db import make_engine
from tests.conftest import migrated_database


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        assert compare_metadata(context, Base.metadata) == []


def test_unique_keys_the_issue_asks_for(engine: Engine) -> None:
    inspector = inspect(engine)
    orders = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("orders")}
    fills = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("fills")}
    assert ("account_id", "client_order_id") in orders
    assert ("account_id", "broker_order_id") in orders
    assert ("order_id", "broker_fill_id") in fills


def test_write_ahead_rows_of_earlier_versions_are_marked_as_maybe_sent(tmp_path: Path) -> None:
    """Upgrading must not let a lost-answer row of the old code be rejected without a
    lookup: its placement may have reached the broker."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0009")
    engine = make_engine(url)
    created = "2026-11-20 10:00:00.000000"
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO accounts (id, name, broker, base_url, credentials_env, "
            "rate_limit_per_min, is_active, created_at) VALUES ('a', 'a', 'alpaca', 'x', 'X', "
            f"200, 1, '{created}')"))  # fmt: skip
        for cid, broker_id, status in (("w", None, "PENDING_NEW"), ("p", "b", "NEW")):
            connection.execute(text(
                "INSERT INTO orders (id, account_id, broker, client_order_id, broker_order_id, "
                "origin, symbol, side, order_type, time_in_force, quantity, status, "
                "filled_quantity, broker_filled_quantity, fill_notional, fees, check_count, "
                "anomaly_count, created_at, updated_at, version, miss_count, "
                "trade_applied_quantity) VALUES (:id, 'a', 'alpaca', :cid, :bid, 'placed', "
                "'AAPL', 'buy', 'market', 'day', '1', :status, '0', '0', '0', '0', 0, 0, "
                f"'{created}', '{created}', 1, 0, '0')"),
                {"id": cid, "cid": cid, "bid": broker_id, "status": status})  # fmt: skip
    migrate.upgrade(url)
    with engine.connect() as connection:
        sent = dict(connection.execute(text("SELECT client_order_id, sent_at FROM orders")).all())
    engine.dispose()
    assert sent["w"] is not None
    assert sent["p"] is None


_AT = "2026-12-01 10:00:00"
_ROWS = {
    "accounts": "INSERT INTO accounts (id, name, broker, base_url, credentials_env, "
    f"rate_limit_per_min, is_active, created_at) VALUES ('a', 'a', 'alpaca', 'x', 'X', 200, "
    f"true, '{_AT}')",
    "orders": "INSERT INTO orders (id, account_id, broker, client_order_id, origin, symbol, "
    "side, order_type, time_in_force, quantity, status, filled_quantity, "
    "broker_filled_quantity, fill_notional, fees, check_count, anomaly_count, created_at, "
    "updated_at, version) VALUES ('o', 'a', 'alpaca', 'o', 'placed', 'AAPL', 'buy', 'market', "
    f"'day', 1, 'FILLED', 1, 1, 100, 0, 0, 0, '{_AT}', '{_AT}', 1)",
    "fills": "INSERT INTO fills (order_id, broker_fill_id, quantity, price, fee, filled_at, "
    f"recorded_at, source) VALUES ('o', 'f-1', 1, 100, 0, '{_AT}', '{_AT}', 'monitor')",
    "order_events": "INSERT INTO order_events (order_id, kind, filled_quantity, source, at) "
    f"VALUES ('o', 'status', '1', 'monitor', '{_AT}')",
    "fill_cursors": "INSERT INTO fill_cursors (account_id, cursor, updated_at) VALUES "
    f"('a', 'c-1', '{_AT}')",
    "parked_fills": "INSERT INTO parked_fills (account_id, broker_order_id, broker_fill_id, "
    f"payload, parked_at) VALUES ('a', 'b-9', 'f-9', '{{}}', '{_AT}')",
    "api_keys": "INSERT INTO api_keys (key_id, account_id, label, digest, created_at) VALUES "
    f"('k1', 'a', 'l', 'd', '{_AT}')",
}


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {t: connection.scalar(text(f"SELECT COUNT(*) FROM {t}")) or 0 for t in _ROWS}
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrations_that_copy_a_table_keep_the_rows_that_refer_to_it(
    kind: str, tmp_path: Path
) -> None:
    """SQLite's batch migrations copy a table and drop the old one: with foreign keys on,
    the drop took the rows referring to it (an order's fills and events) along."""
    for url in migrated_database(kind, tmp_path):
        migrate.downgrade(url, "0013")
        engine = make_engine(url)
        try:
            with engine.begin() as connection:
                for insert in _ROWS.values():
                    connection.execute(text(insert))
        finally:
            engine.dispose()
        every_one = dict.fromkeys(_ROWS, 1)
        assert _counts(url) == every_one

        migrate.upgrade(url)
        assert _counts(url) == every_one
        migrate.downgrade(url, "0013")
        assert _counts(url) == every_one
