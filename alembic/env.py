"""Alembic environment: migrations run against ORDERSYNC_DATABASE_URL unless a URL is set."""

from __future__ import annotations

from alembic import context

import models.api_keys
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
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
