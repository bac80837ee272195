"""Migration 0020 on SQLite and PostgreSQL: an option's position, trade and outcome recorded
at one share a contract (before the ledger counted the multiplier) become what the ledger
records now, 100 shares a contract; other symbols are left alone; down undoes it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.enums import BrokerKind, ReportSource, Side
from models import migrate
from models.accounts import ensure_account
from models.db import make_engine
from models.ledger import Position, Trade, TradeOutcome, outcome_columns
from models.trades import (
    PositionState,
    TradeState,
    TradeStatus,
    add_entry_fill,
    add_exit_fill,
    apply_to_position,
    outcome_of,
)
from tests.conftest import migrated_database

D = Decimal
AT = datetime(2026, 12, 1, 15, tzinfo=UTC)
CALL = "AAPL300118C00200000"


def _recorded(multiplier: Decimal) -> tuple[PositionState, TradeState]:
    """A long of 3 contracts less 1 sold, and a round trip of 2: as the ledger records them
    with ``multiplier``."""
    position = PositionState(multiplier=multiplier)
    position = apply_to_position(position, Side.BUY, D(3), D("1.25"), D("0.65"))
    position = apply_to_position(position, Side.SELL, D(1), D("1.55"), D("0.65"))
    trade = add_entry_fill(TradeState.new(Side.BUY, multiplier), D(2), D("1.25"), D("1.30"),
                           AT, D("1.20"))  # fmt: skip
    trade, _ = add_exit_fill(trade, D(2), D("1.55"), D("1.30"), AT, None, ReportSource.MONITOR)
    return position, trade


def _write(engine: Engine, account_id: str, symbol: str) -> None:
    position, trade = _recorded(D(1))
    with Session(engine) as session:
        session.add(Position(account_id=account_id, symbol=symbol, quantity=position.quantity,
                             cost_basis=position.cost_basis, average_cost=position.average_cost,
                             realized_pnl=position.realized_pnl, fees=position.fees,
                             updated_at=AT))  # fmt: skip
        row = Trade(account_id=account_id, id=f"t-{symbol}", symbol=symbol, side=Side.BUY,
                    status=TradeStatus.OPEN, opened_at=AT, updated_at=AT)  # fmt: skip
        row.store(trade, AT)
        session.add(row)
        session.add(TradeOutcome(account_id=account_id, trade_id=row.id, symbol=symbol,
                                 side=Side.BUY, decision_id=None,
                                 **outcome_columns(outcome_of(trade, now=AT))))  # fmt: skip
        session.commit()


def _read(engine: Engine, symbol: str) -> tuple[tuple[Decimal, ...], ...]:
    with Session(engine) as session:
        p = session.scalars(select(Position).where(Position.symbol == symbol)).one()
        t = session.scalars(select(Trade).where(Trade.symbol == symbol)).one()
        o = session.scalars(select(TradeOutcome).where(TradeOutcome.symbol == symbol)).one()
        return (
            (p.quantity, p.cost_basis, p.average_cost or D(0), p.realized_pnl, p.fees),
            (t.entry_notional, t.exit_notional, t.entry_slippage_cost, t.exit_slippage_cost),
            (o.entry_notional, o.exit_notional, o.realized_pnl, o.fees, o.slippage_cost,
             o.entry_average_price, o.entry_slippage or D(0)),
        )  # fmt: skip


def _expected(multiplier: Decimal) -> tuple[tuple[Decimal, ...], ...]:
    p, t = _recorded(multiplier)
    o = outcome_of(t, now=AT)
    return (
        (p.quantity, p.cost_basis, p.average_cost or D(0), p.realized_pnl, p.fees),
        (t.entry.notional, t.exit.notional, t.entry.slippage_cost, t.exit.slippage_cost),
        (o.entry_notional, o.exit_notional, o.realized_pnl, o.fees, o.slippage_cost,
         o.entry_average_price, o.entry_slippage or D(0)),
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_0020_makes_option_money_what_the_ledger_records_now_and_down_undoes_it(
    kind: str, tmp_path: Path
) -> None:
    for url in migrated_database(kind, tmp_path):
        migrate.downgrade(url, "0019")
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                account = ensure_account(session, name="t", broker=BrokerKind.TRADIER,
                                         base_url="x", credentials_env="T",
                                         rate_limit_per_min=120, now=AT)  # fmt: skip
                session.commit()
                account_id = account.id
            for symbol in (CALL, "AAPL"):
                _write(engine, account_id, symbol)
            assert _read(engine, CALL) == _read(engine, "AAPL") == _expected(D(1))

            migrate.upgrade(url)
            assert _read(engine, CALL) == _expected(D(100))
            assert _read(engine, CALL)[2][2] == D("57.40")  # 0.30 a share on 200, less 2.60
            assert _read(engine, "AAPL") == _expected(D(1))

            migrate.downgrade(url, "0019")
            assert _read(engine, CALL) == _read(engine, "AAPL") == _expected(D(1))
        finally:
            engine.dispose()
