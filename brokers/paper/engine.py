"""The matching engine: order lifecycle, scheduled fills, cancels that race fills.

No I/O and no hidden clock or randomness: the clock and ``random.Random`` are injected,
every public call first advances to the clock, and ``advance`` applies due events and
price ticks strictly in time order, each at its own scheduled time.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from itertools import count, pairwise

from brokers.paper.book import SymbolBook
from brokers.paper.ledger import Ledger
from brokers.paper.model import (
    CENT,
    QTY_QUANTUM,
    Fill,
    Order,
    OrderRequest,
    PaperStatus,
    from_us,
    to_us,
)
from models.enums import OrderType, Side, TimeInForce

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    fill_delay_ms: tuple[int, int] = (0, 300)
    partial_fill_probability: float = 0.3
    ack_delay_ms: tuple[int, int] = (1, 5)
    cancel_delay_ms: tuple[int, int] = (0, 50)
    tick_ms: int = 100
    volatility_bps: float = 5.0
    starting_cash: Decimal = Decimal("10000000")


class DuplicateClientOrderIdError(Exception):
    pass


class UnknownOrderError(LookupError):
    pass


class OrderClosedError(Exception):
    """The order is terminal: it can be neither canceled nor filled."""


class _Event(IntEnum):
    ACK = 0
    REJECT = 1
    FILL = 2
    CANCEL = 3


_EventEntry = tuple[int, int, _Event, Order, Decimal]
_NO_QTY = Decimal(0)


class Engine:
    def __init__(self, config: EngineConfig, clock: Clock, rng: random.Random) -> None:
        self.config = config
        self._clock = clock
        self._rng = rng
        self._fill_seq = count()  # never reset, so activity ids stay unique across resets
        self.reset(config)

    def reset(self, config: EngineConfig) -> None:
        """Drop every order, fill and position; prices go back to their starting values."""
        self.config = config
        self.frozen = False
        self.volatility_bps = config.volatility_bps
        self.now_us = to_us(self._clock())
        self._last_submit_us = 0
        self._events: list[_EventEntry] = []
        self._event_seq = count()
        self._next_tick_us = self.now_us + self._tick_us
        self.books: dict[str, SymbolBook] = {}
        self.orders: list[Order] = []  # submission order, forgotten ones included
        self.submitted_us: list[int] = []  # parallel to ``orders``, strictly increasing
        self._by_id: dict[str, Order] = {}
        self.truth_by_id: dict[str, Order] = {}  # forgotten orders too
        self._by_client_id: dict[str, Order] = {}
        self._open: dict[str, Order] = {}
        self.fills: list[Fill] = []  # time order, forgotten orders' fills included
        self.fill_ids: list[str] = []
        self.fill_times_us: list[int] = []
        self.ledger = Ledger(cash=config.starting_cash)

    @property
    def _tick_us(self) -> int:
        return max(1, self.config.tick_ms) * 1000

    # -- time ----------------------------------------------------------------------------

    def advance(self, now: datetime | None = None) -> None:
        """Apply every event and price tick due by ``now`` (default: the clock), in order."""
        target = max(self.now_us, to_us(now if now is not None else self._clock()))
        tick = self._tick_us
        ticking = bool(self.books) and not self.frozen and self.volatility_bps > 0
        while True:
            next_event = self._events[0][0] if self._events else None
            due_tick = self._next_tick_us <= target
            if due_tick and not ticking:  # frozen ticks change nothing: skip them all
                self._next_tick_us += ((target - self._next_tick_us) // tick + 1) * tick
                due_tick = False
            if due_tick and (next_event is None or self._next_tick_us < next_event):
                self.now_us = self._next_tick_us
                self._tick()
                self._next_tick_us += tick
            elif next_event is not None and next_event <= target:
                self._handle(heapq.heappop(self._events))
            else:
                break
        self.now_us = target

    def next_due(self) -> datetime | None:
        """When something next happens, so a driver knows how long it may sleep."""
        candidates = [self._events[0][0]] if self._events else []
        if self.books and not self.frozen and self.volatility_bps > 0:
            candidates.append(self._next_tick_us)
        return from_us(min(candidates)) if candidates else None

    def _tick(self) -> None:
        for book in self.books.values():
            book.step(self._rng, self.volatility_bps)
            self._match(book)

    # -- requests ------------------------------------------------------------------------

    def submit(
        self, request: OrderRequest, *, reject: bool = False, acknowledged: bool = False
    ) -> Order:
        """Accept an order; it is acknowledged (or rejected) a few ms later, or at once when
        ``acknowledged`` (an order placed earlier, as seeded for a benchmark)."""
        self.advance()
        cid = request.client_order_id
        if cid is not None and cid in self._by_client_id:
            raise DuplicateClientOrderIdError(cid)
        # submitted_at is strictly increasing; on a tie the engine's own time moves on a
        # microsecond too, so nothing can later happen to this order before it was submitted.
        at = self.now_us = max(self.now_us, self._last_submit_us + 1)
        self._last_submit_us = at
        order = Order(
            id=self._uuid(),
            client_order_id=cid or self._uuid(),
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            qty=request.qty,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            submitted_us=at,
            updated_us=at,
            timeline=[(PaperStatus.ACCEPTED, at)],
        )
        self.book(order.symbol)
        self.orders.append(order)
        self.submitted_us.append(at)
        self._by_id[order.id] = order
        self.truth_by_id[order.id] = order
        self._by_client_id[order.client_order_id] = order
        self._open[order.id] = order
        if acknowledged and not reject:
            self._on_ack(order, at)
        else:
            event = _Event.REJECT if reject else _Event.ACK
            self._push(at + self._delay_us(self.config.ack_delay_ms), event, order)
        return order

    def get(self, order_id: str) -> Order | None:
        self.advance()
        return self._by_id.get(order_id)

    def get_by_client_id(self, client_order_id: str) -> Order | None:
        self.advance()
        return self._by_client_id.get(client_order_id)

    def cancel(self, order_id: str) -> Order:
        """Mark the order pending_cancel; it is canceled after the cancel delay unless a
        fill due before then completes it first."""
        self.advance()
        order = self._known(order_id)
        if not order.is_open:
            raise OrderClosedError(order_id)
        if order.status is not PaperStatus.PENDING_CANCEL:
            order.set_status(PaperStatus.PENDING_CANCEL, self.now_us)
            due = self.now_us + self._delay_us(self.config.cancel_delay_ms)
            self._push(due, _Event.CANCEL, order)
        return order

    def cancel_all(self) -> list[Order]:
        self.advance()
        return [self.cancel(order_id) for order_id in list(self._open)]

    def close_day(self) -> int:
        """Expire every open day order, as the closing bell would."""
        self.advance()
        day_orders = [o for o in self._open.values() if o.time_in_force is TimeInForce.DAY]
        for order in day_orders:
            self._finish(order, PaperStatus.EXPIRED, self.now_us)
        return len(day_orders)

    def force_fill(
        self, order_id: str, qty: Decimal | None = None, price: Decimal | None = None
    ) -> Fill:
        """Fill now, outside the market model; for tests that need an exact fill."""
        self.advance()
        order = self._known(order_id)
        if not order.is_open:
            raise OrderClosedError(order_id)
        qty = order.leaves_qty if qty is None else qty
        if not 0 < qty <= order.leaves_qty:
            raise ValueError(f"qty must be > 0 and <= leaves_qty {order.leaves_qty}")
        if price is None:
            price = self.book(order.symbol).price
        elif price <= 0:
            raise ValueError("price must be > 0")
        return self._apply_fill(order, qty, price, self.now_us)

    def forget(self, order_id: str) -> Order:
        """The venue loses the order: unknown from now on, but ground truth keeps it."""
        self.advance()
        order = self._known(order_id)
        del self._by_id[order.id]
        self._by_client_id.pop(order.client_order_id, None)
        self._open.pop(order.id, None)
        self.book(order.symbol).remove(order)
        order.forgotten = True
        return order

    def set_price(self, symbol: str, price: Decimal) -> None:
        self.advance()
        book = self.book(symbol)
        book.price = max(CENT, price.quantize(CENT))
        self._match(book)
        self.advance(from_us(self.now_us))  # fills due at once happen at once

    def book(self, symbol: str) -> SymbolBook:
        found = self.books.get(symbol)
        if found is None:
            found = self.books[symbol] = SymbolBook.for_symbol(symbol)
        return found

    def _known(self, order_id: str) -> Order:
        order = self._by_id.get(order_id)
        if order is None:
            raise UnknownOrderError(order_id)
        return order

    # -- lifecycle -----------------------------------------------------------------------

    def _handle(self, entry: _EventEntry) -> None:
        at, _, event, order, qty = entry
        self.now_us = at
        if order.forgotten or not order.is_open:
            return  # lazy deletion: events of finished orders are dropped here
        if event is _Event.ACK:
            self._on_ack(order, at)
        elif event is _Event.REJECT:
            self._finish(order, PaperStatus.REJECTED, at)
        elif event is _Event.FILL:
            qty = min(qty, order.leaves_qty)
            if qty > 0:
                self._apply_fill(order, qty, self._fill_price(order), at)
        else:
            self._finish(order, PaperStatus.CANCELED, at)

    def _on_ack(self, order: Order, at: int) -> None:
        if order.status is PaperStatus.ACCEPTED:
            order.set_status(PaperStatus.NEW, at)
        book = self.book(order.symbol)
        if order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            self._execute_immediately(order, book, at)
        elif order.type is OrderType.LIMIT and not book.marketable(order):
            book.rest_limit(order)
        elif order.type in (OrderType.MARKET, OrderType.LIMIT):
            self._work(order, at)
        elif book.stop_triggered(order):
            self._on_trigger(order, book, at)
        else:
            book.rest_stop(order)

    def _on_trigger(self, order: Order, book: SymbolBook, at: int) -> None:
        if order.type is OrderType.STOP_LIMIT and not book.marketable(order):
            book.rest_limit(order)
        else:
            self._work(order, at)

    def _execute_immediately(self, order: Order, book: SymbolBook, at: int) -> None:
        """IOC fills what is marketable now and cancels the rest; FOK fills all or nothing."""
        stops = order.type in (OrderType.STOP, OrderType.STOP_LIMIT)
        limits = order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        marketable = (not stops or book.stop_triggered(order)) and (
            not limits or book.marketable(order)
        )
        if marketable:
            parts = [order.leaves_qty]
            if order.time_in_force is TimeInForce.IOC:
                parts = self._split(order.leaves_qty)
            self._apply_fill(order, parts[0], self._fill_price(order), at)
        if order.is_open:
            self._finish(order, PaperStatus.CANCELED, at)

    def _match(self, book: SymbolBook) -> None:
        for order, kind in book.pop_crossed():
            if kind == "stop":
                self._on_trigger(order, book, self.now_us)
            else:
                self._work(order, self.now_us)

    def _work(self, order: Order, at: int) -> None:
        """Schedule the order's fills: one, or 2-4 partials, within the fill delay."""
        end = at + self._delay_us(self.config.fill_delay_ms)
        parts = self._split(order.leaves_qty)
        times = [*sorted(self._rng.randint(at, end) for _ in parts[1:]), end]
        for due, qty in zip(times, parts, strict=True):
            self._push(due, _Event.FILL, order, qty)

    def _split(self, qty: Decimal) -> list[Decimal]:
        """Cut ``qty`` into 1 part, or 2-4 with the partial-fill probability."""
        if self._rng.random() >= self.config.partial_fill_probability:
            return [qty]
        unit = Decimal(1) if qty == qty.to_integral_value() else QTY_QUANTUM
        units = int(qty / unit)
        pieces = min(self._rng.randint(2, 4), units)
        if pieces <= 1:
            return [qty]
        bounds = [0, *sorted(self._rng.sample(range(1, units), pieces - 1)), units]
        return [(hi - lo) * unit for lo, hi in pairwise(bounds)]

    def _fill_price(self, order: Order) -> Decimal:
        """The market price with up to a cent of slippage, never worse than a limit."""
        price = max(CENT, self.book(order.symbol).price + self._rng.randint(-1, 1) * CENT)
        if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and order.limit_price:
            if order.side is Side.BUY:
                return min(price, order.limit_price)
            return max(price, order.limit_price)
        return price

    def _apply_fill(self, order: Order, qty: Decimal, price: Decimal, at: int) -> Fill:
        order.filled_qty += qty
        order.filled_notional += qty * price
        if order.leaves_qty == 0:
            order.filled_us = at
            self._close(order)
            order.set_status(PaperStatus.FILLED, at)
        elif order.status in (PaperStatus.ACCEPTED, PaperStatus.NEW):
            order.set_status(PaperStatus.PARTIALLY_FILLED, at)
        else:
            order.updated_us = at
        fill = Fill(
            id=self._fill_id(at),
            order=order,
            qty=qty,
            price=price,
            time_us=at,
            cum_qty=order.filled_qty,
            leaves_qty=order.leaves_qty,
            order_status=order.status,
        )
        order.fills.append(fill)
        self.fills.append(fill)
        self.fill_ids.append(fill.id)
        self.fill_times_us.append(at)
        self.ledger.record(order.symbol, order.side, qty, price)
        return fill

    def _finish(self, order: Order, status: PaperStatus, at: int) -> None:
        self._close(order)
        if status is PaperStatus.CANCELED:
            order.canceled_us = at
        elif status is PaperStatus.EXPIRED:
            order.expired_us = at
        elif status is PaperStatus.REJECTED:
            order.failed_us = at
        order.set_status(status, at)

    def _close(self, order: Order) -> None:
        self.book(order.symbol).remove(order)
        self._open.pop(order.id, None)

    # -- helpers -------------------------------------------------------------------------

    def _push(self, at: int, event: _Event, order: Order, qty: Decimal = _NO_QTY) -> None:
        heapq.heappush(self._events, (at, next(self._event_seq), event, order, qty))

    def _delay_us(self, bounds_ms: tuple[int, int]) -> int:
        return self._rng.randint(bounds_ms[0] * 1000, bounds_ms[1] * 1000)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _fill_id(self, at: int) -> str:
        """``<YYYYMMDDHHMMSSmmm>::<uuid>`` whose first field is a sequence number, so ids
        sort in time order even within one millisecond."""
        moment = from_us(at)
        stamp = moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"
        tail = self._uuid()
        return f"{stamp}::{next(self._fill_seq):08x}{tail[8:]}"
