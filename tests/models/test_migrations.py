"""The schema comes from Alembic and matches the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

import models.fill_sync
import models.ledger
import models.orders
import models.outbox
import models.webhooks  # noqa: F401
from models.base import Base


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
