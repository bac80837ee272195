"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 16:03:53.459730
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('accounts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('broker', sa.Enum('alpaca', name='broker_kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('base_url', sa.String(length=255), nullable=False),
    sa.Column('credentials_env', sa.String(length=128), nullable=False),
    sa.Column('rate_limit_per_min', sa.Integer(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("credentials_env <> '' AND credentials_env NOT LIKE '%=%'", name=op.f('ck_accounts_credentials_env_is_a_name')),
    sa.CheckConstraint('rate_limit_per_min > 0', name=op.f('ck_accounts_rate_limit_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('name', name=op.f('uq_accounts_name'))
    )
    op.create_table('orders',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('broker', sa.Enum('alpaca', name='broker_kind', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('client_order_id', sa.String(length=128), nullable=False),
    sa.Column('broker_order_id', sa.String(length=128), nullable=True),
    sa.Column('origin', sa.Enum('placed', 'tracked', 'adopted', name='order_origin', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('side', sa.Enum('buy', 'sell', name='order_side', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('intent', sa.Enum('ENTRY', 'EXIT', name='order_intent', native_enum=False, create_constraint=True, length=24), nullable=True),
    sa.Column('decision_id', sa.String(length=128), nullable=True),
    sa.Column('trade_id', sa.String(length=64), nullable=True),
    sa.Column('order_type', sa.Enum('market', 'limit', 'stop', 'stop_limit', 'trailing_stop', name='order_type', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('time_in_force', sa.Enum('day', 'gtc', 'ioc', 'fok', 'opg', 'cls', name='time_in_force', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('quantity', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('limit_price', models.types.Money(precision=38, scale=18), nullable=True),
    sa.Column('stop_price', models.types.Money(precision=38, scale=18), nullable=True),
    sa.Column('requested_price', models.types.Money(precision=38, scale=18), nullable=True),
    sa.Column('status', sa.Enum('PENDING_NEW', 'NEW', 'PARTIALLY_FILLED', 'PENDING_CANCEL', 'FILLED', 'CANCELED', 'REJECTED', 'EXPIRED', 'REPLACED', name='order_status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('raw_status', sa.String(length=64), nullable=True),
    sa.Column('filled_quantity', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('broker_filled_quantity', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('fill_notional', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('average_fill_price', models.types.Money(precision=38, scale=18), nullable=True),
    sa.Column('fees', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('check_count', sa.Integer(), nullable=False),
    sa.Column('anomaly_count', sa.Integer(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accepted_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('filled_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_checked_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('broker_updated_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('check_count >= 0', name=op.f('ck_orders_check_count_not_negative')),
    sa.CheckConstraint('filled_quantity >= 0', name=op.f('ck_orders_filled_not_negative')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_orders_quantity_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_orders_account_id_accounts'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('account_id', 'broker_order_id', name=op.f('uq_orders_account_id_broker_order_id')),
    sa.UniqueConstraint('account_id', 'client_order_id', name=op.f('uq_orders_account_id_client_order_id'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_account_symbol', ['account_id', 'symbol'], unique=False)
        batch_op.create_index('ix_orders_closed_at', ['closed_at'], unique=False)
        batch_op.create_index('ix_orders_status_last_checked', ['status', 'last_checked_at'], unique=False)

    op.create_table('fills',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.String(length=36), nullable=False),
    sa.Column('broker_fill_id', sa.String(length=128), nullable=False),
    sa.Column('quantity', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('price', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('fee', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('filled_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('source', sa.Enum('placement', 'monitor', 'sweep', 'deep', 'stream', 'manual', name='report_source', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.CheckConstraint('price > 0', name=op.f('ck_fills_price_positive')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_fills_quantity_positive')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_fills_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fills')),
    sa.UniqueConstraint('order_id', 'broker_fill_id', name=op.f('uq_fills_order_id_broker_fill_id'))
    )
    op.create_table('order_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('order_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('from_status', sa.Enum('PENDING_NEW', 'NEW', 'PARTIALLY_FILLED', 'PENDING_CANCEL', 'FILLED', 'CANCELED', 'REJECTED', 'EXPIRED', 'REPLACED', name='from_status', native_enum=False, create_constraint=True, length=24), nullable=True),
    sa.Column('to_status', sa.Enum('PENDING_NEW', 'NEW', 'PARTIALLY_FILLED', 'PENDING_CANCEL', 'FILLED', 'CANCELED', 'REJECTED', 'EXPIRED', 'REPLACED', name='to_status', native_enum=False, create_constraint=True, length=24), nullable=True),
    sa.Column('filled_quantity', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('raw_status', sa.String(length=64), nullable=True),
    sa.Column('source', sa.Enum('placement', 'monitor', 'sweep', 'deep', 'stream', 'manual', name='report_source', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('report', sa.Text(), nullable=True),
    sa.Column('at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_events_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_events'))
    )
    with op.batch_alter_table('order_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_events_order_id'), ['order_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('order_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_events_order_id'))

    op.drop_table('order_events')
    op.drop_table('fills')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_status_last_checked')
        batch_op.drop_index('ix_orders_closed_at')
        batch_op.drop_index('ix_orders_account_symbol')

    op.drop_table('orders')
    op.drop_table('accounts')

