"""One account per API key: its orders, client ids, FILL and CFEE activities, positions and
cash.

The market (prices, books) and the clock belong to the engine; everything a key can see
of its own is here, indexed so listings stay two bisections and a short scan.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from brokers.paper.ledger import Ledger
from brokers.paper.model import Fee, Fill, Order, OrderRequest
from core.enums import Side
from core.instruments import contract_multiplier

OrderKey = tuple[int, int, Order]  # (submitted_us, seq, order): seq is unique, so never ties
PriceOf = Callable[[str], Decimal]
_ZERO = Decimal(0)


@dataclass(slots=True)
class Exposure:
    """What one symbol's open orders may still trade, kept as sums so buying power costs
    nothing per order: limit-priced parts as notional, market-priced parts as quantity."""

    buy_notional: Decimal = _ZERO
    buy_at_market: Decimal = _ZERO
    sell_qty: Decimal = _ZERO
    sell_notional: Decimal = _ZERO
    sell_at_market: Decimal = _ZERO

    def add(self, side: Side, limit: Decimal | None, qty: Decimal) -> None:
        """``qty`` is signed: positive when an order opens, negative as it fills or ends."""
        if side is Side.BUY:
            if limit is None:
                self.buy_at_market += qty
            else:
                self.buy_notional += qty * limit
        elif limit is None:
            self.sell_at_market += qty
        else:
            self.sell_qty += qty
            self.sell_notional += qty * limit

    def increase(
        self, side: Side, limit: Decimal | None, qty: Decimal, long_qty: Decimal, price: Decimal
    ) -> Decimal:
        """How much more would be held with one more order (not added)."""
        if side is Side.BUY:
            return qty * (price if limit is None else limit)
        trial = self.copy()
        trial.add(side, limit, qty)
        return trial.reserved(long_qty, price) - self.reserved(long_qty, price)

    def copy(self) -> Exposure:
        return Exposure(
            self.buy_notional,
            self.buy_at_market,
            self.sell_qty,
            self.sell_notional,
            self.sell_at_market,
        )

    def without(self, orders: Iterable[Order]) -> Exposure:
        """A copy with these open orders' remainders taken out."""
        trial = self.copy()
        for order in orders:
            trial.add(order.side, order.limit_price, -order.leaves_qty)
        return trial

    def reserved(self, long_qty: Decimal, price: Decimal) -> Decimal:
        """Buys in full; sells only beyond the long position, valued pro rata over the
        open sells (each at its limit, else the market)."""
        buys = self.buy_notional + self.buy_at_market * price
        sells = self.sell_qty + self.sell_at_market
        excess = sells - max(long_qty, _ZERO)
        if excess <= 0:
            return buys
        return buys + excess * (self.sell_notional + self.sell_at_market * price) / sells


@dataclass(slots=True, eq=False)
class Account:
    key: str
    ledger: Ledger
    index: list[OrderKey] = field(default_factory=list)  # by submitted_at, then arrival
    by_client_id: dict[str, Order] = field(default_factory=dict)
    open: dict[str, Order] = field(default_factory=dict)
    activity_ids: list[str] = field(default_factory=list)  # visible FILL activities, by id
    activities: list[Fill] = field(default_factory=list)  # parallel to activity_ids
    fee_ids: list[str] = field(default_factory=list)  # posted CFEE activities, by id
    fees: list[Fee] = field(default_factory=list)  # parallel to fee_ids
    exposure: dict[str, Exposure] = field(default_factory=dict)
    last_order: Order | None = None
    # Orders being replaced, by their replacement's id: (old, new), both open. The pair
    # holds only the larger of the two (Alpaca: "buying power is reduced by the larger").
    replacing: dict[str, tuple[Order, Order]] = field(default_factory=dict)

    def add_order(self, order: Order) -> None:
        """A new order; a leg is not the order the next one may share a timestamp with, and
        a held leg holds no buying power until it is activated (``start_holding``)."""
        insort(self.index, (order.submitted_us, order.seq, order))
        self.by_client_id[order.client_order_id] = order
        self.open[order.id] = order
        if order.parent_id is None:
            self.last_order = order
        if order.reserving:
            self.reserve(order, order.qty)

    def start_holding(self, order: Order) -> None:
        """A held leg goes to work: its remainder holds buying power from now on."""
        if not order.reserving and order.id in self.open:
            order.reserving = True
            self.reserve(order, order.leaves_qty)

    def resubmit(self, order: Order, submitted_us: int) -> None:
        """Move the order in the index when its submitted_at changes (routing)."""
        old = bisect_left(self.index, (order.submitted_us, order.seq))
        assert self.index[old][2] is order
        del self.index[old]
        order.submitted_us = submitted_us
        insort(self.index, (submitted_us, order.seq, order))

    def publish(self, fill: Fill) -> None:
        """Make a FILL activity visible in the listing, in id order."""
        at = bisect_left(self.activity_ids, fill.id)
        self.activity_ids.insert(at, fill.id)
        self.activities.insert(at, fill)

    def post_fee(self, fee: Fee) -> None:
        """Make a fill's fee activity (Alpaca's CFEE) visible in the listing, in id order."""
        at = bisect_left(self.fee_ids, fee.id)
        self.fee_ids.insert(at, fee.id)
        self.fees.insert(at, fee)

    def release(self, order: Order) -> None:
        """The order is no longer open: its remainder no longer holds buying power, and a
        replacement pair it was part of holds only what the other order holds."""
        if self.open.pop(order.id, None) is not None and order.reserving:
            self.reserve(order, -order.leaves_qty)
        if self.replacing:
            for key, pair in list(self.replacing.items()):
                if order in pair:
                    del self.replacing[key]

    def reserve(self, order: Order, qty: Decimal) -> None:
        self.exposure_of(order.symbol).add(order.side, order.limit_price, qty)

    def exposure_of(self, symbol: str) -> Exposure:
        found = self.exposure.get(symbol)
        if found is None:
            found = self.exposure[symbol] = Exposure()
        return found

    def long_qty(self, symbol: str) -> Decimal:
        position = self.ledger.positions.get(symbol)
        return _ZERO if position is None else position.qty

    def reserved(self, price_of: PriceOf) -> Decimal:
        return sum(
            (
                self._held(symbol, exposure, price_of(symbol))
                for symbol, exposure in self.exposure.items()
            ),
            _ZERO,
        )

    def _held(self, symbol: str, exposure: Exposure, price: Decimal) -> Decimal:
        """What one symbol's open orders hold; each order being replaced and its
        replacement count as whichever of the two holds more."""
        long_qty = self.long_qty(symbol)
        pairs = [pair for pair in self.replacing.values() if pair[0].symbol == symbol]
        if not pairs:
            return exposure.reserved(long_qty, price)
        olds = exposure.without(new for _, new in pairs).reserved(long_qty, price)
        news = exposure.without(old for old, _ in pairs).reserved(long_qty, price)
        return max(olds, news)

    def swap_increase(self, old: Order, new: OrderRequest, price: Decimal) -> Decimal:
        """How much more ``old``'s symbol would hold with ``new`` in place of ``old``'s
        remainder (negative: less)."""
        exposure = self.exposure_of(old.symbol)
        long_qty = self.long_qty(old.symbol)
        trial = exposure.without((old,))
        trial.add(new.side, new.limit_price, new.qty)
        return trial.reserved(long_qty, price) - exposure.reserved(long_qty, price)

    def market_values(self, price_of: PriceOf) -> tuple[Decimal, Decimal]:
        """(long, short) market value; short is zero or negative, as Alpaca reports it. An
        option contract's price is per share of its 100."""
        long_value = short_value = _ZERO
        for symbol, position in self.ledger.positions.items():
            value = position.qty * price_of(symbol) * contract_multiplier(symbol)
            if value > 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

    def buying_power(self, price_of: PriceOf) -> Decimal:
        """cash - |short market value| - what open orders hold."""
        _, short_value = self.market_values(price_of)
        return self.ledger.cash + short_value - self.reserved(price_of)
