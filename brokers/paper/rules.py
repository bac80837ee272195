"""A venue's own rules, which the engine applies to its symbols' orders at a few hooks:
admitting an order, replacing one, a fill's fee and settlement, and what a symbol is.

The engine knows orders, books, fills, prices, the clock and accounts; what a venue adds
(Alpaca's fractional and crypto rules, its order-class checks, its PATCH) is a
``VenueRules`` its dialect supplies. ``NeutralRules`` is what a symbol a dialect lists gets
unless it brings its own: orders taken as given, no fee, a plain ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from brokers.paper.accounts import Account
from brokers.paper.ledger import Ledger
from brokers.paper.model import Fee, Fill, Order, OrderChanges, OrderRequest

PriceOf = Callable[[str], Decimal]


@dataclass(frozen=True, slots=True)
class Market:
    """What of the engine a fee may draw on: prices, and its seeded random delays and ids."""

    price_of: PriceOf
    delay_us: Callable[[tuple[int, int]], int]  # a random delay in µs within bounds in ms
    new_uuid: Callable[[], str]


@dataclass(frozen=True, slots=True)
class FillDraft:
    """A fill about to be made: ``qty`` of ``order`` at ``price``, at ``at_us``."""

    order: Order
    fill_id: str
    qty: Decimal
    price: Decimal
    at_us: int


class NotReplaceableHereError(Exception):
    """The venue's orders are not replaced through the engine (its dialect does that)."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} is not replaceable on this venue")
        self.order_id = order_id


class VenueRules(Protocol):
    """What the engine asks a venue about its symbols and their orders."""

    def admit(
        self, request: OrderRequest, owner: Account, price_of: PriceOf, *, check_funds: bool
    ) -> OrderRequest:
        """The request as the venue takes it (renamed, sized), else the venue's refusal;
        ``check_funds`` is off for an order placed earlier, as seeded."""
        ...

    def is_crypto(self, symbol: str) -> bool:
        """A coin pair: trades around the clock and its balances are the rules' (``settle``),
        so the engine's cash buying power check does not apply."""
        ...

    def reserves(self, symbol: str) -> bool:
        """Whether the symbol's open orders hold the account's buying power."""
        ...

    def book_symbol(self, symbol: str) -> str:
        """The book a symbol names (one symbol may have several spellings)."""
        ...

    def position_of(self, order: Order) -> str:
        """The position a fill of ``order`` changes, as its events report it."""
        ...

    def replacement(
        self, old: Order, changes: OrderChanges, owner: Account, price_of: PriceOf
    ) -> OrderRequest:
        """The order to take ``old``'s place, if the venue allows the change; else refused."""
        ...

    def fee(self, draft: FillDraft, market: Market) -> Fee | None:
        """The fee the venue takes on a fill (None: none), posted at its ``posted_us``."""
        ...

    def settle(self, ledger: Ledger, fill: Fill, price_of: PriceOf) -> None:
        """Apply a fill to the account's balances, net of its fee."""
        ...


class NeutralRules:
    """A listed symbol's defaults: taken as given, no fee, cash and a position per symbol;
    its dialect checks its venue's own rules before it submits."""

    def admit(
        self, request: OrderRequest, owner: Account, price_of: PriceOf, *, check_funds: bool
    ) -> OrderRequest:
        return request

    def is_crypto(self, symbol: str) -> bool:
        return False

    def reserves(self, symbol: str) -> bool:
        return True

    def book_symbol(self, symbol: str) -> str:
        return symbol

    def position_of(self, order: Order) -> str:
        return order.symbol

    def replacement(
        self, old: Order, changes: OrderChanges, owner: Account, price_of: PriceOf
    ) -> OrderRequest:
        raise NotReplaceableHereError(old.id)

    def fee(self, draft: FillDraft, market: Market) -> Fee | None:
        return None

    def settle(self, ledger: Ledger, fill: Fill, price_of: PriceOf) -> None:
        ledger.record(fill.order.symbol, fill.order.side, fill.qty, fill.price)


NEUTRAL = NeutralRules()
