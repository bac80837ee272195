"""Order classes and exit legs: each order's class, and a leg names its parent order

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 19:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.types import Money


revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'order_class',
            sa.Enum('simple', 'bracket', 'oco', 'oto', name='order_class', native_enum=False,
                    create_constraint=True, length=24),
            server_default='simple', nullable=False,
        ))
        batch_op.add_column(sa.Column('parent_id', sa.String(length=36), nullable=True))
        for name in ('take_profit_limit_price', 'stop_loss_stop_price', 'stop_loss_limit_price'):
            batch_op.add_column(sa.Column(name, Money(), nullable=True))
        batch_op.create_index('ix_orders_parent_id', ['parent_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_parent_id')
        for name in ('stop_loss_limit_price', 'stop_loss_stop_price', 'take_profit_limit_price'):
            batch_op.drop_column(name)
        batch_op.drop_column('parent_id')
        # SQLite's batch copy would keep the enum's CHECK naming the dropped column.
        batch_op.drop_constraint(op.f('ck_orders_order_class'), type_='check')
        batch_op.drop_column('order_class')
