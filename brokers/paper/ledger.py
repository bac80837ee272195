"""Positions and cash, kept from fills the way a broker's books would show them."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from core.enums import Side


@dataclass(slots=True)
class Position:
    qty: Decimal = Decimal(0)  # signed: negative is short
    avg_price: Decimal = Decimal(0)


@dataclass(slots=True)
class Ledger:
    cash: Decimal
    positions: dict[str, Position] = field(default_factory=dict)

    def record(self, symbol: str, side: Side, qty: Decimal, price: Decimal) -> None:
        """Apply one fill: the position (``adjust``) and the cash it costs or brings."""
        self.adjust(symbol, side, qty, price)
        self.cash -= (qty if side is Side.BUY else -qty) * price

    def adjust(self, symbol: str, side: Side, qty: Decimal, price: Decimal) -> None:
        """Move a position by ``qty`` at ``price``, no cash: average in when adding, keep the
        average when reducing, and start afresh at the price when it flips through zero."""
        if qty == 0:
            return
        signed = qty if side is Side.BUY else -qty
        position = self.positions.setdefault(symbol, Position())
        old, new = position.qty, position.qty + signed
        if old == 0 or (old > 0) == (signed > 0):
            position.avg_price = (abs(old) * position.avg_price + qty * price) / abs(new)
        elif abs(signed) > abs(old):
            position.avg_price = price
        position.qty = new
        if new == 0:
            del self.positions[symbol]
