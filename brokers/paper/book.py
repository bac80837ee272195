"""One symbol's price and its resting orders, kept in heaps so a tick costs nothing per order.

Each heap is ordered so its top is the order that crosses first; cancels only clear
``Order.resting`` and the stale entry is dropped when it reaches the top (lazy deletion).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import count

from brokers.paper.model import CENT, Order, initial_price
from core.enums import Side

_Entry = tuple[Decimal, int, Order]
_COMPACT_SLACK = 1024


@dataclass(slots=True)
class SymbolBook:
    symbol: str
    price: Decimal
    buy_limits: list[_Entry] = field(default_factory=list)  # key -limit: highest bid on top
    sell_limits: list[_Entry] = field(default_factory=list)  # key limit: lowest ask on top
    buy_stops: list[_Entry] = field(default_factory=list)  # key stop: triggers as price rises
    sell_stops: list[_Entry] = field(default_factory=list)  # key -stop: triggers as price falls
    live: int = 0
    _seq: count[int] = field(default_factory=count)
    around_the_clock: bool = False  # a crypto pair: it trades while the market is closed
    tick: Decimal = CENT  # the price step (a venue's listed symbol may set a finer one)
    lot: Decimal | None = None  # the quantity step fills are cut in (None: the engine's)

    @classmethod
    def for_symbol(cls, symbol: str) -> SymbolBook:
        return cls(symbol=symbol, price=initial_price(symbol))

    def step(self, rng: random.Random, volatility_bps: float) -> None:
        """One random-walk tick in whole ticks (cents); the float is only the random draw."""
        if self.tick == CENT:
            sigma_ticks = float(self.price) * 100 * volatility_bps / 10_000
        else:
            sigma_ticks = float(self.price / self.tick) * volatility_bps / 10_000
        delta = round(rng.gauss(0.0, sigma_ticks))
        self.price = max(self.tick, self.price + Decimal(delta) * self.tick)

    def marketable(self, order: Order) -> bool:
        """Whether a limit price is at or through the market right now."""
        assert order.limit_price is not None
        if order.side is Side.BUY:
            return self.price <= order.limit_price
        return self.price >= order.limit_price

    def stop_triggered(self, order: Order) -> bool:
        assert order.stop_price is not None
        if order.side is Side.BUY:
            return self.price >= order.stop_price
        return self.price <= order.stop_price

    def rest_stop(self, order: Order) -> None:
        """Park a stop until the price reaches it."""
        heap, key, kind = self._stop_heap(order)
        order.resting = kind
        self.live += 1
        heapq.heappush(heap, (key, next(self._seq), order))

    def rest_limit(self, order: Order) -> None:
        """Park a limit order that is not marketable until the price crosses it."""
        heap, key, kind = self._limit_heap(order)
        order.resting = kind
        self.live += 1
        heapq.heappush(heap, (key, next(self._seq), order))

    def remove(self, order: Order) -> None:
        """Take an order out of the book; its heap entry goes stale."""
        if order.resting is None:
            return
        order.resting = None
        self.live -= 1
        if self._entries() > 2 * self.live + _COMPACT_SLACK:
            self._compact()

    def pop_crossed(self) -> list[tuple[Order, str]]:
        """Remove and return every resting order the current price crosses, stops first,
        each with the kind of book it sat in ("stop" or "limit")."""
        crossed: list[tuple[Order, str]] = []
        price = self.price
        self._drain(self.buy_stops, "stop", lambda key: key <= price, crossed)
        self._drain(self.sell_stops, "stop", lambda key: -key >= price, crossed)
        self._drain(self.buy_limits, "limit", lambda key: -key >= price, crossed)
        self._drain(self.sell_limits, "limit", lambda key: key <= price, crossed)
        return crossed

    def _drain(
        self,
        heap: list[_Entry],
        kind: str,
        crosses: Callable[[Decimal], bool],
        out: list[tuple[Order, str]],
    ) -> None:
        while heap:
            key, _, order = heap[0]
            if order.resting != kind:
                heapq.heappop(heap)
                continue
            if not crosses(key):
                return
            heapq.heappop(heap)
            order.resting = None
            self.live -= 1
            out.append((order, kind))

    def _limit_heap(self, order: Order) -> tuple[list[_Entry], Decimal, str]:
        assert order.limit_price is not None
        if order.side is Side.BUY:
            return self.buy_limits, -order.limit_price, "limit"
        return self.sell_limits, order.limit_price, "limit"

    def _stop_heap(self, order: Order) -> tuple[list[_Entry], Decimal, str]:
        assert order.stop_price is not None
        if order.side is Side.BUY:
            return self.buy_stops, order.stop_price, "stop"
        return self.sell_stops, -order.stop_price, "stop"

    def _entries(self) -> int:
        heaps = (self.buy_limits, self.sell_limits, self.buy_stops, self.sell_stops)
        return sum(len(heap) for heap in heaps)

    def _compact(self) -> None:
        for heap, kind in (
            (self.buy_limits, "limit"),
            (self.sell_limits, "limit"),
            (self.buy_stops, "stop"),
            (self.sell_stops, "stop"),
        ):
            heap[:] = [entry for entry in heap if entry[2].resting == kind]
            heapq.heapify(heap)
