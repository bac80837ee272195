"""reconciliation and archive

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 18:16:50.861323
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('archived_orders',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('client_order_id', sa.String(length=128), nullable=False),
    sa.Column('broker_order_id', sa.String(length=128), nullable=True),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('status', sa.Enum('PENDING_NEW', 'NEW', 'PARTIALLY_FILLED', 'PENDING_CANCEL', 'FILLED', 'CANCELED', 'REJECTED', 'EXPIRED', 'REPLACED', name='archived_status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('closed_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('archived_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_archived_orders'))
    )
    with op.batch_alter_table('archived_orders', schema=None) as batch_op:
        batch_op.create_index('ix_archived_orders_account_broker', ['account_id', 'broker_order_id'], unique=False)
        batch_op.create_index('ix_archived_orders_account_client', ['account_id', 'client_order_id'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('miss_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('lost_at', models.types.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('lost_at')
        batch_op.drop_column('miss_count')

    with op.batch_alter_table('archived_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_archived_orders_account_client')
        batch_op.drop_index('ix_archived_orders_account_broker')

    op.drop_table('archived_orders')
