"""orders.trade_applied_quantity: what of an order's fills its trade has taken

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trade_applied_quantity', models.types.Money(), server_default='0', nullable=False))
        batch_op.create_index('ix_orders_account_decision', ['account_id', 'decision_id'], unique=False)
    # Until now the ledger took (or gave up as a mismatch) every fill of an order with an
    # intent as it was recorded; fills of an order without one still wait for its intent.
    orders = sa.table('orders', sa.column('intent', sa.String()),
                      sa.column('filled_quantity', models.types.Money()),
                      sa.column('trade_applied_quantity', models.types.Money()))
    op.execute(orders.update().where(orders.c.intent.is_not(None))
               .values(trade_applied_quantity=orders.c.filled_quantity))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_account_decision')
        batch_op.drop_column('trade_applied_quantity')
