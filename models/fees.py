"""Fees a broker posts apart from the fills (Alpaca's crypto ``CFEE``): each recorded once,
moving the position and the trades it was taken from in the same transaction.

A fee taken in a coin (a crypto buy's fee is taken in the coin bought) is, for the position,
that much of the coin given up at the fee's price with a fee of the same worth: the
quantity falls by it, and realized PnL by what it cost (``apply_to_position`` of a sell).
For trades, it comes out of the open long trades of that symbol, oldest first, up to each
one's open quantity; a trade the fee leaves flat closes. A fee taken in cash names no
symbol, so it is kept per account only.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.enums import Side
from core.reports import FeeReport, FillReport
from models.base import Base
from models.ledger import Trade, _hold_trade_row, _locked, close_if_done, move_position
from models.state_machine import NOTIONAL_QUANTUM
from models.trades import TradeStatus, amount, in_money_context, notional, take_asset_fee
from models.types import Money, UTCDateTime

ZERO = Decimal(0)


class FeePosting(Base):
    """One fee as the broker posted it; the unique key makes it exactly once."""

    __tablename__ = "fee_postings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    broker_fee_id: Mapped[str] = mapped_column(String(128))
    symbol: Mapped[str | None] = mapped_column(String(32))  # None: taken in cash
    quantity: Mapped[Decimal | None] = mapped_column(Money())  # of the symbol's asset
    price: Mapped[Decimal | None] = mapped_column(Money())
    amount: Mapped[Decimal] = mapped_column(Money())  # its worth in the account currency
    currency: Mapped[str] = mapped_column(String(8))
    description: Mapped[str] = mapped_column(String(128), default="")
    # The trades it came out of, as JSON [[trade id, quantity], ...]; what is left of the
    # quantity moved the position only.
    trades: Mapped[str] = mapped_column(String(1024), default="[]")
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("account_id", "broker_fee_id"),
        Index("ix_fee_postings_account_posted", "account_id", "posted_at"),
    )


def recorded_ids(session: Session, account_id: str, since: datetime) -> set[str]:
    """The ids of the account's fees posted since ``since``: those a listing repeats."""
    rows = session.scalars(
        select(FeePosting.broker_fee_id).where(
            FeePosting.account_id == account_id, FeePosting.posted_at >= since
        )
    )
    return set(rows)


@in_money_context
def fees_apart(fill: FillReport) -> list[FeeReport]:
    """A fill's fees that are not money in its quote currency, as postings of their own (one
    id each, derived from the fill's): a quantity of the asset traded, or a third asset."""
    found = []
    if fill.fee_quantity:
        found.append(FeeReport(
            broker_fee_id=f"{fill.broker_fill_id}:fee", symbol=fill.symbol,
            quantity=fill.fee_quantity, price=fill.price,
            amount=notional(fill.fee_quantity, fill.price), currency="",
            posted_at=fill.filled_at, description="taken from the fill's quantity",
        ))  # fmt: skip
    if fill.fee_asset and fill.fee_asset_amount:
        found.append(FeeReport(
            broker_fee_id=f"{fill.broker_fill_id}:fee:{fill.fee_asset}", symbol=None,
            quantity=None, price=None, amount=fill.fee_asset_amount, currency=fill.fee_asset,
            posted_at=fill.filled_at, description=f"on fill {fill.broker_fill_id}",
        ))  # fmt: skip
    return found


@in_money_context
def record_fee(
    session: Session, account_id: str, fee: FeeReport, *, now: datetime,
    trade_id: str | None = None,
) -> FeePosting:  # fmt: skip
    """Write the fee and move what it was taken from (``trade_id``'s trade first, then the
    oldest open long trades); the caller commits, and a duplicate (recorded meanwhile)
    fails the commit on the unique key."""
    posting = FeePosting(
        account_id=account_id, broker_fee_id=fee.broker_fee_id, symbol=fee.symbol,
        quantity=fee.quantity, price=fee.price, amount=fee.amount, currency=fee.currency,
        description=fee.description[:128], posted_at=fee.posted_at, recorded_at=now,
    )  # fmt: skip
    session.add(posting)
    if fee.symbol is None or fee.quantity is None or fee.price is None:
        return posting
    value = notional(fee.quantity, fee.price)
    session.flush()  # a trade the fee's own fill opened is seen by the query below
    with session.no_autoflush:  # the locks in the order a fill takes them: position, trades
        move_position(session, account_id, fee.symbol,
                      [(Side.SELL, fee.quantity, fee.price, value)], now)  # fmt: skip
        taken = _take_from_trades(session, account_id, fee.symbol, fee.quantity, value, now,
                                  trade_id)  # fmt: skip
    posting.trades = json.dumps([[trade_id, amount(q)] for trade_id, q in taken])
    return posting


def _take_from_trades(
    session: Session, account_id: str, symbol: str, quantity: Decimal, value: Decimal,
    now: datetime, first: str | None = None,
) -> list[tuple[str, Decimal]]:  # fmt: skip
    """Out of the open long trades of the symbol, ``first`` then the oldest; each left flat
    may close."""
    trade_ids = list(session.scalars(
        select(Trade.id).where(
            Trade.account_id == account_id, Trade.symbol == symbol, Trade.side == Side.BUY,
            Trade.status == TradeStatus.OPEN,
        ).order_by(Trade.opened_at, Trade.id)
    ).all())  # fmt: skip
    if first in trade_ids:
        trade_ids.remove(first)
        trade_ids.insert(0, first)
    taken: list[tuple[str, Decimal]] = []
    left = quantity
    for trade_id in trade_ids:
        if not left:
            break
        _hold_trade_row(session, account_id, trade_id)
        trade = _locked(session, Trade, (account_id, trade_id))
        if trade is None or trade.status is not TradeStatus.OPEN:
            continue
        share = value if left == quantity else (value * left / quantity).quantize(NOTIONAL_QUANTUM)
        state, rest = take_asset_fee(trade.state(), left, share)
        if rest == left:
            continue
        trade.store(state, now)
        taken.append((trade_id, left - rest))
        left = rest
        if not state.open_quantity:
            close_if_done(session, trade, None, now)
    return taken
