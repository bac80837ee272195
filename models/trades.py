"""Positions, trades and outcomes as arithmetic: I/O-free, exact Decimal money, aware UTC.

A position is signed (long > 0, short < 0) and carries its cost basis (what the open
quantity cost, signed like it) rather than only an average, so a round trip's realized PnL
is exact however its fills were split. Realized PnL is net of fees. A trade is one entry and
the exits that close it; its outcome comes from the real fills' notionals.

A position's or trade's ``multiplier`` is what one unit of its quantity holds (an option
contract's 100 shares, see ``core.instruments``): its money is quantity * price *
multiplier, its prices stay per share, as brokers write them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from core.enums import Intent, OrderStatus, ReportSource, Side
from models.money import MONEY_CONTEXT, PRECISION, in_money_context
from models.state_machine import AVERAGE_PRICE_QUANTUM, NOTIONAL_QUANTUM
from models.types import canonical

__all__ = ["MONEY_CONTEXT", "PRECISION", "in_money_context"]
ZERO = Decimal(0)
ONE = Decimal(1)


class TradeStatus(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


def direction(side: Side) -> int:
    """+1 for a buy (adds to a long), -1 for a sell."""
    return 1 if side is Side.BUY else -1


@in_money_context
def notional(quantity: Decimal, price: Decimal, multiplier: Decimal = ONE) -> Decimal:
    """quantity * price (* multiplier) at the money columns' 18 places (as the state machine
    rounds it)."""
    return (quantity * price * multiplier).quantize(NOTIONAL_QUANTUM, rounding=ROUND_HALF_EVEN)


@in_money_context
def average(total: Decimal, quantity: Decimal, multiplier: Decimal = ONE) -> Decimal | None:
    """A quantity-weighted mean price at the order's average-price precision; None for 0."""
    if not quantity:
        return None
    mean = total / (quantity * multiplier)
    return canonical(mean.quantize(AVERAGE_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN))


# --- positions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PositionState:
    quantity: Decimal = ZERO  # signed
    cost_basis: Decimal = ZERO  # signed: quantity * price * multiplier of what is open
    realized_pnl: Decimal = ZERO  # net of every fee paid
    fees: Decimal = ZERO
    multiplier: Decimal = ONE

    @property
    @in_money_context
    def average_cost(self) -> Decimal | None:
        return average(abs(self.cost_basis), abs(self.quantity), self.multiplier)

    @in_money_context
    def unrealized_pnl(self, price: Decimal) -> Decimal:
        """What closing the open quantity at ``price`` would add (before its fees)."""
        return notional(self.quantity, price, self.multiplier) - self.cost_basis


@in_money_context
def apply_to_position(
    state: PositionState, side: Side, quantity: Decimal, price: Decimal, fee: Decimal
) -> PositionState:
    """One fill: adds to the position, reduces it (realizing PnL), or flips it through zero.

    ``realized_pnl - cost_basis`` moves by exactly the fill's cash flow, however the cost
    removed on a partial reduce is rounded, so totals never drift.
    """
    signed = direction(side) * quantity
    held, times = state.quantity, state.multiplier
    fees = state.fees + fee
    realized = state.realized_pnl - fee
    if not held or (held > 0) == (signed > 0):
        return PositionState(held + signed, state.cost_basis + notional(signed, price, times),
                             realized, fees, times)  # fmt: skip
    closing = min(quantity, abs(held))
    if closing == abs(held):
        removed = state.cost_basis
    else:
        removed = (state.cost_basis * closing / abs(held)).quantize(NOTIONAL_QUANTUM)
    sign = 1 if held > 0 else -1
    realized += sign * notional(closing, price, times) - removed
    remaining = held + signed
    if closing == abs(held):  # flat, or flipped: what is left was opened at this price
        return PositionState(remaining, notional(remaining, price, times), realized, fees, times)
    return PositionState(remaining, state.cost_basis - removed, realized, fees, times)


# --- trades --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a trade: its fills' totals, and the slippage of those whose order named
    a requested price (cost > 0 is worse for us)."""

    quantity: Decimal = ZERO
    notional: Decimal = ZERO
    fees: Decimal = ZERO
    slippage_cost: Decimal = ZERO
    slippage_quantity: Decimal = ZERO
    multiplier: Decimal = ONE

    @property
    def average_price(self) -> Decimal | None:
        return average(self.notional, self.quantity, self.multiplier)

    @property
    def slippage(self) -> Decimal | None:
        """Per unit of price, quantity-weighted over the fills that had a requested price."""
        return average(self.slippage_cost, self.slippage_quantity, self.multiplier)

    @in_money_context
    def add(self, side: Side, quantity: Decimal, price: Decimal, fee: Decimal,
            requested_price: Decimal | None) -> Leg:  # fmt: skip
        slippage_cost, slippage_quantity = self.slippage_cost, self.slippage_quantity
        times = self.multiplier
        if requested_price is not None:
            slippage_cost += direction(side) * (
                notional(quantity, price, times) - notional(quantity, requested_price, times)
            )
            slippage_quantity += quantity
        return Leg(self.quantity + quantity, self.notional + notional(quantity, price, times),
                   self.fees + fee, slippage_cost, slippage_quantity, times)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TradeState:
    side: Side  # the entry's side: buy opens a long, sell a short
    status: TradeStatus = TradeStatus.OPEN
    entry: Leg = Leg()
    exit: Leg = Leg()
    opened_at: datetime | None = None  # the earliest entry fill
    last_exit_at: datetime | None = None  # the latest exit fill
    last_exit_source: ReportSource | None = None
    # Of the entry's quantity, what the broker took as fees (a crypto buy's fee is taken in
    # the coin), and what that was worth when posted.
    fee_quantity: Decimal = ZERO
    asset_fees: Decimal = ZERO

    @classmethod
    def new(cls, side: Side, multiplier: Decimal = ONE) -> TradeState:
        """A trade with no fill yet, of a symbol whose unit holds ``multiplier``."""
        return cls(side, entry=Leg(multiplier=multiplier), exit=Leg(multiplier=multiplier))

    @property
    @in_money_context
    def open_quantity(self) -> Decimal:
        return self.entry.quantity - self.fee_quantity - self.exit.quantity

    @property
    @in_money_context
    def cash_fees(self) -> Decimal:
        return self.entry.fees + self.exit.fees

    @property
    @in_money_context
    def fees(self) -> Decimal:
        return self.cash_fees + self.asset_fees

    @property
    def exit_side(self) -> Side:
        return Side.SELL if self.side is Side.BUY else Side.BUY


@in_money_context
def add_entry_fill(state: TradeState, quantity: Decimal, price: Decimal, fee: Decimal,
                   filled_at: datetime, requested_price: Decimal | None) -> TradeState:  # fmt: skip
    opened_at = min(filter(None, (state.opened_at, filled_at)))
    entry = state.entry.add(state.side, quantity, price, fee, requested_price)
    return dataclasses.replace(state, entry=entry, opened_at=opened_at)


@in_money_context
def add_exit_fill(
    state: TradeState, quantity: Decimal, price: Decimal, fee: Decimal, filled_at: datetime,
    requested_price: Decimal | None, source: ReportSource,
) -> tuple[TradeState, Decimal]:  # fmt: skip
    """The trade with the exit fill counted, up to its open quantity, and the excess (which
    only the position sees: a trade never exits more than it entered)."""
    counted = min(quantity, max(state.open_quantity, ZERO))
    excess = quantity - counted
    if not counted:
        return state, excess
    exit_leg = state.exit.add(state.exit_side, counted, price, fee, requested_price)
    last = max(filter(None, (state.last_exit_at, filled_at)))
    return dataclasses.replace(state, exit=exit_leg, last_exit_at=last,
                               last_exit_source=source), excess  # fmt: skip


@in_money_context
def take_asset_fee(state: TradeState, quantity: Decimal, value: Decimal
                   ) -> tuple[TradeState, Decimal]:  # fmt: skip
    """The trade with a fee taken out of its entry's asset, up to its open quantity (its
    value in proportion), and what is left of the fee for other trades."""
    counted = min(quantity, max(state.open_quantity, ZERO))
    if not counted:
        return state, quantity
    share = value if counted == quantity else (value * counted / quantity).quantize(
        NOTIONAL_QUANTUM)  # fmt: skip
    return dataclasses.replace(state, fee_quantity=state.fee_quantity + counted,
                               asset_fees=state.asset_fees + share), quantity - counted  # fmt: skip


class TradeNotFlat(ValueError):
    """An outcome was asked of a trade that still has open quantity."""

    def __init__(self, open_quantity: Decimal) -> None:
        self.open_quantity = open_quantity
        super().__init__(f"the trade still has {open_quantity} open")


@dataclass(frozen=True, slots=True)
class Outcome:
    quantity: Decimal
    entry_average_price: Decimal
    exit_average_price: Decimal
    entry_notional: Decimal
    exit_notional: Decimal
    fees: Decimal
    realized_pnl: Decimal
    entry_slippage: Decimal | None  # per unit, > 0 worse than requested
    exit_slippage: Decimal | None
    slippage_cost: Decimal  # both sides, in money, over the fills with a requested price
    opened_at: datetime
    exited_at: datetime
    holding_s: Decimal
    deciding_source: ReportSource
    closed_at: datetime


@in_money_context
def seconds(delta: timedelta) -> Decimal:
    """A timedelta as exact decimal seconds (``total_seconds`` is a float)."""
    whole = delta.days * 86_400 + delta.seconds
    return canonical(Decimal(whole) + Decimal(delta.microseconds).scaleb(-6))


@in_money_context
def outcome_of(state: TradeState, *, now: datetime) -> Outcome:
    """The closed trade's result from its fills' totals: PnL from notionals, so exact.
    A fee taken in the asset is in ``fees``, but not taken off the PnL again: the exit
    sold that much less, so the notionals hold it already."""
    if state.open_quantity or not state.entry.quantity:
        raise TradeNotFlat(state.open_quantity)
    entry, exit_ = state.entry, state.exit
    assert entry.average_price is not None
    assert exit_.average_price is not None
    assert state.opened_at is not None
    assert state.last_exit_at is not None
    assert state.last_exit_source is not None
    sign = direction(state.side)
    fees = state.fees
    return Outcome(
        quantity=exit_.quantity, entry_average_price=entry.average_price,
        exit_average_price=exit_.average_price, entry_notional=entry.notional,
        exit_notional=exit_.notional, fees=fees,
        realized_pnl=sign * (exit_.notional - entry.notional) - state.cash_fees,
        entry_slippage=entry.slippage, exit_slippage=exit_.slippage,
        slippage_cost=entry.slippage_cost + exit_.slippage_cost,
        opened_at=state.opened_at, exited_at=state.last_exit_at,
        holding_s=seconds(max(state.last_exit_at - state.opened_at, timedelta(0))),
        deciding_source=state.last_exit_source, closed_at=now,
    )  # fmt: skip


# --- lifecycle text ------------------------------------------------------------------------

SEPARATOR = " \u2013 "  # an en dash, as in "Entry filled \u2013 trade OPEN"
_ENDED = {
    OrderStatus.CANCELED: "canceled",
    OrderStatus.EXPIRED: "expired",
    OrderStatus.REJECTED: "rejected",
    OrderStatus.REPLACED: "replaced",
}


@in_money_context
def amount(value: Decimal) -> str:
    """A decimal as people write it: no exponent, no trailing zeros."""
    return format(canonical(value), "f")


def order_lifecycle(intent: Intent | None, status: OrderStatus, quantity: Decimal | None,
                    filled: Decimal, trade_status: TradeStatus | None,
                    notional: Decimal | None = None) -> str:  # fmt: skip
    """What an order means for its trade, e.g. "Exit partially filled, 40 of 100", or of a
    notional order "Entry partially filled, 0.8 of $500" (with an en dash between the
    parts)."""
    what = {Intent.ENTRY: "Entry", Intent.EXIT: "Exit", None: "Order"}[intent]
    ordered = amount(quantity) if quantity is not None else f"${amount(notional or ZERO)}"
    progress = f"{amount(filled)} of {ordered}"
    if status is OrderStatus.PENDING_NEW:
        parts = [f"{what} sent", "not yet acknowledged by the broker"]
    elif status is OrderStatus.NEW:
        parts = [f"{what} working", "no fill yet"]
    elif status is OrderStatus.PARTIALLY_FILLED:
        parts = [f"{what} partially filled", progress]
    elif status is OrderStatus.PENDING_CANCEL:
        parts = [f"{what} cancel requested", f"{progress} filled"]
    elif status is OrderStatus.FILLED:
        parts = [f"{what} filled"]
    elif filled:
        parts = [f"{what} {_ENDED[status]}", f"{progress} filled"]
    else:
        parts = [f"{what} {_ENDED[status]}"]
        if intent is Intent.ENTRY:
            parts.append("no trade")
            trade_status = None
    # A working exit's trade is open by definition; otherwise the trade's state is news.
    if trade_status and (intent is Intent.ENTRY or status.is_terminal):
        parts.append(f"trade {trade_status}")
    return SEPARATOR.join(parts)


def trade_lifecycle(state: TradeState, entry_working: bool, realized_pnl: Decimal | None) -> str:
    """What the trade is now, e.g. "Trade OPEN, 40 of 100 exited" (en dash between parts)."""
    entered, exited = amount(state.entry.quantity), amount(state.exit.quantity)
    if state.status is TradeStatus.CLOSED:
        parts = ["Trade CLOSED", f"{exited} exited"]
        if realized_pnl is not None:
            parts.append(f"realized PnL {amount(realized_pnl)}")
    elif not state.exit.quantity:
        parts = ["Trade OPEN", f"{'long' if state.side is Side.BUY else 'short'} {entered}"]
    elif not state.open_quantity and entry_working:
        parts = ["Trade OPEN", f"flat, its entry still working ({entered} in)"]
    else:
        parts = ["Trade OPEN", f"{exited} of {entered} exited"]
    return SEPARATOR.join(parts)
