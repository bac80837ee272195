"""The schema comes from Alembic and matches the models exactly."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

import models.api_keys
import models.fill_sync
import models.ledger
import models.orders
import models.outbox
import models.webhooks  # noqa: F401
from models import migrate
from models.base import Base
from models.db import make_engine


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
