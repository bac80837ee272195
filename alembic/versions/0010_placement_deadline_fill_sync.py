"""placement deadlines; fill cursors and parked fills in the database; indexes the purge
of refused calls and archives uses

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 04:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('fill_cursors',
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('cursor', sa.String(length=256), nullable=False),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_fill_cursors_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_fill_cursors'))
    )
    op.create_table('parked_fills',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('broker_order_id', sa.String(length=128), nullable=False),
    sa.Column('broker_fill_id', sa.String(length=128), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('parked_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_parked_fills_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parked_fills')),
    sa.UniqueConstraint('account_id', 'broker_order_id', 'broker_fill_id', name=op.f('uq_parked_fills_account_id_broker_order_id_broker_fill_id'))
    )
    op.create_index('ix_parked_fills_account_order', 'parked_fills', ['account_id', 'broker_order_id'], unique=False)
    op.create_index(op.f('ix_invalid_task_calls_at'), 'invalid_task_calls', ['at'], unique=False)
    op.create_index(op.f('ix_archived_orders_archived_at'), 'archived_orders', ['archived_at'], unique=False)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('place_deadline', models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sent_at', models.types.UTCDateTime(timezone=True), nullable=True))
    # Write-ahead rows of earlier versions may have reached the broker: looked up, never
    # rejected blindly.
    op.execute(sa.text(
        "UPDATE orders SET sent_at = created_at "
        "WHERE status = 'PENDING_NEW' AND broker_order_id IS NULL"
    ))


def downgrade() -> None:
    op.drop_index(op.f('ix_archived_orders_archived_at'), table_name='archived_orders')
    op.drop_index(op.f('ix_invalid_task_calls_at'), table_name='invalid_task_calls')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('sent_at')
        batch_op.drop_column('place_deadline')
    op.drop_index('ix_parked_fills_account_order', table_name='parked_fills')
    op.drop_table('parked_fills')
    op.drop_table('fill_cursors')
