"""Fees posted apart from the fills (crypto CFEE): one row each, and what a trade's entry
gave up of its asset to them

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 23:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types


revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _money(name: str, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, models.types.Money(precision=38, scale=18), nullable=nullable)


def upgrade() -> None:
    op.create_table('fee_postings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=36), nullable=False),
    sa.Column('broker_fee_id', sa.String(length=128), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=True),
    _money('quantity', True),
    _money('price', True),
    _money('amount', False),
    sa.Column('currency', sa.String(length=8), nullable=False),
    sa.Column('description', sa.String(length=128), nullable=False),
    sa.Column('trades', sa.String(length=1024), nullable=False),
    sa.Column('posted_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_fee_postings_account_id_accounts'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fee_postings')),
    sa.UniqueConstraint('account_id', 'broker_fee_id', name=op.f('uq_fee_postings_account_id_broker_fee_id'))
    )
    with op.batch_alter_table('fee_postings', schema=None) as batch_op:
        batch_op.create_index('ix_fee_postings_account_posted', ['account_id', 'posted_at'], unique=False)
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entry_fee_quantity', models.types.Money(precision=38, scale=18), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('asset_fees', models.types.Money(precision=38, scale=18), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_column('asset_fees')
        batch_op.drop_column('entry_fee_quantity')
    op.drop_table('fee_postings')
