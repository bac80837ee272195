"""Notional orders: dollars instead of a quantity, filled in parts whose quantities the
price of the moment decides.

Pure functions; the engine calls them at a few hooks (scheduling the fills, a fill, a forced
fill, the buying power check) and keeps the state. Which notional orders a venue takes is
its rules' (Alpaca's: ``brokers.alpaca.paper.notional``):

- The order shows its ``notional`` and a ``qty`` sized at the price when it was taken; the
  fills decide the real quantity (``filled_qty``).
- Quantities are bought to 9 decimals, rounded down, so what the fills spend never exceeds
  the notional; the order is filled when the dollars left buy nothing more in its last part.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

from brokers.paper.model import CENT, QTY_QUANTUM, Order, OrderRequest
from core.enums import Side

if TYPE_CHECKING:
    from brokers.paper.accounts import Account

# A notional order's last scheduled part: whatever its dollars still buy.
REST = Decimal("Infinity")


def shares(dollars: Decimal, price: Decimal) -> Decimal:
    """What ``dollars`` buy at ``price``, to 9 decimals, rounded down."""
    return (dollars / price).quantize(QTY_QUANTUM, rounding=ROUND_DOWN)


def dollars_left(order: Order) -> Decimal:
    assert order.notional is not None
    return order.notional - order.filled_notional


def parts(cents: list[Decimal]) -> list[Decimal]:
    """The dollar parts of the fills to schedule, from parts counted in cents; the last is
    ``REST`` (rounding down leaves a little over, which it spends)."""
    return [*(part * CENT for part in cents[:-1]), REST]


def whole_cents(order: Order) -> Decimal:
    """The dollars left in whole cents: what the fills are split into."""
    return max(Decimal(1), (dollars_left(order) / CENT).to_integral_value(rounding=ROUND_DOWN))


def resize(order: Order, price: Decimal, owner: Account) -> None:
    """The order's quantity becomes what it filled plus what its dollars left buy at
    ``price``; what it holds of the buying power follows."""
    new_qty = order.filled_qty + shares(dollars_left(order), price)
    if order.reserving and order.id in owner.open:
        owner.reserve(order, new_qty - order.qty)
    order.qty = new_qty


def part_qty(order: Order, dollars: Decimal, price: Decimal, owner: Account) -> Decimal:
    """The quantity one scheduled part of a notional order fills at ``price`` (0: none)."""
    resize(order, price, owner)
    if dollars == REST:
        return order.leaves_qty
    return min(shares(dollars, price), order.leaves_qty)


def holds(request: OrderRequest) -> Decimal | None:
    """The buying power a notional buy holds: its dollars; None for any other order."""
    if request.notional is None or request.side is not Side.BUY:
        return None
    return request.notional
