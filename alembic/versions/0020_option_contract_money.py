"""Option contracts' money at 100 shares a contract: positions, trades and outcomes of an
OCC option symbol recorded before the ledger counted the multiplier are rescaled

Their prices (per share) and quantities (contracts) stay; what was quantity * price becomes
quantity * price * 100, and realized PnL, net of fees, its gross times 100 less the same
fees.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 21:10:00.000000
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal, localcontext

import sqlalchemy as sa
from alembic import op

from core.instruments import OPTION_MULTIPLIER, is_option
from models.money import MONEY_CONTEXT
from models.types import Money

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Scale = Callable[[Decimal], Decimal]
# table: (key columns, scaled columns, realized PnL and the fees it is net of, or None)
TABLES = {
    'positions': (('account_id', 'symbol'), ('cost_basis',), ('realized_pnl', 'fees')),
    'trades': (('account_id', 'id'), ('entry_notional', 'exit_notional',
                                      'entry_slippage_cost', 'exit_slippage_cost'), None),
    'trade_outcomes': (('id',), ('entry_notional', 'exit_notional', 'slippage_cost'),
                       ('realized_pnl', 'fees')),
}


def _rescale(scale: Scale) -> None:
    with localcontext(MONEY_CONTEXT):  # exact: NUMERIC(38, 18) fits in its 60 digits
        _rescale_tables(scale)


def _rescale_tables(scale: Scale) -> None:
    bind = op.get_bind()
    for name, (keys, scaled, net) in TABLES.items():
        money = [*scaled, *(net or ())]
        table = sa.table(name, sa.column('symbol', sa.String()),
                         *(sa.column(k) for k in keys if k != 'symbol'),
                         *(sa.column(c, Money()) for c in money))  # fmt: skip
        rows = bind.execute(sa.select(*(table.c[k] for k in keys), table.c.symbol,
                                      *(table.c[c] for c in money))).mappings().all()
        for row in rows:
            if not is_option(row['symbol']):
                continue
            values = {c: scale(row[c]) for c in scaled}
            if net is not None:  # gross times the scale, less the same fees
                pnl, fees = net
                values[pnl] = scale(row[pnl] + row[fees]) - row[fees]
            where = sa.and_(*(table.c[k] == row[k] for k in keys))
            bind.execute(table.update().where(where).values(**values))


def upgrade() -> None:
    _rescale(lambda value: value * OPTION_MULTIPLIER)


def downgrade() -> None:
    _rescale(lambda value: value / OPTION_MULTIPLIER)
