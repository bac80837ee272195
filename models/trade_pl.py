"""A closed trade's realized P&L against the broker's own trades (OANDA's), I/O-free.

A broker that keeps trades opens one per fill (its id is the fill's) and closes them first
in, first out per instrument. Our trade can be held against the broker's trades its entry
fills opened only when our exits, and nothing else, closed exactly those: then the sum of
their realized P&L (before commission and financing, each closing fill's share rounded to
the broker's unit once) is our outcome's P&L before fees. Otherwise another order's fills
were matched with ours, and the two figures measure different things: not comparable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from core.enums import Side
from core.reports import BrokerTradeReport
from models.money import in_money_context
from models.trades import amount, direction


class PnlCheck(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"  # comparable, and the figures differ: an alert
    NOT_COMPARABLE = "not_comparable"  # the broker matched other fills with ours
    STILL_OPEN = "still_open"  # a broker trade of our entry is open: our exits closed others


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """Our closed trade as the comparison needs it: the outcome's figures, and the broker
    fill ids of its entry and exit orders' fills."""

    trade_id: str
    symbol: str
    side: Side  # the entry's
    quantity: Decimal
    entry_notional: Decimal
    exit_notional: Decimal
    entry_fill_ids: tuple[str, ...]
    exit_fill_ids: frozenset[str]

    @property
    @in_money_context
    def gross_pnl(self) -> Decimal:
        """The outcome's realized P&L before fees: from the fills' notionals."""
        return direction(self.side) * (self.exit_notional - self.entry_notional)


@dataclass(frozen=True, slots=True)
class PnlVerdict:
    trade_id: str
    check: PnlCheck
    broker_trade_ids: tuple[str, ...]
    ours: Decimal | None = None  # before fees
    theirs: Decimal | None = None
    reason: str = ""

    def line(self) -> str:
        """One line for the run's report and the alert."""
        named = f"trade {self.trade_id} (broker trades {', '.join(self.broker_trade_ids) or '-'})"
        if self.ours is not None and self.theirs is not None:
            figures = f": ours {amount(self.ours)} before fees, the broker's {amount(self.theirs)}"
            return named + figures
        return f"{named}: {self.reason}"


def _not(trade: ClosedTrade, check: PnlCheck, reason: str) -> PnlVerdict:
    return PnlVerdict(trade.trade_id, check, trade.entry_fill_ids, reason=reason)


@in_money_context
def compare_pnl(
    trade: ClosedTrade, theirs: Mapping[str, BrokerTradeReport],
    unreadable: Collection[str] = (),
) -> PnlVerdict:  # fmt: skip
    """Our closed trade against the broker's trades (by id) its entry fills opened;
    ``unreadable`` names broker trades that could not be read."""
    if not trade.entry_fill_ids:
        return _not(trade, PnlCheck.NOT_COMPARABLE, "no entry fills recorded (archived?)")
    if bad := [i for i in trade.entry_fill_ids if i in unreadable]:
        return _not(trade, PnlCheck.NOT_COMPARABLE, f"broker trade {', '.join(bad)} unreadable")
    if missing := [i for i in trade.entry_fill_ids if i not in theirs]:
        return _not(trade, PnlCheck.NOT_COMPARABLE,
                    f"entry fill {', '.join(missing)} opened no broker trade: it closed or "
                    "reduced earlier trades")  # fmt: skip
    found = [theirs[i] for i in trade.entry_fill_ids]
    if still := [t.trade_id for t in found if not t.closed]:
        return _not(trade, PnlCheck.STILL_OPEN,
                    f"broker trade {', '.join(still)} still open: our exits closed other "
                    "trades")  # fmt: skip
    if foreign := sorted({c for t in found for c in t.closing_fill_ids} - trade.exit_fill_ids):
        reason = f"closed by fill {', '.join(foreign)}, not one of this trade's exits"
        return _not(trade, PnlCheck.NOT_COMPARABLE, reason)
    opened = sum((t.initial_quantity for t in found), Decimal(0))
    if opened != trade.quantity:
        return _not(trade, PnlCheck.NOT_COMPARABLE,
                    f"the broker's trades opened {amount(opened)}, we entered "
                    f"{amount(trade.quantity)}: part of an entry closed other trades")  # fmt: skip
    if not all(t.pnl_in_quote for t in found):
        reason = f"the broker states P&L in another currency than {trade.symbol}'s quote"
        return _not(trade, PnlCheck.NOT_COMPARABLE, reason)
    realized = sum((t.realized_pnl for t in found), Decimal(0))
    shares = sum(len(t.closing_fill_ids) for t in found)
    tolerance = max(t.pnl_quantum for t in found) / 2 * max(shares, 1)
    ours = trade.gross_pnl
    check = PnlCheck.MATCH if abs(ours - realized) <= tolerance else PnlCheck.MISMATCH
    return PnlVerdict(trade.trade_id, check, trade.entry_fill_ids, ours, realized)
