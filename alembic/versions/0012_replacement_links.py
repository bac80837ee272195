"""Replacement chains: each order names the order it replaces and the one that replaced it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 16:05:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replaces_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('replaced_by_id', sa.String(length=36), nullable=True))
        batch_op.create_index('ix_orders_replaces_id', ['replaces_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_replaces_id')
        batch_op.drop_column('replaced_by_id')
        batch_op.drop_column('replaces_id')
