"""Fills keep the order's filled quantity with them: one execution seen under two ids (a
listing's and a stream's) is recorded once

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 16:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types


revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cum_quantity', models.types.Money(precision=38, scale=18), nullable=True))
    op.create_index('ux_fills_order_cum_quantity', 'fills', ['order_id', 'cum_quantity'],
                    unique=True, postgresql_where=sa.text('cum_quantity IS NOT NULL'),
                    sqlite_where=sa.text('cum_quantity IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ux_fills_order_cum_quantity', table_name='fills',
                  postgresql_where=sa.text('cum_quantity IS NOT NULL'),
                  sqlite_where=sa.text('cum_quantity IS NOT NULL'))
    with op.batch_alter_table('fills', schema=None) as batch_op:
        batch_op.drop_column('cum_quantity')
