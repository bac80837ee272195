"""trades outcomes positions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 19:19:12.100226
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('positions',
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('quantity', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('cost_basis', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('average_cost', models.types.Money(precision=38, scale=18), nullable=True),
    sa.Column('realized_pnl', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('fees', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_positions_account_id_accounts'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('account_id', 'symbol', name=op.f('pk_positions'))
    )
    op.create_table('trades',
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('side', sa.Enum('buy', 'sell', name='trade_side', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('status', sa.Enum('OPEN', 'CLOSED', name='trade_status', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('decision_id', sa.String(length=128), nullable=True),
    sa.Column('entry_order_id', sa.String(length=36), nullable=True),
    sa.Column('entry_quantity', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('entry_notional', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('entry_fees', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('entry_slippage_cost', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('entry_slippage_quantity', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('exit_quantity', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('exit_notional', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('exit_fees', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('exit_slippage_cost', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('exit_slippage_quantity', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('opened_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_exit_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_exit_source', sa.Enum('placement', 'monitor', 'sweep', 'deep', 'stream', 'manual', name='trade_exit_source', native_enum=False, create_constraint=True, length=24), nullable=True),
    sa.Column('closed_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_trades_account_id_accounts'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('account_id', 'id', name=op.f('pk_trades'))
    )
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.create_index('ix_trades_status', ['status'], unique=False)

    op.create_table('trade_outcomes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('trade_id', sa.String(length=64), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('side', sa.Enum('buy', 'sell', name='outcome_side', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('decision_id', sa.String(length=128), nullable=True),
    sa.Column('quantity', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('entry_average_price', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('exit_average_price', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('entry_notional', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('exit_notional', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('fees', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('realized_pnl', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('entry_slippage', models.types.Money(precision=38, scale=18), nullable=True),
    sa.Column('exit_slippage', models.types.Money(precision=38, scale=18), nullable=True),
    sa.Column('slippage_cost', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('opened_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('exited_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('holding_s', models.types.Money(precision=38, scale=18), nullable=False),
    sa.Column('deciding_source', sa.Enum('placement', 'monitor', 'sweep', 'deep', 'stream', 'manual', name='deciding_source', native_enum=False, create_constraint=True, length=24), nullable=False),
    sa.Column('closed_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id', 'trade_id'], ['trades.account_id', 'trades.id'], name=op.f('fk_trade_outcomes_account_id_trades'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trade_outcomes')),
    sa.UniqueConstraint('account_id', 'trade_id', name=op.f('uq_trade_outcomes_account_id_trade_id'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_account_trade', ['account_id', 'trade_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_account_trade')

    op.drop_table('trade_outcomes')
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index('ix_trades_status')

    op.drop_table('trades')
    op.drop_table('positions')
