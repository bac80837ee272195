"""Order lifecycle changes as the engine reports them to listeners (the trade_updates stream).

The engine calls each listener synchronously, in order, at the engine time of the change;
a record holds the live order, which changes afterwards, so a listener copies what it needs
before it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from brokers.paper.model import Fill, Order


class TradeEvent(StrEnum):
    """Alpaca's trade_updates event names, the subset this exchange produces."""

    NEW = "new"
    PENDING_NEW = "pending_new"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    CALCULATED = "calculated"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    EXPIRED = "expired"
    DONE_FOR_DAY = "done_for_day"
    REJECTED = "rejected"
    PENDING_REPLACE = "pending_replace"
    REPLACED = "replaced"
    ORDER_REPLACE_REJECTED = "order_replace_rejected"
    ORDER_CANCEL_REJECTED = "order_cancel_rejected"


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One change to one order; ``fill`` and ``position_qty`` (the account's signed position
    in the symbol after it) only for partial_fill and fill."""

    event: TradeEvent
    order: Order
    at_us: int
    fill: Fill | None = None
    position_qty: Decimal | None = None


Listener = Callable[[OrderEvent], None]
