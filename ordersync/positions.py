"""Positions, trades and order lifecycles as readers see them: the functions the API serves
and ``ordersync positions`` prints. Read-only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import aliased

from core.enums import OPEN_STATUSES
from models.accounts import UnknownAccount
from models.db import make_engine
from models.fees import FeePosting
from models.ledger import Position, Trade, TradeOutcome
from models.orders import Account, Order
from models.trades import TradeStatus, amount, order_lifecycle, trade_lifecycle
from ordersync.queries import OrderView, Source, account_id_of, reading
from ordersync.settings import get_settings


@dataclass(frozen=True, slots=True)
class PositionView:
    account: str
    symbol: str
    quantity: Decimal  # signed: short < 0
    average_cost: Decimal | None
    realized_pnl: Decimal  # net of fees
    fees: Decimal
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TradeView:
    account: str
    trade_id: str
    symbol: str
    side: str  # the entry's side: buy is long
    status: TradeStatus
    decision_id: str | None
    entry_order_id: str | None
    entry_quantity: Decimal
    exit_quantity: Decimal
    open_quantity: Decimal
    entry_average_price: Decimal | None
    exit_average_price: Decimal | None
    fees: Decimal
    realized_pnl: Decimal | None  # from the outcome, once closed
    opened_at: datetime
    closed_at: datetime | None
    lifecycle: str


def positions(source: Source, account: str | None = None) -> list[PositionView]:
    """Every position (flat ones keep their realized PnL), by account then symbol;
    ``UnknownAccount`` for an account name that does not exist."""
    with reading(source) as session:
        query = select(Position, Account.name).join(Account, Account.id == Position.account_id)
        if (account_id := account_id_of(session, account)) is not None:
            query = query.where(Position.account_id == account_id)
        query = query.order_by(Account.name, Position.symbol)
        rows = session.execute(query.execution_options(populate_existing=True)).all()
        return [_position_view(p, name) for p, name in rows]


def _position_view(p: Position, account: str) -> PositionView:
    return PositionView(account, p.symbol, p.quantity, p.average_cost, p.realized_pnl, p.fees,
                        p.updated_at)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FeeView:
    """A fee the broker posted apart from the fills (a crypto fee): in a coin when
    ``symbol`` is set (``quantity`` of it, worth ``amount``), else in cash."""

    account: str
    broker_fee_id: str
    symbol: str | None
    quantity: Decimal | None
    price: Decimal | None
    amount: Decimal
    currency: str
    description: str
    trades: list[list[str]]  # [trade id, quantity it took] for each trade it came out of
    posted_at: datetime
    recorded_at: datetime


def fees(source: Source, account: str | None = None, *, limit: int | None = None
         ) -> list[FeeView]:  # fmt: skip
    """Fees posted apart from the fills, newest first."""
    with reading(source) as session:
        query = select(FeePosting, Account.name).join(Account, Account.id == FeePosting.account_id)
        if (account_id := account_id_of(session, account)) is not None:
            query = query.where(FeePosting.account_id == account_id)
        query = query.order_by(FeePosting.posted_at.desc(), FeePosting.id.desc()).limit(limit)
        return [FeeView(name, f.broker_fee_id, f.symbol, f.quantity, f.price, f.amount,
                        f.currency, f.description, json.loads(f.trades), f.posted_at,
                        f.recorded_at)
                for f, name in session.execute(query)]  # fmt: skip


def trades(
    source: Source, account: str | None = None, *, status: TradeStatus | None = None,
    limit: int | None = None, trade_id: str | None = None,
) -> list[TradeView]:  # fmt: skip
    """Trades, newest first, with their lifecycle text and, once closed, realized PnL."""
    entry = aliased(Order)
    with reading(source) as session:
        query = (
            select(Trade, Account.name, entry.status, TradeOutcome.realized_pnl)
            .join(Account, Account.id == Trade.account_id)
            .outerjoin(entry, entry.id == Trade.entry_order_id)
            .outerjoin(TradeOutcome, (TradeOutcome.account_id == Trade.account_id)
                       & (TradeOutcome.trade_id == Trade.id))
        )  # fmt: skip
        if (account_id := account_id_of(session, account)) is not None:
            query = query.where(Trade.account_id == account_id)
        if status is not None:
            query = query.where(Trade.status == status)
        if trade_id is not None:
            query = query.where(Trade.id == trade_id)
        query = query.order_by(Trade.opened_at.desc(), Trade.id).limit(limit)
        query = query.execution_options(populate_existing=True)
        return [_trade_view(t, name, entry_status in OPEN_STATUSES, pnl)
                for t, name, entry_status, pnl in session.execute(query)]  # fmt: skip


def _trade_view(trade: Trade, account: str, entry_working: bool,
                realized_pnl: Decimal | None) -> TradeView:  # fmt: skip
    state = trade.state()
    return TradeView(
        account=account, trade_id=trade.id, symbol=trade.symbol, side=trade.side.value,
        status=trade.status, decision_id=trade.decision_id,
        entry_order_id=trade.entry_order_id, entry_quantity=state.entry.quantity,
        exit_quantity=state.exit.quantity, open_quantity=state.open_quantity,
        entry_average_price=state.entry.average_price,
        exit_average_price=state.exit.average_price,
        fees=state.fees, realized_pnl=realized_pnl,
        opened_at=trade.opened_at, closed_at=trade.closed_at,
        lifecycle=trade_lifecycle(state, entry_working, realized_pnl),
    )  # fmt: skip


def order_lifecycles(source: Source, orders: Sequence[Order | OrderView]) -> dict[str, str]:
    """Each order's lifecycle text (e.g. "Entry filled, trade OPEN" with an en dash), by
    order id; the trades they name are read in one query."""
    keys = {(o.account_id, o.trade_id) for o in orders if o.intent and o.trade_id}
    statuses: dict[tuple[str, str], TradeStatus] = {}
    if keys:
        with reading(source) as session:
            for account_id in {a for a, _ in keys}:
                ids = [t for a, t in keys if a == account_id]
                query = select(Trade.id, Trade.status).where(Trade.account_id == account_id,
                                                             Trade.id.in_(ids))  # fmt: skip
                statuses |= {(account_id, t): s for t, s in session.execute(query)}
    texts = {}
    for o in orders:
        trade = statuses.get((o.account_id, o.trade_id or ""))
        order_id = o.order_id if isinstance(o, OrderView) else o.id
        texts[order_id] = order_lifecycle(o.intent, o.status, o.quantity, o.filled_quantity,
                                          trade, o.notional)  # fmt: skip
    return texts


FEES_SHOWN = 20  # the command shows the latest fees; the API pages them all
# --- the command ---------------------------------------------------------------------------


def positions_command(
    account: Annotated[str | None, typer.Option(help="Only this account (by name).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Positions per account and symbol (quantity, average cost, realized PnL) and the
    open trades, from the database at ORDERSYNC_DATABASE_URL."""
    engine = make_engine(get_settings().database_url)
    try:
        held = positions(engine, account)
        open_trades = trades(engine, account, status=TradeStatus.OPEN)
        posted = fees(engine, account, limit=FEES_SHOWN)
    except (UnknownAccount, OperationalError, ProgrammingError) as error:
        message = (
            str(error)
            if isinstance(error, UnknownAccount)
            else f"cannot read the database ({str(error.orig).strip().splitlines()[0]}): "
            "is it migrated (ordersync db upgrade)?"
        )
        Console(stderr=True).print(f"[red]{escape(message)}[/red]", highlight=False)
        raise typer.Exit(2) from error
    finally:
        engine.dispose()
    if as_json:
        document = {"positions": [_plain(asdict(p)) for p in held],
                    "open_trades": [_plain(asdict(t)) for t in open_trades],
                    "fees": [_plain(asdict(f)) for f in posted]}  # fmt: skip
        typer.echo(json.dumps(document, indent=2))
        return
    console = Console()
    console.print(_positions_table(held))
    console.print(_trades_table(open_trades))
    if posted:
        console.print(_fees_table(posted))


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Decimals as exact strings, times as ISO 8601."""
    return {
        k: amount(v) if isinstance(v, Decimal) else v.isoformat() if isinstance(v, datetime)
        else v
        for k, v in row.items()
    }  # fmt: skip


def _text(value: Decimal | None) -> str:
    return "-" if value is None else amount(value)


def _positions_table(rows: list[PositionView]) -> Table:
    table = Table(title="Positions")
    for name in ("account", "symbol"):
        table.add_column(name, no_wrap=True)
    for name in ("quantity", "average cost", "realized PnL", "fees"):
        table.add_column(name, justify="right")
    table.add_column("updated (UTC)", no_wrap=True)
    for p in rows:
        table.add_row(p.account, p.symbol, amount(p.quantity), _text(p.average_cost),
                      amount(p.realized_pnl), amount(p.fees),
                      p.updated_at.strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
    if not rows:
        table.caption = "no fills recorded yet"
    return table


def _fees_table(rows: list[FeeView]) -> Table:
    table = Table(title=f"Fees posted apart from the fills (latest {FEES_SHOWN})")
    for name in ("account", "posted (UTC)", "symbol"):
        table.add_column(name, no_wrap=True)
    for name in ("quantity", "amount"):
        table.add_column(name, justify="right")
    table.add_column("trades")
    for f in rows:
        table.add_row(f.account, f.posted_at.strftime("%Y-%m-%d %H:%M:%S"),
                      f.symbol or "(cash)", _text(f.quantity), f"{amount(f.amount)} {f.currency}",
                      escape(", ".join(f"{t} {q}" for t, q in f.trades)) or "-")  # fmt: skip
    return table


def _trades_table(rows: list[TradeView]) -> Table:
    table = Table(title="Open trades")
    for name in ("account", "trade", "symbol", "side"):
        table.add_column(name, no_wrap=True)
    for name in ("open", "entry avg"):
        table.add_column(name, justify="right")
    table.add_column("lifecycle")
    for t in rows:
        table.add_row(t.account, escape(t.trade_id), t.symbol, t.side, amount(t.open_quantity),
                      _text(t.entry_average_price), t.lifecycle)  # fmt: skip
    if not rows:
        table.caption = "none"
    return table
