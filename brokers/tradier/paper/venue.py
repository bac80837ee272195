"""What Tradier keeps beside the engine: account numbers and the token bound to each, and
per account its orders by Tradier's numeric id with what Tradier says of them (its side
word, duration, tag).

Orders are US equities and their options on the engine's own market (its session: a day
order expires at the close), under the engine account ``tradier:<account number>``. Tags
are not unique at Tradier, so the engine's client order id is Tradier's order id, never
the tag.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import count

from brokers.paper.engine import Engine
from brokers.paper.model import Order
from brokers.tradier.paper.options import option_listing
from core.enums import Side

PREFIX = "tradier:"
FIRST_ID = 1_000_001  # Tradier's order ids are integers


def engine_account(account_number: str) -> str:
    """Tradier accounts live in their own namespace, apart from every other dialect's."""
    return PREFIX + account_number


@dataclass(slots=True, eq=False)
class TradierOrder:
    """An engine order with what Tradier says of it."""

    id: int
    account_number: str
    side: str  # buy, sell, buy_to_cover, sell_short; an option's buy_to_open...
    duration: str  # day, gtc, pre, post
    tag: str | None
    order: Order  # an option's symbol is its OCC symbol
    underlying: str | None = None  # an option's underlying (what Tradier calls its symbol)


@dataclass(slots=True)
class TradierAccount:
    number: str
    orders: list[TradierOrder] = field(default_factory=list)  # arrival order

    def opened_us(self) -> dict[str, int]:
        """When each open position was opened: its first fill since it was last flat."""
        fills = sorted(
            (f for placed in self.orders for f in placed.order.fills), key=lambda f: f.time_us
        )
        held: dict[str, Decimal] = {}
        opened: dict[str, int] = {}
        for fill in fills:
            symbol = fill.order.symbol
            before = held.get(symbol, Decimal(0))
            signed = fill.qty if fill.order.side is Side.BUY else -fill.qty
            held[symbol] = before + signed
            if before == 0:
                opened[symbol] = fill.time_us
        return {s: at for s, at in opened.items() if held[s] != 0}

    def known(self) -> list[TradierOrder]:
        """Its orders in arrival order, less those the venue lost (the forget fault)."""
        return [placed for placed in self.orders if not placed.order.forgotten]


class TokenRefused(Exception):
    """No account answers to this token: Tradier's 401."""


class AccountRefused(Exception):
    """The token is valid but the account number in the path is not its own."""

    def __init__(self, account_number: str) -> None:
        super().__init__(f"account {account_number} is not the token's")
        self.account_number = account_number


class TradierVenue:
    def __init__(self, engine: Engine, tokens: dict[str, str]) -> None:
        self.engine = engine
        self.tokens = dict(tokens)  # account number -> access token; none: open mode
        engine.listers.append(option_listing)
        self.reset()

    def reset(self) -> None:
        """Every account without orders; the configured accounts stay."""
        self.accounts: dict[str, TradierAccount] = {}
        self.by_id: dict[int, TradierOrder] = {}
        self.by_engine_id: dict[str, TradierOrder] = {}
        self._ids = count(FIRST_ID)
        self._opened: dict[str, set[str]] = {}  # open mode: token -> account numbers it opened

    @property
    def open_mode(self) -> bool:
        return not self.tokens

    def authorize(self, token: str | None, account_number: str) -> TradierAccount:
        """The account the token may act for. Open mode: any non-empty token opens any
        account number."""
        if not token:
            raise TokenRefused
        if self.open_mode:
            self._opened.setdefault(token, set()).add(account_number)
            return self.account(account_number)
        owner = next(
            (n for n, t in self.tokens.items() if hmac.compare_digest(t.encode(), token.encode())),
            None,
        )
        if owner is None:
            raise TokenRefused
        if owner != account_number:
            raise AccountRefused(account_number)
        return self.account(account_number)

    def known_token(self, token: str | None) -> bool:
        """Whether the token opens any account (the rate limits count per token)."""
        if not token:
            return False
        return self.open_mode or any(
            hmac.compare_digest(t.encode(), token.encode()) for t in self.tokens.values()
        )

    def accounts_of(self, token: str) -> frozenset[str]:
        """The account numbers the token acts for: its own, or in open mode those it opened."""
        if self.open_mode:
            return frozenset(self._opened.get(token, ()))
        return frozenset(
            n for n, t in self.tokens.items() if hmac.compare_digest(t.encode(), token.encode())
        )

    def account(self, number: str) -> TradierAccount:
        found = self.accounts.get(number)
        if found is None:
            found = self.accounts[number] = TradierAccount(number)
        return found

    def next_id(self) -> int:
        return next(self._ids)

    def keep(self, placed: TradierOrder) -> None:
        self.by_id[placed.id] = placed
        self.by_engine_id[placed.order.id] = placed
        self.account(placed.account_number).orders.append(placed)

    def find(self, account: TradierAccount, order_id: str) -> TradierOrder | None:
        """The account's order with this id, unless lost (the forget fault) or another's."""
        if not order_id.isdigit():
            return None
        placed = self.by_id.get(int(order_id))
        if placed is None or placed.order.forgotten or placed.account_number != account.number:
            return None
        return placed
