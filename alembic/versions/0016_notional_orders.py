"""Notional orders: an order names a quantity, or an amount of money (orders.notional) that
the broker sizes, its quantity then unknown

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.types import Money


revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUANTITY_OR_NOTIONAL = (
    "(quantity IS NOT NULL AND quantity > 0 AND notional IS NULL)"
    " OR (quantity IS NULL AND notional IS NOT NULL AND notional > 0)"
)


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notional', Money(), nullable=True))
        batch_op.drop_constraint(op.f('ck_orders_quantity_positive'), type_='check')
        batch_op.alter_column('quantity', existing_type=Money(), nullable=True)
        batch_op.create_check_constraint(op.f('ck_orders_quantity_or_notional'),
                                         QUANTITY_OR_NOTIONAL)


def downgrade() -> None:
    notional_orders = op.get_bind().scalar(
        sa.text("SELECT COUNT(*) FROM orders WHERE quantity IS NULL")
    )
    if notional_orders:
        raise RuntimeError(
            f"cannot downgrade below 0016: {notional_orders} notional order(s) have no "
            "quantity, which the older schema requires; archive or delete them first"
        )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_orders_quantity_or_notional'), type_='check')
        batch_op.alter_column('quantity', existing_type=Money(), nullable=False)
        batch_op.create_check_constraint(op.f('ck_orders_quantity_positive'), 'quantity > 0')
        batch_op.drop_column('notional')
