"""What Coinbase keeps beside the engine: the registered keys (by name, with their public
keys), each key's balances per currency, its orders by id and client order id, and its
fills with the commission Coinbase takes in the quote currency.

The engine runs the orders (under the account ``coinbase:<key name>``); this venue hears of
every fill through the engine's listeners and moves the balances. ``hold`` is never kept:
it is what the key's open orders still hold, worked out when asked.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from itertools import count

from brokers.coinbase.paper.auth import PublicKey
from brokers.coinbase.paper.products import PRODUCTS, Product
from brokers.paper.engine import Engine
from brokers.paper.events import OrderEvent
from brokers.paper.model import Fill, Order, PaperStatus
from core.enums import Side

BPS = Decimal(10_000)
COMMISSION_QUANTUM = Decimal("1e-10")
PREFIX = "coinbase:"
DEFAULT_BALANCES = (("USD", Decimal(100_000)),)
_UNACKNOWLEDGED = frozenset(
    {
        PaperStatus.ACCEPTED,
        PaperStatus.PENDING_NEW,
        PaperStatus.ACCEPTED_FOR_BIDDING,
        PaperStatus.PENDING_REVIEW,
    }
)


def engine_account(key_name: str) -> str:
    """Coinbase keys live in their own namespace, apart from Alpaca and Binance keys."""
    return PREFIX + key_name


@dataclass(frozen=True, slots=True)
class Fees:
    """Commission per fill in basis points of its value: a maker's rested in the book first."""

    maker_bps: Decimal
    taker_bps: Decimal

    def rate(self, maker: bool) -> Decimal:
        return (self.maker_bps if maker else self.taker_bps) / BPS


@dataclass(slots=True)
class CoinbaseFill:
    seq: int  # the venue's arrival number: the fills listing's order and cursor
    order: CoinbaseOrder
    fill: Fill
    commission: Decimal
    maker: bool

    @property
    def entry_id(self) -> str:
        """Coinbase's unique key per fill: 64 hex digits."""
        return hashlib.sha256(f"entry:{self.fill.id}".encode()).hexdigest()

    @property
    def trade_id(self) -> str:
        return self.fill.id.rpartition("::")[2]

    @property
    def value(self) -> Decimal:
        return self.fill.qty * self.fill.price


@dataclass(slots=True, eq=False)
class CoinbaseOrder:
    """An engine order with what Coinbase says of it."""

    client_order_id: str
    product: Product
    order: Order
    config_key: str  # the order_configuration key it was placed with
    config: dict[str, object]  # that key's body, echoed as sent
    time_in_force: str  # Coinbase's name (GOOD_UNTIL_CANCELLED ...)
    quote_size: Decimal | None  # a market order sized in quote
    maker: bool  # rested in the book before trading (a limit not marketable)
    end_us: int | None = None  # a GTD order's end_time
    canceled_by_client: bool = False
    fills: list[CoinbaseFill] = field(default_factory=list)

    @property
    def order_id(self) -> str:
        return self.order.id

    @property
    def filled_value(self) -> Decimal:
        return sum((f.value for f in self.fills), Decimal(0))

    @property
    def total_fees(self) -> Decimal:
        return sum((f.commission for f in self.fills), Decimal(0))

    @property
    def status(self) -> str:
        """The engine's lifecycle in Coinbase's words: no partial status (OPEN with a
        filled size); an IOC, FOK or GTD end is EXPIRED [U], a cancel asked for CANCELLED."""
        status = self.order.status
        if status in (PaperStatus.FILLED, PaperStatus.CALCULATED):
            return "FILLED"
        if status is PaperStatus.CANCELED:
            return "CANCELLED" if self.canceled_by_client else "EXPIRED"
        if status is PaperStatus.EXPIRED:
            return "EXPIRED"
        if status is PaperStatus.REJECTED:
            return "FAILED"
        if status in _UNACKNOWLEDGED:
            return "PENDING"
        return "OPEN"

    def holds(self, price: Decimal, taker_rate: Decimal) -> tuple[str, Decimal]:
        """The currency this open order holds and how much: a sell its base left, a buy
        what its quote size has left, else its size left at its limit (or the market) with
        the taker commission on top."""
        order = self.order
        if order.side is Side.SELL:
            return self.product.base, order.leaves_qty
        if self.quote_size is not None:
            return self.product.quote, max(
                Decimal(0), self.quote_size - self.filled_value - self.total_fees
            )
        value = order.leaves_qty * (order.limit_price or price)
        return self.product.quote, value * (1 + taker_rate)


@dataclass(slots=True)
class CoinbaseAccount:
    key_name: str
    starting: tuple[tuple[str, Decimal], ...]
    wallet: dict[str, Decimal] = field(default_factory=dict)
    orders: list[CoinbaseOrder] = field(default_factory=list)  # arrival order
    by_client_id: dict[str, CoinbaseOrder] = field(default_factory=dict)
    open: dict[str, CoinbaseOrder] = field(default_factory=dict)  # by order id
    fills: list[CoinbaseFill] = field(default_factory=list)  # time order

    def __post_init__(self) -> None:
        self.wallet = dict(self.starting)

    def hold(
        self, price_of: Callable[[Product], Decimal], taker_rate: Decimal
    ) -> dict[str, Decimal]:
        held: dict[str, Decimal] = defaultdict(Decimal)
        for placed in self.open.values():
            if not placed.order.forgotten:  # the venue lost it (the forget fault)
                currency, amount = placed.holds(price_of(placed.product), taker_rate)
                held[currency] += amount
        return held

    def known(self) -> list[CoinbaseOrder]:
        """Its orders in arrival order, less those the venue lost (the forget fault)."""
        return [placed for placed in self.orders if not placed.order.forgotten]


class CoinbaseVenue:
    def __init__(
        self,
        engine: Engine,
        keys: dict[str, PublicKey],
        balances: tuple[tuple[str, Decimal], ...] = DEFAULT_BALANCES,
        fees: Callable[[], Fees] = lambda: Fees(Decimal(40), Decimal(60)),
    ) -> None:
        self.engine = engine
        self.keys = dict(keys)  # key name -> public key; more are registered at run time
        self.balances = balances
        self.fees = fees
        self._starting: dict[str, tuple[tuple[str, Decimal], ...]] = {}
        for product in PRODUCTS.values():
            engine.listings[product.engine_symbol] = product.listing
        engine.listeners.append(self.on_event)
        self._pending: Callable[[Order], CoinbaseOrder] | None = None
        self.reset()

    def reset(self) -> None:
        """Every key back to its starting balances, with no orders or fills; keys stay."""
        self.accounts: dict[str, CoinbaseAccount] = {}
        self.by_order_id: dict[str, CoinbaseOrder] = {}
        self._fill_seq = count()
        for name in self.keys:
            self.account(name)

    def register(
        self, name: str, key: PublicKey, balances: tuple[tuple[str, Decimal], ...] | None = None
    ) -> CoinbaseAccount:
        """A new key starts with ``balances`` (default: the venue's); a known one keeps its
        account and only its public key changes (a rotated key)."""
        self.keys[name] = key
        if name not in self.accounts:
            self._starting[name] = self.balances if balances is None else balances
        return self.account(name)

    def account(self, name: str) -> CoinbaseAccount:
        found = self.accounts.get(name)
        if found is None:
            starting = self._starting.get(name, self.balances)
            found = self.accounts[name] = CoinbaseAccount(name, starting)
        return found

    def price_of(self, product: Product) -> Decimal:
        return self.engine.price_of(product.engine_symbol)

    def hold(self, account: CoinbaseAccount) -> dict[str, Decimal]:
        return account.hold(self.price_of, self.fees().rate(maker=False))

    def hold_of(self, placed: CoinbaseOrder) -> Decimal:
        """What one order holds now (its ``outstanding_hold_amount``): nothing once ended."""
        if not placed.order.is_open:
            return Decimal(0)
        return placed.holds(self.price_of(placed.product), self.fees().rate(maker=False))[1]

    def available(self, account: CoinbaseAccount, currency: str) -> Decimal:
        held = self.hold(account).get(currency, Decimal(0))
        return account.wallet.get(currency, Decimal(0)) - held

    def place(
        self, build: Callable[[Order], CoinbaseOrder], submit: Callable[[], Order]
    ) -> CoinbaseOrder:
        """Submit to the engine and know the order before its first event: an IOC or FOK
        order may fill inside ``submit``."""
        self._pending = build
        try:
            order = submit()
        finally:
            self._pending = None
        placed = self.by_order_id.get(order.id)
        if placed is None:
            placed = build(order)
            self._keep(placed)
        return placed

    def _keep(self, placed: CoinbaseOrder) -> None:
        account = self._owner(placed.order)
        self.by_order_id[placed.order_id] = placed
        account.orders.append(placed)
        account.by_client_id[placed.client_order_id] = placed
        if placed.order.is_open:
            account.open[placed.order_id] = placed

    def _owner(self, order: Order) -> CoinbaseAccount:
        return self.account(order.account.removeprefix(PREFIX))

    def on_event(self, event: OrderEvent) -> None:
        """A fill moves the balances; an end frees what the order held."""
        placed = self.by_order_id.get(event.order.id)
        if placed is None and self._pending is not None:
            placed, self._pending = self._pending(event.order), None
            self._keep(placed)
        if placed is None:
            return
        account = self._owner(event.order)
        if event.fill is not None:
            self._fill(account, placed, event.fill)
        if not event.order.is_open:
            account.open.pop(placed.order_id, None)

    def _fill(self, account: CoinbaseAccount, placed: CoinbaseOrder, fill: Fill) -> None:
        """Coinbase takes its commission in the quote currency: a buy pays it on top, a
        sale receives its value less it."""
        product, wallet = placed.product, account.wallet
        value = fill.qty * fill.price
        commission = (value * self.fees().rate(placed.maker)).quantize(
            COMMISSION_QUANTUM, ROUND_HALF_UP
        )
        sign = 1 if fill.order.side is Side.BUY else -1
        wallet[product.base] = wallet.get(product.base, Decimal(0)) + sign * fill.qty
        wallet[product.quote] = wallet.get(product.quote, Decimal(0)) - sign * value - commission
        record = CoinbaseFill(next(self._fill_seq), placed, fill, commission, placed.maker)
        placed.fills.append(record)
        account.fills.append(record)

    def expire_due(self, now_us: int) -> None:
        """GTD orders whose end_time has come end EXPIRED (when the venue is next asked)."""
        for account in self.accounts.values():
            for placed in list(account.open.values()):
                if placed.end_us is not None and placed.end_us <= now_us:
                    self.engine.cancel_at_once(placed.order_id)
