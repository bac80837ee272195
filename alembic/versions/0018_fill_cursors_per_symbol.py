"""Fill cursors per symbol: a broker that lists fills one symbol at a time (Binance) keeps a
cursor for each; '' is the whole account's, as before

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 11:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types


revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(per_symbol: bool) -> None:
    """The primary key changes: the few rows are read, the table made again, rows put back
    (a per-symbol cursor is dropped on the way down: its fills are re-read, and dedupe)."""
    columns = [sa.column('account_id'), sa.column('cursor'),
               sa.column('updated_at', models.types.UTCDateTime(timezone=True))]  # fmt: skip
    old = sa.table('fill_cursors', *columns, *([] if per_symbol else [sa.column('symbol')]))
    query = sa.select(*(old.c[c.name] for c in columns))
    if not per_symbol:
        query = query.where(old.c.symbol == '')
    rows = [dict(row._mapping) for row in op.get_bind().execute(query)]
    op.drop_table('fill_cursors')
    key = ['account_id', 'symbol'] if per_symbol else ['account_id']
    extra = [sa.Column('symbol', sa.String(length=64), nullable=False)] if per_symbol else []
    table = op.create_table('fill_cursors',
        sa.Column('account_id', sa.String(length=36), nullable=False),
        *extra,
        sa.Column('cursor', sa.String(length=256), nullable=False),
        sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_fill_cursors_account_id_accounts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint(*key, name=op.f('pk_fill_cursors')),
    )  # fmt: skip
    if per_symbol:
        rows = [{**row, 'symbol': ''} for row in rows]
    if rows:
        op.bulk_insert(table, rows)


def upgrade() -> None:
    _rebuild(per_symbol=True)


def downgrade() -> None:
    _rebuild(per_symbol=False)
