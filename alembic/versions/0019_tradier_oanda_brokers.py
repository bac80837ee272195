"""Broker kinds tradier and oanda: accounts and orders may name them

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ('alpaca', 'binance', 'coinbase')
AFTER = ('alpaca', 'binance', 'coinbase', 'tradier', 'oanda')


def _kinds(kinds: tuple[str, ...]) -> None:
    allowed = ", ".join(f"'{kind}'" for kind in kinds)
    for table in ('accounts', 'orders'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f'ck_{table}_broker_kind'), type_='check')
            batch_op.create_check_constraint(op.f(f'ck_{table}_broker_kind'),
                                             f"broker IN ({allowed})")


def upgrade() -> None:
    _kinds(AFTER)


def downgrade() -> None:
    others = op.get_bind().scalar(
        sa.text("SELECT COUNT(*) FROM accounts WHERE broker IN ('tradier', 'oanda')")
    )
    if others:
        raise RuntimeError(
            f"cannot downgrade below 0019: {others} account(s) name a broker the older "
            "schema does not know (tradier, oanda); remove them first"
        )
    _kinds(BEFORE)
