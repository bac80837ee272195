"""What Binance keeps beside the engine: spot wallets per API key, per-symbol order and trade
ids, client order ids, trades with their commission.

The engine runs the orders (under the account ``binance:<api key>``); this venue hears of
every fill through the engine's listeners and moves the wallets. ``locked`` is never kept:
it is what the account's open orders still hold, worked out when asked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from itertools import count

from brokers.binance.paper.symbols import PAIRS, Pair
from brokers.paper.engine import Engine
from brokers.paper.events import OrderEvent
from brokers.paper.model import Fill, Order, PaperStatus
from core.enums import Side

BPS = Decimal(10_000)
EIGHT = Decimal("1e-8")
BNB = "BNB"
BNB_DISCOUNT = Decimal("0.75")  # commissions paid in BNB are a quarter cheaper
PREFIX = "binance:"
DEFAULT_BALANCES = (("USDT", Decimal(100_000)), ("BNB", Decimal(10)))


def engine_account(api_key: str) -> str:
    """Binance keys live in their own namespace, so they never meet an Alpaca key id."""
    return PREFIX + api_key


@dataclass(slots=True)
class Trade:
    id: int
    order: BinanceOrder
    fill: Fill
    commission: Decimal
    commission_asset: str

    @property
    def quote_qty(self) -> Decimal:
        return self.fill.qty * self.fill.price


@dataclass(slots=True, eq=False)
class BinanceOrder:
    """An engine order with what Binance says of it."""

    order_id: int
    client_order_id: str
    pair: Pair
    order: Order
    type: str  # Binance's: LIMIT_MAKER is a GTC limit to the engine
    time_in_force: str | None
    quote_order_qty: Decimal | None
    created_ms: int
    maker: bool = False  # it rested in the book before trading (a limit not marketable)
    canceled_by_client: bool = False
    cancel_id: str | None = None  # the cancel request's own client id (its newClientOrderId)
    trades: list[Trade] = field(default_factory=list)

    @property
    def cumulative_quote(self) -> Decimal:
        return sum((trade.quote_qty for trade in self.trades), Decimal(0))

    @property
    def working_ms(self) -> int:
        """When it went on the book: -1 for a stop order still waiting for its stop."""
        return -1 if self.order.resting == "stop" else self.created_ms

    @property
    def status(self) -> str:
        """The engine's lifecycle in Binance's words: an IOC/FOK remainder expires."""
        status = self.order.status
        if status is PaperStatus.CANCELED:
            return "CANCELED" if self.canceled_by_client else "EXPIRED"
        if status in (PaperStatus.FILLED, PaperStatus.CALCULATED):
            return "FILLED"
        if status in (PaperStatus.EXPIRED, PaperStatus.REJECTED):
            return status.value.upper()
        return "PARTIALLY_FILLED" if self.order.filled_qty > 0 else "NEW"


@dataclass(slots=True)
class BinanceAccount:
    api_key: str
    wallet: dict[str, Decimal]
    open: dict[int, BinanceOrder] = field(default_factory=dict)  # by engine order seq
    by_client_id: dict[tuple[str, str], BinanceOrder] = field(default_factory=dict)
    orders: dict[str, list[BinanceOrder]] = field(default_factory=dict)  # symbol -> by id
    trades: dict[str, list[Trade]] = field(default_factory=dict)  # symbol -> by id
    update_ms: int = 0

    def locked(self, price_of: Callable[[Pair], Decimal]) -> dict[str, Decimal]:
        """What open orders hold: a buy its quote at its limit (a market buy at what its
        quoteOrderQty has left, else at the price now), a sell its base."""
        held: dict[str, Decimal] = defaultdict(Decimal)
        for placed in self.open.values():
            if placed.order.forgotten:
                continue  # the venue lost it (the forget fault): it holds nothing
            order, pair = placed.order, placed.pair
            if order.side is Side.SELL:
                held[pair.base] += order.leaves_qty
            elif placed.quote_order_qty is not None:
                held[pair.quote] += max(
                    Decimal(0), placed.quote_order_qty - placed.cumulative_quote
                )
            else:
                held[pair.quote] += order.leaves_qty * (order.limit_price or price_of(pair))
        return held

    def known(self, symbol: str) -> list[BinanceOrder]:
        """The symbol's orders by id, less those the venue lost (the forget fault)."""
        return [placed for placed in self.orders.get(symbol, []) if not placed.order.forgotten]

    def free(self, asset: str, price_of: Callable[[Pair], Decimal]) -> Decimal:
        return self.wallet.get(asset, Decimal(0)) - self.locked(price_of).get(asset, Decimal(0))


class BinanceVenue:
    def __init__(
        self,
        engine: Engine,
        credentials: dict[str, str],
        balances: tuple[tuple[str, Decimal], ...] = DEFAULT_BALANCES,
        fee_bps: Callable[[], Decimal] = lambda: Decimal(10),
        bnb_burn: Callable[[], bool] = lambda: False,
    ) -> None:
        self.engine = engine
        self.credentials = credentials  # api key -> secret; empty: open mode
        self.balances = balances
        self.fee_bps = fee_bps
        self.bnb_burn = bnb_burn
        for pair in PAIRS.values():
            engine.listings[pair.engine_symbol] = pair.listing
        engine.listeners.append(self.on_event)
        self._pending: Callable[[Order], BinanceOrder] | None = None
        self.reset()

    def reset(self) -> None:
        self.accounts: dict[str, BinanceAccount] = {}
        self.by_engine_id: dict[str, BinanceOrder] = {}
        self._order_ids: dict[str, count[int]] = defaultdict(lambda: count(1))
        self._trade_ids: dict[str, count[int]] = defaultdict(lambda: count(1))
        for key in self.credentials:
            self.account(key)

    def account(self, api_key: str) -> BinanceAccount:
        found = self.accounts.get(api_key)
        if found is None:
            found = self.accounts[api_key] = BinanceAccount(api_key, dict(self.balances))
        return found

    def price_of(self, pair: Pair) -> Decimal:
        return self.engine.price_of(pair.engine_symbol)

    def _bnb_fee(self, wallet: dict[str, Decimal], pair: Pair, value: Decimal) -> Decimal | None:
        """A commission worth ``value`` (in the pair's quote) paid in BNB, as Binance does
        with BNB burn on: a quarter off, when BNB is priced in that quote and enough of it
        is held; None: paid in the asset received."""
        bnb = PAIRS.get(f"{BNB}{pair.quote}")
        if not self.bnb_burn() or bnb is None:
            return None
        return _bnb_fee_of(wallet, self.price_of(bnb), value)

    def secret_of(self, api_key: str) -> str | None:
        """The key's secret; in open mode every key signs with itself as the secret."""
        if not self.credentials:
            return api_key or None
        return self.credentials.get(api_key)

    def next_order_id(self, symbol: str) -> int:
        return next(self._order_ids[symbol])

    def register(self, account: BinanceAccount, placed: BinanceOrder) -> None:
        self.by_engine_id[placed.order.id] = placed
        account.orders.setdefault(placed.pair.symbol, []).append(placed)
        account.by_client_id[(placed.pair.symbol, placed.client_order_id)] = placed
        if placed.order.is_open:
            account.open[placed.order.seq] = placed
        account.update_ms = placed.created_ms

    def place(
        self, build: Callable[[Order], BinanceOrder], submit: Callable[[], Order]
    ) -> BinanceOrder:
        """Submit to the engine and know the order before its first event: an IOC or a
        market order may fill inside ``submit``."""
        self._pending = build
        try:
            order = submit()
        finally:
            self._pending = None
        placed = self.by_engine_id.get(order.id)
        if placed is None:
            placed = build(order)
            self.register(self._owner(order), placed)
        return placed

    def _owner(self, order: Order) -> BinanceAccount:
        return self.account(order.account.removeprefix(PREFIX))

    def on_event(self, event: OrderEvent) -> None:
        """A fill moves the wallet; an end frees the order's lock."""
        placed = self.by_engine_id.get(event.order.id)
        if placed is None and self._pending is not None:
            placed, self._pending = self._pending(event.order), None
            self.register(self._owner(event.order), placed)
        if placed is None:
            return
        account = self._owner(event.order)
        if event.fill is not None:
            self._trade(account, placed, event.fill)
        if not event.order.is_open:
            account.open.pop(event.order.seq, None)

    def _trade(self, account: BinanceAccount, placed: BinanceOrder, fill: Fill) -> None:
        pair, rate = placed.pair, self.fee_bps() / BPS
        wallet = account.wallet
        quote_qty = fill.qty * fill.price
        in_bnb = self._bnb_fee(wallet, pair, quote_qty * rate)
        if in_bnb is not None:  # the whole trade moves, the commission is BNB's
            sign = 1 if fill.order.side is Side.BUY else -1
            wallet[pair.base] = wallet.get(pair.base, Decimal(0)) + sign * fill.qty
            wallet[pair.quote] = wallet.get(pair.quote, Decimal(0)) - sign * quote_qty
            wallet[BNB] -= in_bnb
            fee, asset = in_bnb, BNB
        elif fill.order.side is Side.BUY:
            fee = (fill.qty * rate).quantize(EIGHT, ROUND_HALF_UP)
            wallet[pair.base] = wallet.get(pair.base, Decimal(0)) + fill.qty - fee
            wallet[pair.quote] = wallet.get(pair.quote, Decimal(0)) - quote_qty
            asset = pair.base
        else:
            fee = (quote_qty * rate).quantize(EIGHT, ROUND_HALF_UP)
            wallet[pair.base] = wallet.get(pair.base, Decimal(0)) - fill.qty
            wallet[pair.quote] = wallet.get(pair.quote, Decimal(0)) + quote_qty - fee
            asset = pair.quote
        trade = Trade(next(self._trade_ids[pair.symbol]), placed, fill, fee, asset)
        placed.trades.append(trade)
        account.trades.setdefault(pair.symbol, []).append(trade)
        account.update_ms = fill.time_us // 1000


def _bnb_fee_of(wallet: dict[str, Decimal], bnb_price: Decimal, value: Decimal) -> Decimal | None:
    fee = (value * BNB_DISCOUNT / bnb_price).quantize(EIGHT, ROUND_HALF_UP)
    return fee if fee <= wallet.get(BNB, Decimal(0)) else None


def quote_to_qty(quote_qty: Decimal, price: Decimal, step: Decimal) -> Decimal:
    """What a quoteOrderQty buys or sells at ``price``, down to the lot step."""
    return (quote_qty / price / step).to_integral_value(ROUND_DOWN) * step
