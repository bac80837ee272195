"""Positions, trades and outcomes, moved in the same transaction as the fills that cause them.

``record_fills`` is called by ``models.repository.record_applied`` (the single path fills
take), so a position, a trade and its outcome change exactly when a fill is recorded: a
duplicate fill never reaches it, and a concurrent writer makes the caller retry the whole
transaction (the order's version, the fill's unique key, the outcome's unique key). Rows
are locked after the order's own: position first, then exit orders waiting for the entry,
then trade; when PostgreSQL breaks a lock cycle by aborting our wait for one of them, that
is raised as ``LedgerConflict``, a ``StaleDataError`` the callers retry.

Our record may lag the broker's: an exit's fills recorded before its entry's wait on the
exit order (``orders.trade_applied_quantity``: how much of its fills the trade has taken)
until the entry's fills come; an order adopted before the trading service named its intent
has its fills replayed into the trade when it does (``annotate_intent``). All money
arithmetic runs in ``models.trades.MONEY_CONTEXT``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
    and_,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, MappedColumn, Session, mapped_column
from sqlalchemy.orm.exc import StaleDataError

from core.enums import OPEN_STATUSES, Intent, OrderStatus, ReportSource, Side
from core.instruments import contract_multiplier
from core.reports import FillReport
from models.base import Base
from models.orders import Fill, Order, OrderEvent, _enum
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
    in_money_context,
    outcome_of,
    trade_lifecycle,
)
from models.types import Money, UTCDateTime

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
# What a trade id may be (the orders.trade_id column); a longer decision id is not used.
TRADE_ID_LENGTH = 64
# The trade's exit orders are found by (account, trade id); an entry that has not filled
# yet by the decision id that will name its trade.
Index("ix_orders_account_trade", Order.account_id, Order.trade_id)
Index("ix_orders_account_decision", Order.account_id, Order.decision_id)


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
        return PositionState(self.quantity, self.cost_basis, self.realized_pnl, self.fees,
                             contract_multiplier(self.symbol))  # fmt: skip


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
    # What the broker took of the entry's asset as fees (posted apart from the fills), and
    # its worth when posted (models/fees.py).
    entry_fee_quantity: Mapped[Decimal] = mapped_column(Money(), default=ZERO, server_default="0")
    asset_fees: Mapped[Decimal] = mapped_column(Money(), default=ZERO, server_default="0")
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
        times = contract_multiplier(self.symbol)
        return TradeState(
            side=self.side, status=self.status,
            entry=Leg(self.entry_quantity, self.entry_notional, self.entry_fees,
                      self.entry_slippage_cost, self.entry_slippage_quantity, times),
            exit=Leg(self.exit_quantity, self.exit_notional, self.exit_fees,
                     self.exit_slippage_cost, self.exit_slippage_quantity, times),
            opened_at=self.opened_at, last_exit_at=self.last_exit_at,
            last_exit_source=self.last_exit_source, fee_quantity=self.entry_fee_quantity,
            asset_fees=self.asset_fees,
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
        self.entry_fee_quantity, self.asset_fees = state.fee_quantity, state.asset_fees
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


def _hold_trade_row(session: Session, account_id: str, trade_id: str) -> bool:
    """Write the trade's row (unchanged) before reading it: a row lock on PostgreSQL, the
    write lock on SQLite, so two writers judge the trade one after the other. False when
    there is no such row (SQLite's write lock is taken all the same)."""
    table = cast(Table, Trade.__table__)
    where = (table.c.account_id == account_id, table.c.id == trade_id)
    with _conflicts_retried("trades", (account_id, trade_id)):
        result = session.execute(update(table).where(*where).values(version=table.c.version))
    return bool(cast(CursorResult[Any], result).rowcount)


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


@dataclass(frozen=True, slots=True)
class _Fill:
    """A fill as a trade takes it, with the source that recorded it. A recorded fill taken
    late may come in part: the rest of one its trade could take only some of, whose fee
    went with that first part."""

    quantity: Decimal
    price: Decimal
    fee: Decimal
    filled_at: datetime
    source: ReportSource


@in_money_context
def record_fills(
    session: Session, order: Order, new_fills: Sequence[FillReport], *, now: datetime,
    source: ReportSource,
) -> None:  # fmt: skip
    """Move the position (every order) and the trade (orders with an intent) with the
    order's new fills; an entry that ends, filled or not, may close its flat trade.

    Nothing is flushed here on the usual path: the changes go out with the rest of the
    transaction in one flush (an extra flush would cost the hot path a round of the unit of
    work and a second UPDATE of the order)."""
    entry = order.intent is Intent.ENTRY
    if not new_fills and not (entry and order.status.is_terminal):
        return
    with session.no_autoflush:
        if new_fills:
            _move_position(session, order, new_fills, now)
        elif entry:  # an entry that ends: judged after any exit fill of its symbol under way
            _hold_position(session, order)
        if entry:
            fills = _untaken(session, order, new_fills, source)
            _entry_changed(session, order, fills, now=now, source=source)
        elif order.intent is Intent.EXIT:
            fills = _untaken(session, order, new_fills, source)
            _exit(session, order, fills, now=now, source=source)


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


def _hold_position(session: Session, order: Order) -> None:
    """Lock the order's position without moving it (where it exists)."""
    key = {"key_account": order.account_id, "key_symbol": order.symbol}
    with _conflicts_retried("positions", (order.account_id, order.symbol)):
        session.execute(_HOLD_POSITION, key)


def _move_position(
    session: Session, order: Order, fills: Sequence[FillReport], now: datetime
) -> None:
    moves = [(order.side, fill.quantity, fill.price, fill.fee) for fill in fills]
    move_position(session, order.account_id, order.symbol, moves, now)


def move_position(
    session: Session, account_id: str, symbol: str,
    moves: Sequence[tuple[Side, Decimal, Decimal, Decimal]], now: datetime,
) -> None:  # fmt: skip
    """Apply (side, quantity, price, fee) moves. Two statements on the hot path:
    lock-and-read, write. Core, not the unit of work: it runs on every fill, and a write
    here takes SQLite's write lock before anything of the ledger is read, so what is read
    is current on every database."""
    key = {"key_account": account_id, "key_symbol": symbol}
    with _conflicts_retried("positions", (account_id, symbol)):
        if session.get_bind().dialect.update_returning:
            row = session.execute(_HOLD_AND_READ_POSITION, key).one_or_none()
        else:  # SQLite before 3.35: the same lock, then the read
            session.execute(_HOLD_POSITION, key)
            row = session.execute(_READ_POSITION, key).one_or_none()
    times = contract_multiplier(symbol)
    state = dataclasses.replace(PositionState() if row is None else PositionState(*row),
                                multiplier=times)  # fmt: skip
    for side, quantity, price, fee in moves:
        state = apply_to_position(state, side, quantity, price, fee)
    values = {
        "quantity": state.quantity, "cost_basis": state.cost_basis,
        "average_cost": state.average_cost, "realized_pnl": state.realized_pnl,
        "fees": state.fees, "updated_at": now,
    }  # fmt: skip
    if row is None:
        session.execute(_CREATE_POSITION, {"account_id": account_id, "symbol": symbol,
                                           **values})  # fmt: skip
    else:
        session.execute(_WRITE_POSITION, {**key, **values})


def trade_id_of(order: Order) -> str:
    """The trade an order names, or, for an entry without one, the trade it will open."""
    return order.trade_id or default_trade_id(order)


def default_trade_id(order: Order) -> str:
    """An entry without a trade id opens the trade named by its decision id (what a trading
    service knows before the order exists), else by the order's own id."""
    return _default_trade_id(order.id, order.decision_id)


def _default_trade_id(order_id: str, decision_id: str | None) -> str:
    if decision_id and len(decision_id) <= TRADE_ID_LENGTH:
        return decision_id
    return order_id


def _untaken(
    session: Session, order: Order, new_fills: Sequence[FillReport], source: ReportSource
) -> list[_Fill]:
    """The order's fills its trade has not taken yet, oldest first: usually just the new
    ones; after a wait, the order's latest recorded fills, the oldest of them maybe in part."""
    new = [_Fill(f.quantity, f.price, f.fee, f.filled_at, source) for f in new_fills]
    untaken = order.filled_quantity - order.trade_applied_quantity
    if untaken <= sum((f.quantity for f in new), ZERO):
        return new
    session.flush()  # rare (a wait is over): the fills of this transaction are read too
    rows = session.execute(
        select(Fill.quantity, Fill.price, Fill.fee, Fill.filled_at, Fill.source)
        .where(Fill.order_id == order.id).order_by(Fill.id.desc())
    ).all()  # fmt: skip
    taken: list[_Fill] = []
    for quantity, price, fee, filled_at, recorded_by in rows:
        if untaken <= 0:
            break
        part = min(quantity, untaken)
        taken.append(_Fill(part, price, fee if part == quantity else ZERO, filled_at, recorded_by))
        untaken -= part
    return taken[::-1]


def _waiting_exits(session: Session, account_id: str, trade_id: str) -> list[Order]:
    """The trade's exit orders holding fills it has not taken (recorded before its entry's),
    locked; those this transaction changed as it changed them. Read under the position's
    lock, which an exit's fills take too (an exit in another symbol never waits), so an
    exit fill under way has either committed or will find the trade this one makes."""
    query = (
        select(Order).where(Order.account_id == account_id, Order.trade_id == trade_id,
                            Order.intent == Intent.EXIT,
                            Order.filled_quantity != Order.trade_applied_quantity)
        .order_by(Order.created_at, Order.id).with_for_update()
    )  # fmt: skip
    with _conflicts_retried("orders", (account_id, trade_id)):
        found = {o.id: o for o in session.scalars(query)}
    for o in session.dirty:  # its fills recorded in this transaction, maybe not flushed
        if (isinstance(o, Order) and o.intent is Intent.EXIT and o.trade_id == trade_id
                and o.account_id == account_id):  # fmt: skip
            found.setdefault(o.id, o)
    return [o for o in found.values() if o.filled_quantity != o.trade_applied_quantity]


def _entry_changed(
    session: Session, order: Order, fills: Sequence[_Fill], *, now: datetime,
    source: ReportSource,
) -> None:  # fmt: skip
    """An entry's fills grow its trade; then the exits that waited for them take theirs, and
    a flat trade whose entries can add nothing more closes. The position is held already."""
    waiting = _waiting_exits(session, order.account_id, trade_id_of(order))
    if fills:
        trade = _enter(session, order, fills, now=now, source=source)
        order.trade_applied_quantity = order.filled_quantity
    else:
        key = (order.account_id, trade_id_of(order))
        _hold_trade_row(session, *key)
        trade = _locked(session, Trade, key)
    for exit_order in waiting:
        _exit(session, exit_order, _untaken(session, exit_order, (), source), now=now,
              source=source)  # fmt: skip
    if trade is not None and trade.status is TradeStatus.OPEN and not trade.state().open_quantity:
        close_if_done(session, trade, order.id, now)


def _enter(
    session: Session, order: Order, fills: Sequence[_Fill], *, now: datetime,
    source: ReportSource,
) -> Trade | None:  # fmt: skip
    """The trade the entry opens or adds to; None when it cannot take the fills."""
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
        state = TradeState.new(order.side, contract_multiplier(order.symbol))
    elif problem := _entry_problem(trade, order):
        _note_mismatch(session, order, problem, now=now, source=source)
        return None
    else:
        state = trade.state()
    for fill in fills:
        state = add_entry_fill(state, fill.quantity, fill.price, fill.fee, fill.filled_at,
                               order.requested_price)  # fmt: skip
    trade.store(state, now)
    if opened:
        add_event(session, EventKind.TRADE_OPENED, trade_data(trade, entry_working=True),
                  now=now, order_id=order.id, trade_id=trade.id)  # fmt: skip
    return trade


def _entry_problem(trade: Trade, order: Order) -> str | None:
    if trade.status is TradeStatus.CLOSED:
        return f"trade {trade.id!r} is already closed"
    if (trade.symbol, trade.side) != (order.symbol, order.side):
        return (f"trade {trade.id!r} is {trade.side.value} {trade.symbol}, this entry "
                f"{order.side.value} {order.symbol}")  # fmt: skip
    return None


def _exit(
    session: Session, order: Order, fills: Sequence[_Fill], *, now: datetime,
    source: ReportSource,
) -> None:  # fmt: skip
    """Reduce the trade by the exit's fills it has not taken. What it cannot take while one
    of its entries may still fill (our record of the entry lags the broker) waits for that
    entry's fills; anything else is a mismatch, and moves only the position."""
    if not fills:
        return
    if order.trade_id is None:
        _give_up(session, order, "an exit without trade_id", now=now, source=source)
        return
    key = (order.account_id, order.trade_id)
    trade = _locked(session, Trade, key)
    if trade is None:
        entries = [e for e in _entries(session, *key) if e.placed]
        problem = _exit_problem(order.trade_id, _held_by(None, entries), order.symbol, order.side)
        if problem or not any(e.working for e in entries):
            _give_up(session, order, problem or _no_trade(order.trade_id), now=now, source=source)
        else:
            _wait(session, order, f"trade {order.trade_id!r} has no entry fill recorded yet",
                  now=now, source=source)  # fmt: skip
        return
    if problem := _exit_problem(trade.id, _held_by(trade, ()), order.symbol, order.side):
        _give_up(session, order, problem, now=now, source=source)
        return
    state, taken = trade.state(), ZERO
    for fill in fills:
        state, over = add_exit_fill(state, fill.quantity, fill.price, fill.fee, fill.filled_at,
                                    order.requested_price, fill.source)  # fmt: skip
        taken += fill.quantity - over
    if taken:
        trade.store(state, now)
    excess = sum((f.quantity for f in fills), ZERO) - taken
    by = f"exit fills exceed the open quantity of trade {trade.id!r} by {amount(excess)}"
    if excess and _entry_working(session, trade):
        order.trade_applied_quantity += taken
        _wait(session, order, by, now=now, source=source)
    elif excess:
        _give_up(session, order, by, now=now, source=source)
    else:
        order.trade_applied_quantity = order.filled_quantity
    if not state.open_quantity:
        close_if_done(session, trade, order.id, now)


@dataclass(frozen=True, slots=True)
class _Held:
    """What an exit must match: its trade, or, before the trade opens, its entry."""

    symbol: str
    side: Side
    closed: bool = False


def _held_by(trade: Trade | None, entries: Sequence[_Entry]) -> _Held | None:
    if trade is not None:
        return _Held(trade.symbol, trade.side, trade.status is TradeStatus.CLOSED)
    return _Held(entries[0].symbol, entries[0].side) if entries else None


def _no_trade(trade_id: str) -> str:
    return f"no trade {trade_id!r} in this account (no entry order of it is working or filled)"


def _exit_problem(trade_id: str, held: _Held | None, symbol: str, side: Side) -> str | None:
    """Why an exit cannot reduce this trade, or None."""
    if held is None:
        return _no_trade(trade_id)
    if held.closed:
        return f"trade {trade_id!r} is closed"
    if held.symbol != symbol:
        return f"trade {trade_id!r} is in {held.symbol}, not {symbol}"
    if side is held.side:
        long_or_short = "long" if held.side is Side.BUY else "short"
        exit_side = Side.SELL if held.side is Side.BUY else Side.BUY
        return (f"trade {trade_id!r} is {long_or_short} {held.symbol}: its exit must "
                f"{exit_side.value}, not {side.value}")  # fmt: skip
    return None


def _give_up(
    session: Session, order: Order, problem: str, *, now: datetime, source: ReportSource
) -> None:
    """The order's fills will never reach a trade: a mismatch, and none of them is held."""
    order.trade_applied_quantity = order.filled_quantity
    _note_mismatch(session, order, problem, now=now, source=source)


def _wait(
    session: Session, order: Order, problem: str, *, now: datetime, source: ReportSource
) -> None:
    """Exit fills the trade cannot take yet: they wait for its entry's fills, in view."""
    detail = f"{problem}: the fills wait for its entry's fills"
    logger.info("order %s (client %s, trade %s): %s", order.id, order.client_order_id,
                order.trade_id, detail)  # fmt: skip
    _history(session, order, "trade_pending", detail, now=now, source=source)


def _note_mismatch(
    session: Session, order: Order, problem: str, *, now: datetime, source: ReportSource
) -> None:
    """The fills stay recorded and in the position; the trade is left as it was, and the
    order's history says why, where an operator sees it."""
    detail = f"{problem}: the fills move the position only"
    logger.error("order %s (client %s, trade %s): %s", order.id, order.client_order_id,
                 order.trade_id, detail)  # fmt: skip
    _history(session, order, "trade_mismatch", detail, now=now, source=source)


def _history(session: Session, order: Order, kind: str, detail: str, *, now: datetime,
             source: ReportSource) -> None:  # fmt: skip
    session.add(OrderEvent(
        order_id=order.id, kind=kind, from_status=order.status, to_status=order.status,
        filled_quantity=order.filled_quantity, raw_status=order.raw_status, source=source,
        detail=detail, at=now,
    ))  # fmt: skip


# --- a trade's entry orders ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    """An ENTRY order of a trade, as far as the trade's quantity goes."""

    id: str
    status: OrderStatus
    symbol: str
    side: Side
    quantity: Decimal | None  # None: a notional order, the broker sizes it
    filled: Decimal  # recorded
    broker_filled: Decimal  # what the broker says is filled

    @classmethod
    def of(cls, order: Order) -> _Entry:
        return cls(order.id, order.status, order.symbol, order.side, order.quantity,
                   order.filled_quantity, order.broker_filled_quantity)  # fmt: skip

    @property
    def working(self) -> bool:
        """It may still add quantity: open, or with fills still to record."""
        return self.status in OPEN_STATUSES or self.broker_filled > self.filled

    @property
    def placed(self) -> bool:
        """It is, or was, in the market: not ended (a rejection included) without a fill."""
        return self.working or self.filled > 0

    @property
    @in_money_context
    def to_come(self) -> Decimal:
        """What it may still add beyond its recorded fills (a working notional order: what
        the broker reports filled so far; what it will buy is unknown until it has)."""
        if self.status in OPEN_STATUSES and self.quantity is not None:
            return self.quantity - self.filled
        return max(self.broker_filled - self.filled, ZERO)


_ENTRY_COLUMNS = (Order.id, Order.trade_id, Order.decision_id, Order.status, Order.symbol,
                  Order.side, Order.quantity, Order.filled_quantity,
                  Order.broker_filled_quantity)  # fmt: skip


def _entries(session: Session, account_id: str, trade_id: str, *, lock: bool = False
             ) -> list[_Entry]:  # fmt: skip
    """The trade's ENTRY orders (a scale-in has several): those naming it, and those without
    a trade id yet that will name it at their first fill. Each as this transaction changed
    it, else as last committed; a purged order adds nothing."""
    named = or_(Order.trade_id == trade_id,
                and_(Order.trade_id.is_(None),
                     or_(Order.decision_id == trade_id, Order.id == trade_id)))  # fmt: skip
    query = (select(*_ENTRY_COLUMNS)
             .where(Order.account_id == account_id, Order.intent == Intent.ENTRY, named)
             .order_by(Order.created_at, Order.id))  # fmt: skip
    with _conflicts_retried("orders", (account_id, trade_id)):
        rows = session.execute(query.with_for_update() if lock else query).all()
    found: dict[str, _Entry | None] = {}
    for order_id, named_id, decision_id, status, symbol, side, quantity, filled, broker in rows:
        if (named_id or _default_trade_id(order_id, decision_id)) == trade_id:
            found[order_id] = _Entry(order_id, status, symbol, side, quantity, filled, broker)
    for mine in session.dirty:
        if isinstance(mine, Order) and mine.account_id == account_id:
            ours = mine.intent is Intent.ENTRY and trade_id_of(mine) == trade_id
            found[mine.id] = _Entry.of(mine) if ours else None
    return [entry for entry in found.values() if entry is not None]


def _entry_working(session: Session, trade: Trade) -> bool:
    """Whether any ENTRY order of the trade may still add quantity."""
    return any(entry.working for entry in _entries(session, trade.account_id, trade.id))


def close_if_done(session: Session, trade: Trade, order_id: str | None, now: datetime) -> None:
    """Close a flat trade once its entries can add nothing more: one outcome, one event
    (naming the order whose fill closed it; none for a fee)."""
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
    add_event(session, EventKind.TRADE_CLOSED, data, now=now, order_id=order_id,
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


@in_money_context
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
        "fees": state.fees, "opened_at": trade.opened_at,
        "closed_at": trade.closed_at,
        "lifecycle": trade_lifecycle(state, entry_working, realized_pnl),
    }  # fmt: skip


# --- an order whose intent arrives after its fills -----------------------------------------


@in_money_context
def annotate_intent(
    session: Session, order: Order, *, intent: Intent | None, decision_id: str | None,
    trade_id: str | None, now: datetime,
) -> None:  # fmt: skip
    """Fill in what the trading service tells us and we did not know, never overwriting.

    An order that gets its intent only now (adopted by reconciliation before its
    ``track_order`` came) has its recorded fills replayed into its trade, in this
    transaction: an entry opens or grows the trade, an exit reduces it. The position moved
    with the fills already and is left alone. Once: afterwards the order has its intent."""
    replay = order.intent is None and intent is not None
    order.intent = order.intent or intent
    order.decision_id = order.decision_id or decision_id
    order.trade_id = order.trade_id or trade_id
    if not replay or order.filled_quantity == order.trade_applied_quantity:
        return
    source = ReportSource.MANUAL  # the trading service told us, not the broker
    with session.no_autoflush:
        _hold_position(session, order)  # the locks in the order a fill takes them
        fills = _untaken(session, order, (), source)
        if order.intent is Intent.ENTRY:
            _entry_changed(session, order, fills, now=now, source=source)
        else:
            _exit(session, order, fills, now=now, source=source)


# --- placement: an exit may not close more than its trade can have open -------------------


class ExitRefused(ValueError):
    """An EXIT order that its trade cannot take; nothing is written for it."""

    def __init__(self, trade_id: str, problem: str) -> None:
        self.trade_id = trade_id
        self.problem = problem
        super().__init__(problem)


@in_money_context
def check_exit(
    session: Session, *, account_id: str, trade_id: str, symbol: str, side: Side,
    quantity: Decimal, replacing: str | None = None,
) -> None:  # fmt: skip
    """Refuse an exit larger than what its trade's entries can fill (recorded, or still to
    come: the trading service may see an entry fill at the broker before we record it) less
    what the trade exited and what its other working exits may still take.

    The trade row is written first, so two exits of one trade are judged one after the
    other on every database (a row lock, SQLite's write lock); before the trade opens, its
    entries' rows are locked instead (the fill that opens it needs its entry's row).

    ``replacing``: the exit this one replaces, held from now on only by what it filled."""
    key = (account_id, trade_id)
    locked = _hold_trade_row(session, *key)
    entries = [e for e in _entries(session, *key, lock=not locked) if e.placed]
    if not locked:
        _hold_trade_row(session, *key)  # opened meanwhile: locked now
    trade = session.get(Trade, key, populate_existing=True)
    if problem := _exit_problem(trade_id, _held_by(trade, entries), symbol, side):
        raise ExitRefused(trade_id, f"exit refused: {problem}")
    coming = [(e.id, e.to_come) for e in entries if e.to_come > 0]
    to_come = sum((c for _, c in coming), ZERO)
    open_quantity = to_come + (trade.state().open_quantity if trade is not None else ZERO)
    holds = _exit_holds(session, account_id, trade_id, replacing)
    held = sum((h for _, h in holds), ZERO)
    available = open_quantity - held
    if quantity <= available:
        return
    of_it = (f" ({amount(to_come)} of it still to fill by entries {[i for i, _ in coming]})"
             if to_come else "")  # fmt: skip
    by = f", {amount(held)} held by working exits {[i for i, _ in holds]}" if held else ""
    raise ExitRefused(trade_id, (
        f"exit refused: {amount(quantity)} {symbol} exceeds what trade {trade_id!r} has "
        f"open: {amount(open_quantity)} open{of_it}{by}, {amount(available)} available"
    ))  # fmt: skip


def _exit_holds(session: Session, account_id: str, trade_id: str,
                replacing: str | None = None) -> list[tuple[str, Decimal]]:  # fmt: skip
    """What each exit of the trade may still take from it: a working one, what it may still
    fill; an ended one (and the one being replaced), fills not recorded yet; both, fills
    recorded that wait."""
    exits = session.execute(
        select(Order.id, Order.status, Order.quantity, Order.broker_filled_quantity,
               Order.trade_applied_quantity)
        .where(Order.account_id == account_id, Order.trade_id == trade_id,
               Order.intent == Intent.EXIT)
    ).all()  # fmt: skip
    # (a notional exit, tracked: placing one is refused, holds what it reports filled)
    holds = [(i, (q - a) if s in OPEN_STATUSES and i != replacing and q is not None
              else max(b - a, ZERO)) for i, s, q, b, a in exits]  # fmt: skip
    return [(i, h) for i, h in holds if h > 0]
