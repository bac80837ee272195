"""Alembic environment: migrations run against ORDERSYNC_DATABASE_URL unless a URL is set."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import models.api_keys
import models.fees
import models.fill_sync
import models.ledger
import models.orders
import models.outbox
import models.webhooks  # noqa: F401
from models.base import Base
from models.db import make_engine
from ordersync.settings import get_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    try:  # a migration that refuses (raises) leaves no pooled connection behind
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # A batch migration copies a table and drops the old one: with foreign keys
                # on, that drop deletes the rows that refer to it (ON DELETE CASCADE: an
                # order's fills and events). Off for the run (the pragma is a no-op inside a
                # transaction, so before it), and every reference is checked at the end.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=True,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    _check_references(connection)
    finally:
        engine.dispose()  # the connection with foreign keys off goes with it


def _check_references(connection: Connection) -> None:
    """Refuse (and roll back) a migration that left a row referring to nothing."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise RuntimeError(
            f"the migration left {len(broken)} row(s) referring to missing rows "
            f"(tables: {', '.join(tables)}); nothing was changed"
        )


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
