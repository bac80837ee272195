"""Positions, trades and outcomes, moved in the same transaction as the fills that cause them.

``record_fills`` is called by ``models.repository.record_applied`` (the single path fills
take), so a position, a trade and its outcome change exactly when a fill is recorded: a
duplicate fill never reaches it, and a concurrent writer makes the caller retry the whole
transaction (the order's version, the fill's unique key, the outcome's unique key). Rows
are locked position first, then trade; when PostgreSQL breaks a lock cycle by aborting our
wait for one of them, that is raised as ``LedgerConflict``, a ``StaleDataError`` the
callers retry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, MappedColumn, Session, mapped_column
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm.util import identity_key

from brokers.base import FillReport
from models.base import Base
from models.enums import OPEN_STATUSES, Intent, ReportSource, Side
from models.orders import Order, OrderEvent, _enum
from models.outbox import EventKind, add_event
from models.trades import (
    Leg,
    Outcome,
    PositionState,
    TradeState,
    TradeStatus,
    add_entry_fill,
    add_exit_fill,
    amount,
    apply_to_position,
    outcome_of,
    trade_lifecycle,
)
from models.types import Money, UTCDateTime

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
# What a trade id may be (the orders.trade_id column); a longer decision id is not used.
TRADE_ID_LENGTH = 64
# The trade's exit orders are found by (account, trade id).
Index("ix_orders_account_trade", Order.account_id, Order.trade_id)


def _money(*, nullable: bool = False) -> MappedColumn[Any]:
    return mapped_column(Money(), nullable=nullable, default=None if nullable else ZERO)


class Position(Base):
    """Per account and symbol: signed quantity, its cost, realized PnL (net of fees)."""

    __tablename__ = "positions"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[Decimal] = _money()
    cost_basis: Mapped[Decimal] = _money()
    average_cost: Mapped[Decimal | None] = _money(nullable=True)
    realized_pnl: Mapped[Decimal] = _money()
    fees: Mapped[Decimal] = _money()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    def state(self) -> PositionState:
        return PositionState(self.quantity, self.cost_basis, self.realized_pnl, self.fees)


class Trade(Base):
    """An entry and the exits that close it; ``id`` is the trading service's trade id."""

    __tablename__ = "trades"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(TRADE_ID_LENGTH), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[Side] = mapped_column(_enum(Side, "trade_side"))
    status: Mapped[TradeStatus] = mapped_column(_enum(TradeStatus, "trade_status"))
    decision_id: Mapped[str | None] = mapped_column(String(128))
    entry_order_id: Mapped[str | None] = mapped_column(String(36))  # no FK: orders get purged
    entry_quantity: Mapped[Decimal] = _money()
    entry_notional: Mapped[Decimal] = _money()
    entry_fees: Mapped[Decimal] = _money()
    entry_slippage_cost: Mapped[Decimal] = _money()
    entry_slippage_quantity: Mapped[Decimal] = _money()
    exit_quantity: Mapped[Decimal] = _money()
    exit_notional: Mapped[Decimal] = _money()
    exit_fees: Mapped[Decimal] = _money()
    exit_slippage_cost: Mapped[Decimal] = _money()
    exit_slippage_quantity: Mapped[Decimal] = _money()
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_exit_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_exit_source: Mapped[ReportSource | None] = mapped_column(
        _enum(ReportSource, "trade_exit_source")
    )
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (Index("ix_trades_status", "status"),)

    def state(self) -> TradeState:
        return TradeState(
            side=self.side, status=self.status,
            entry=Leg(self.entry_quantity, self.entry_notional, self.entry_fees,
                      self.entry_slippage_cost, self.entry_slippage_quantity),
            exit=Leg(self.exit_quantity, self.exit_notional, self.exit_fees,
                     self.exit_slippage_cost, self.exit_slippage_quantity),
            opened_at=self.opened_at, last_exit_at=self.last_exit_at,
            last_exit_source=self.last_exit_source,
        )  # fmt: skip

    def store(self, state: TradeState, now: datetime) -> None:
        entry, exit_ = state.entry, state.exit
        self.entry_quantity, self.entry_notional, self.entry_fees = (
            entry.quantity, entry.notional, entry.fees)  # fmt: skip
        self.entry_slippage_cost = entry.slippage_cost
        self.entry_slippage_quantity = entry.slippage_quantity
        self.exit_quantity, self.exit_notional, self.exit_fees = (
            exit_.quantity, exit_.notional, exit_.fees)  # fmt: skip
        self.exit_slippage_cost = exit_.slippage_cost
        self.exit_slippage_quantity = exit_.slippage_quantity
        if state.opened_at is not None:
            self.opened_at = state.opened_at
        self.last_exit_at, self.last_exit_source = state.last_exit_at, state.last_exit_source
        self.status = state.status
        self.updated_at = now


class TradeOutcome(Base):
    """A closed trade's result; the unique key makes it exactly once, whatever races."""

    __tablename__ = "trade_outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(36))
    trade_id: Mapped[str] = mapped_column(String(TRADE_ID_LENGTH))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[Side] = mapped_column(_enum(Side, "outcome_side"))
    decision_id: Mapped[str | None] = mapped_column(String(128))
    quantity: Mapped[Decimal] = _money()
    entry_average_price: Mapped[Decimal] = _money()
    exit_average_price: Mapped[Decimal] = _money()
    entry_notional: Mapped[Decimal] = _money()
    exit_notional: Mapped[Decimal] = _money()
    fees: Mapped[Decimal] = _money()
    realized_pnl: Mapped[Decimal] = _money()
    entry_slippage: Mapped[Decimal | None] = _money(nullable=True)
    exit_slippage: Mapped[Decimal | None] = _money(nullable=True)
    slippage_cost: Mapped[Decimal] = _money()
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    exited_at: Mapped[datetime] = mapped_column(UTCDateTime())
    holding_s: Mapped[Decimal] = _money()
    deciding_source: Mapped[ReportSource] = mapped_column(_enum(ReportSource, "deciding_source"))
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "trade_id"], ["trades.account_id", "trades.id"], ondelete="RESTRICT"
        ),
        UniqueConstraint("account_id", "trade_id"),
    )


class LedgerConflict(StaleDataError):
    """A lock cycle with another writer (PostgreSQL chose us to abort): like a version
    conflict, the caller retries its whole transaction on fresh state."""

    def __init__(self, what: str, key: tuple[str, str]) -> None:
        self.what = what
        self.key = key
        super().__init__(f"{what} {key}: lock conflict with a concurrent writer, retry")


M = TypeVar("M", bound=Base)
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization
_HELD = "ordersync.ledger.held"


@contextmanager
def _conflicts_retried(what: str, key: tuple[str, str]) -> Iterator[None]:
    try:
        yield
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
            raise LedgerConflict(what, key) from error
        raise


def _held(session: Session) -> dict[tuple[type[Base], tuple[str, str]], Any]:
    """The ledger rows this transaction has locked: a second fill in it finds them (new
    ones too) without a query that would undo its unflushed changes."""
    transaction = session.get_transaction()
    held = session.info.get(_HELD)
    if held is None or held[0] is not transaction:
        held = session.info[_HELD] = (transaction, {})
    return cast(dict[tuple[type[Base], tuple[str, str]], Any], held[1])


def _hold_trade_row(session: Session, account_id: str, trade_id: str) -> None:
    """Write the trade's row (unchanged) before reading it: a row lock on PostgreSQL, the
    write lock on SQLite, so two writers judge the trade one after the other."""
    table = cast(Table, Trade.__table__)
    where = (table.c.account_id == account_id, table.c.id == trade_id)
    with _conflicts_retried("trades", (account_id, trade_id)):
        session.execute(update(table).where(*where).values(version=table.c.version))


def _locked(session: Session, model: type[M], key: tuple[str, str]) -> M | None:
    """The row, locked for this transaction (FOR UPDATE where the database has it)."""
    held = _held(session)
    if (model, key) in held:
        return cast(M | None, held[(model, key)])
    with _conflicts_retried(model.__tablename__, key):
        row = session.get(model, key, with_for_update=True, populate_existing=True)
    held[(model, key)] = row
    return row


def _new(session: Session, row: M, key: tuple[str, str]) -> M:
    session.add(row)
    _held(session)[(type(row), key)] = row
    return row


# --- the fill path -------------------------------------------------------------------------


def record_fills(
    session: Session, order: Order, new_fills: Sequence[FillReport], *, now: datetime,
    source: ReportSource,
) -> None:  # fmt: skip
    """Move the position (every order) and the trade (orders with an intent) with the
    order's new fills; an entry that ends with its trade flat closes the trade.

    Nothing is flushed here: the changes go out with the rest of the transaction in one
    flush (an extra flush would cost the hot path a round of the unit of work and a second
    UPDATE of the order)."""
    ended_entry = (order.intent is Intent.ENTRY and not new_fills and order.trade_id
                   and order.filled_quantity and order.status.is_terminal)  # fmt: skip
    if not new_fills and not ended_entry:
        return
    with session.no_autoflush:
        if new_fills:
            _move_position(session, order, new_fills, now)
        if order.intent is Intent.ENTRY and new_fills:
            _enter(session, order, new_fills, now=now, source=source)
        elif order.intent is Intent.EXIT and new_fills:
            _exit(session, order, new_fills, now=now, source=source)
        elif ended_entry and order.trade_id:
            _hold_trade_row(session, order.account_id, order.trade_id)
            trade = _locked(session, Trade, (order.account_id, order.trade_id))
            if trade is not None and trade.status is TradeStatus.OPEN:
                _close_if_done(session, trade, order, now)


_POSITIONS = cast(Table, Position.__table__)
_POSITION_KEY = (_POSITIONS.c.account_id == bindparam("key_account"),
                 _POSITIONS.c.symbol == bindparam("key_symbol"))  # fmt: skip
_POSITION_STATE = (_POSITIONS.c.quantity, _POSITIONS.c.cost_basis, _POSITIONS.c.realized_pnl,
                   _POSITIONS.c.fees)  # fmt: skip
# Built once: on the hot path, building statements costs more than running them.
_HOLD_POSITION = update(_POSITIONS).where(*_POSITION_KEY).values(version=_POSITIONS.c.version)
_HOLD_AND_READ_POSITION = _HOLD_POSITION.returning(*_POSITION_STATE)
_READ_POSITION = select(*_POSITION_STATE).where(*_POSITION_KEY)
_WRITE_POSITION = update(_POSITIONS).where(*_POSITION_KEY).values(version=_POSITIONS.c.version + 1)
_CREATE_POSITION = insert(_POSITIONS).values(version=1)


def _move_position(
    session: Session, order: Order, fills: Sequence[FillReport], now: datetime
) -> None:
    """Two statements on the hot path: lock-and-read, write. Core, not the unit of work:
    it runs on every fill, and a write here takes SQLite's write lock before anything of
    the ledger is read, so what is read is current on every database."""
    key = {"key_account": order.account_id, "key_symbol": order.symbol}
    with _conflicts_retried("positions", (order.account_id, order.symbol)):
        if session.get_bind().dialect.update_returning:
            row = session.execute(_HOLD_AND_READ_POSITION, key).one_or_none()
        else:  # SQLite before 3.35: the same lock, then the read
            session.execute(_HOLD_POSITION, key)
            row = session.execute(_READ_POSITION, key).one_or_none()
    state = PositionState() if row is None else PositionState(*row)
    for fill in fills:
        state = apply_to_position(state, order.side, fill.quantity, fill.price, fill.fee)
    values = {
        "quantity": state.quantity, "cost_basis": state.cost_basis,
        "average_cost": state.average_cost, "realized_pnl": state.realized_pnl,
        "fees": state.fees, "updated_at": now,
    }  # fmt: skip
    if row is None:
        session.execute(_CREATE_POSITION, {"account_id": order.account_id,
                                           "symbol": order.symbol, **values})  # fmt: skip
    else:
        session.execute(_WRITE_POSITION, {**key, **values})


def default_trade_id(order: Order) -> str:
    """An entry without a trade id opens the trade named by its decision id (what a trading
    service knows before the order exists), else by the order's own id."""
    if order.decision_id and len(order.decision_id) <= TRADE_ID_LENGTH:
        return order.decision_id
    return order.id


def _enter(
    session: Session, order: Order, fills: Sequence[FillReport], *, now: datetime,
    source: ReportSource,
) -> None:  # fmt: skip
    if order.trade_id is None:
        order.trade_id = default_trade_id(order)  # written back: the service exits by it
    key = (order.account_id, order.trade_id)
    trade = _locked(session, Trade, key)
    opened = trade is None
    if trade is None:
        trade = _new(session, Trade(
            account_id=order.account_id, id=order.trade_id, symbol=order.symbol,
            side=order.side, status=TradeStatus.OPEN, decision_id=order.decision_id,
            entry_order_id=order.id, opened_at=min(f.filled_at for f in fills), updated_at=now,
        ), key)  # fmt: skip
        state = TradeState(side=order.side)
    elif problem := _entry_problem(trade, order):
        _note_mismatch(session, order, problem, now=now, source=source)
        return
    else:
        state = trade.state()
    for fill in fills:
        state = add_entry_fill(state, fill.quantity, fill.price, fill.fee, fill.filled_at,
                               order.requested_price)  # fmt: skip
    trade.store(state, now)
    if opened:
        add_event(session, EventKind.TRADE_OPENED, trade_data(trade, entry_working=True),
                  now=now, order_id=order.id, trade_id=trade.id)  # fmt: skip


def _entry_problem(trade: Trade, order: Order) -> str | None:
    if trade.status is TradeStatus.CLOSED:
        return f"trade {trade.id!r} is already closed"
    if (trade.symbol, trade.side) != (order.symbol, order.side):
        return (f"trade {trade.id!r} is {trade.side.value} {trade.symbol}, this entry "
                f"{order.side.value} {order.symbol}")  # fmt: skip
    return None


def _exit(
    session: Session, order: Order, fills: Sequence[FillReport], *, now: datetime,
    source: ReportSource,
) -> None:  # fmt: skip
    if order.trade_id is None:
        _note_mismatch(session, order, "an exit without trade_id", now=now, source=source)
        return
    trade = _locked(session, Trade, (order.account_id, order.trade_id))
    problem = _exit_problem(trade, order.trade_id, order.symbol, order.side)
    if problem or trade is None:
        _note_mismatch(session, order, problem or "no trade", now=now, source=source)
        return
    state, excess = trade.state(), ZERO
    for fill in fills:
        state, over = add_exit_fill(state, fill.quantity, fill.price, fill.fee, fill.filled_at,
                                    order.requested_price, source)  # fmt: skip
        excess += over
    trade.store(state, now)
    if excess:
        _note_mismatch(
            session, order,
            f"exit fills exceed the open quantity of trade {trade.id!r} by {amount(excess)}",
            now=now, source=source,
        )  # fmt: skip
    if not state.open_quantity:
        _close_if_done(session, trade, order, now)


def _exit_problem(trade: Trade | None, trade_id: str, symbol: str, side: Side) -> str | None:
    """Why an exit cannot reduce this trade, or None."""
    if trade is None:
        return f"no trade {trade_id!r} in this account (an entry's first fill opens one)"
    if trade.status is TradeStatus.CLOSED:
        return f"trade {trade_id!r} is closed"
    if trade.symbol != symbol:
        return f"trade {trade_id!r} is in {trade.symbol}, not {symbol}"
    if side is trade.side:
        held = "long" if trade.side is Side.BUY else "short"
        return (f"trade {trade_id!r} is {held} {trade.symbol}: its exit must "
                f"{trade.state().exit_side.value}, not {side.value}")  # fmt: skip
    return None


def _note_mismatch(
    session: Session, order: Order, problem: str, *, now: datetime, source: ReportSource
) -> None:
    """The fills stay recorded and in the position; the trade is left as it was, and the
    order's history says why, where an operator sees it."""
    detail = f"{problem}: the fills move the position only"
    logger.error("order %s (client %s, trade %s): %s", order.id, order.client_order_id,
                 order.trade_id, detail)  # fmt: skip
    session.add(OrderEvent(
        order_id=order.id, kind="trade_mismatch", from_status=order.status,
        to_status=order.status, filled_quantity=order.filled_quantity,
        raw_status=order.raw_status, source=source, detail=detail, at=now,
    ))  # fmt: skip


def _entry_working(session: Session, trade: Trade) -> bool:
    """Whether any ENTRY order of the trade (a scale-in has several) may still add
    quantity: open, or with fills the broker reported that are not recorded yet (a purged
    order adds nothing). Each as this transaction changed it, else as last committed."""
    rows = session.execute(
        select(Order.id, Order.status, Order.broker_filled_quantity, Order.filled_quantity)
        .where(Order.account_id == trade.account_id, Order.trade_id == trade.id,
               Order.intent == Intent.ENTRY)
    ).all()  # fmt: skip
    ids = {row[0] for row in rows} | ({trade.entry_order_id} - {None})
    for order_id in ids:
        mine = session.identity_map.get(identity_key(Order, order_id))
        if mine is not None and inspect(mine).modified:
            if mine.status in OPEN_STATUSES or mine.fill_gap:
                return True
            continue
        row = next((r for r in rows if r[0] == order_id), None)
        if row is not None and (row[1] in OPEN_STATUSES or row[2] > row[3]):
            return True
    return False


def _close_if_done(session: Session, trade: Trade, order: Order, now: datetime) -> None:
    """Close a flat trade once its entry can add nothing more: one outcome, one event."""
    state = trade.state()
    if state.open_quantity or not state.exit.quantity or _entry_working(session, trade):
        return
    outcome = outcome_of(state, now=now)
    trade.status, trade.closed_at, trade.updated_at = TradeStatus.CLOSED, now, now
    session.add(TradeOutcome(
        account_id=trade.account_id, trade_id=trade.id, symbol=trade.symbol, side=trade.side,
        decision_id=trade.decision_id, **outcome_columns(outcome),
    ))  # fmt: skip
    data = trade_data(trade, entry_working=False) | {"outcome": outcome_columns(outcome)}
    add_event(session, EventKind.TRADE_CLOSED, data, now=now, order_id=order.id,
              trade_id=trade.id)  # fmt: skip


def outcome_columns(outcome: Outcome) -> dict[str, Any]:
    return {
        "quantity": outcome.quantity, "entry_average_price": outcome.entry_average_price,
        "exit_average_price": outcome.exit_average_price,
        "entry_notional": outcome.entry_notional, "exit_notional": outcome.exit_notional,
        "fees": outcome.fees, "realized_pnl": outcome.realized_pnl,
        "entry_slippage": outcome.entry_slippage, "exit_slippage": outcome.exit_slippage,
        "slippage_cost": outcome.slippage_cost, "opened_at": outcome.opened_at,
        "exited_at": outcome.exited_at, "holding_s": outcome.holding_s,
        "deciding_source": outcome.deciding_source, "closed_at": outcome.closed_at,
    }  # fmt: skip


def trade_data(trade: Trade, *, entry_working: bool,
               realized_pnl: Decimal | None = None) -> dict[str, Any]:  # fmt: skip
    """The trade as events and listings carry it."""
    state = trade.state()
    return {
        "trade_id": trade.id, "account_id": trade.account_id, "symbol": trade.symbol,
        "side": trade.side, "status": trade.status, "decision_id": trade.decision_id,
        "entry_order_id": trade.entry_order_id, "entry_quantity": trade.entry_quantity,
        "entry_average_price": state.entry.average_price, "exit_quantity": trade.exit_quantity,
        "exit_average_price": state.exit.average_price, "open_quantity": state.open_quantity,
        "fees": trade.entry_fees + trade.exit_fees, "opened_at": trade.opened_at,
        "closed_at": trade.closed_at,
        "lifecycle": trade_lifecycle(state, entry_working, realized_pnl),
    }  # fmt: skip


# --- placement: an exit may not close more than its trade has open ------------------------


class ExitRefused(ValueError):
    """An EXIT order that its trade cannot take; nothing is written for it."""

    def __init__(self, trade_id: str, problem: str) -> None:
        self.trade_id = trade_id
        self.problem = problem
        super().__init__(problem)


def check_exit(
    session: Session, *, account_id: str, trade_id: str, symbol: str, side: Side,
    quantity: Decimal,
) -> None:  # fmt: skip
    """Refuse an exit larger than its trade's open quantity less what other working exit
    orders already hold of it. The trade row is written first, so two exits of one trade
    are judged one after the other on every database (a row lock, SQLite's write lock)."""
    _hold_trade_row(session, account_id, trade_id)
    trade = session.get(Trade, (account_id, trade_id), populate_existing=True)
    problem = _exit_problem(trade, trade_id, symbol, side)
    if problem or trade is None:
        raise ExitRefused(trade_id, f"exit refused: {problem}")
    exits = session.execute(
        select(Order.id, Order.status, Order.quantity, Order.filled_quantity,
               Order.broker_filled_quantity).where(
            Order.account_id == account_id, Order.trade_id == trade_id,
            Order.intent == Intent.EXIT,
        )
    ).all()  # fmt: skip
    # A working exit holds what it may still fill; an ended one, fills not recorded yet.
    holds = [(i, (q - f) if s in OPEN_STATUSES else max(b - f, ZERO))
             for i, s, q, f, b in exits]  # fmt: skip
    working = [(i, h) for i, h in holds if h > 0]
    held = sum((h for _, h in working), ZERO)
    open_quantity = trade.state().open_quantity
    available = open_quantity - held
    if quantity > available:
        by = f", {amount(held)} held by working exits {[i for i, _ in working]}" if held else ""
        raise ExitRefused(trade_id, (
            f"exit refused: {amount(quantity)} {symbol} exceeds what trade {trade_id!r} has "
            f"open: {amount(open_quantity)} open{by}, {amount(available)} available"
        ))  # fmt: skip
