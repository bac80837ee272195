"""Order classes as the engine runs them: bracket, OTO (one-triggers-other) and OCO
(one-cancels-other), in Alpaca's model, whose checks at placement are its rules'
(``brokers.alpaca.paper.legs``).

A bracket is an entry (market or limit) with two exit legs, a take-profit limit order and a
stop-loss stop (or stop_limit) order; an OTO is an entry with one of them; an OCO is an exit
pair for a position already held: the order is the take-profit and its one leg the stop-loss.
Legs are orders of their own (own ids, client ids made up by the venue, the parent's qty,
class and time in force; a bracket's or OTO's the entry's opposite side, an OCO's its own),
listed in the parent's ``legs``.

Lifecycle, as Alpaca reports it:

- Legs are ``held`` from the start (no stream event: nothing is at work yet) and hold no
  buying power. A held leg waiting for its entry cannot be canceled on its own: canceling the
  entry cancels it.
- The entry filling completely activates the legs: the take-profit is ``new`` and works; the
  stop-loss stays ``held`` while the take-profit works (the shares are allocated to one exit
  at a time) but its stop is watched. An OTO's one leg is ``new`` and works.
- The stop being crossed cancels the take-profit and puts the stop-loss to work (``new``).
- An exit's first fill, even partial, cancels its sibling.
- The entry ending unfilled or partly filled (canceled, expired, rejected) cancels its legs.
- Canceling an exit cancels its sibling too: a held one at once, a working one as any cancel.
- Legs cannot be replaced (Alpaca: ``brokers.alpaca.paper.replace``).

No I/O: the engine calls these hooks from its own lifecycle, with its clock.
"""

from __future__ import annotations

from typing import Protocol

from brokers.paper.accounts import Account
from brokers.paper.book import SymbolBook
from brokers.paper.events import TradeEvent
from brokers.paper.model import (
    Fill,
    NotCancelableError,
    Order,
    OrderClass,
    OrderRequest,
    PaperStatus,
)
from brokers.paper.session import Session
from core.enums import OrderType, Side

ENTRY_CLASSES: frozenset[OrderClass] = frozenset({"bracket", "oto"})
# How an entry's end before its last fill ends its held legs.
_ENTRY_ENDS = frozenset({PaperStatus.CANCELED, PaperStatus.EXPIRED, PaperStatus.REJECTED})


class Venue(Protocol):
    """What of the engine the hooks use."""

    session: Session
    accounts: dict[str, Account]
    truth_by_id: dict[str, Order]

    def book(self, symbol: str) -> SymbolBook: ...

    def _register(
        self,
        request: OrderRequest,
        owner: Account,
        created: int,
        replaces: str | None = None,
        parent: Order | None = None,
    ) -> Order: ...

    def _finish(self, order: Order, status: PaperStatus, at: int) -> None: ...

    def _emit(self, event: TradeEvent, order: Order, at: int) -> None: ...

    def _request_cancel(self, order: Order) -> None: ...

    def _work_or_rest(self, order: Order, at: int) -> None: ...

    def _on_trigger(self, order: Order, book: SymbolBook, at: int) -> None: ...

    def _park(self, order: Order) -> None: ...


def _opposite(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY


def leg_requests(request: OrderRequest) -> list[OrderRequest]:
    """The legs to create with the order, take-profit first: a bracket's two, an OTO's one,
    an OCO's stop-loss (its take-profit is the order itself); none for a simple order."""
    kind = request.order_class
    if kind == "simple":
        return []
    side = request.side if kind == "oco" else _opposite(request.side)
    requests = []
    if request.take_profit is not None and kind != "oco":
        requests.append(
            OrderRequest(
                symbol=request.symbol,
                qty=request.qty,
                side=side,
                type=OrderType.LIMIT,
                time_in_force=request.time_in_force,
                limit_price=request.take_profit.limit_price,
                order_class=kind,
            )
        )
    stop_loss = request.stop_loss
    if stop_loss is not None:
        requests.append(
            OrderRequest(
                symbol=request.symbol,
                qty=request.qty,
                side=side,
                type=OrderType.STOP if stop_loss.limit_price is None else OrderType.STOP_LIMIT,
                time_in_force=request.time_in_force,
                limit_price=stop_loss.limit_price,
                stop_price=stop_loss.stop_price,
                order_class=kind,
            )
        )
    return requests


def is_stop_loss(order: Order) -> bool:
    return order.type in (OrderType.STOP, OrderType.STOP_LIMIT)


class Legs:
    """The engine's order-class hooks; it keeps no state of its own (the orders do)."""

    def __init__(self, venue: Venue) -> None:
        self._venue = venue

    # -- placing -------------------------------------------------------------------------

    def attach(self, parent: Order, request: OrderRequest, owner: Account) -> None:
        """Create the legs with their parent, held, in the same microsecond."""
        for leg_request in leg_requests(request):
            leg = self._venue._register(leg_request, owner, parent.created_us, parent=parent)
            parent.legs.append(leg)

    # -- questions -----------------------------------------------------------------------

    def parent_of(self, order: Order) -> Order | None:
        return None if order.parent_id is None else self._venue.truth_by_id[order.parent_id]

    def waiting(self, order: Order) -> bool:
        """A held leg of an entry that has not filled completely: the entry decides its fate
        (it is neither expired nor canceled on its own)."""
        parent = self.parent_of(order)
        return (
            order.status is PaperStatus.HELD
            and parent is not None
            and parent.order_class in ENTRY_CLASSES
            and parent.leaves_qty > 0
        )

    def siblings(self, order: Order) -> list[Order]:
        """The other exits of the order's pair: an entry has none."""
        parent = self.parent_of(order)
        if parent is None:
            return list(order.legs) if order.order_class == "oco" else []
        group = [parent, *parent.legs] if parent.order_class == "oco" else parent.legs
        return [other for other in group if other is not order]

    # -- hooks ---------------------------------------------------------------------------

    def filled(self, order: Order, fill: Fill, at: int) -> None:
        """After a fill: an entry's last one activates its legs; an exit's first one
        cancels its sibling."""
        if order.order_class in ENTRY_CLASSES and order.parent_id is None:
            if fill.is_final:
                self._activate_exits(order, at)
        elif order.filled_qty == fill.qty:
            for sibling in self.siblings(order):
                if sibling.is_open:
                    self._venue._finish(sibling, PaperStatus.CANCELED, at)

    def finished(self, order: Order, status: PaperStatus, at: int) -> None:
        """After an order with legs ended: an entry that ended before its last fill (and an
        OCO the venue rejected) takes its open legs with it."""
        entry = order.order_class in ENTRY_CLASSES
        if status in _ENTRY_ENDS and (entry or status is PaperStatus.REJECTED):
            for leg in order.legs:
                if leg.is_open:
                    self._venue._finish(leg, PaperStatus.CANCELED, at)

    def cancel(self, order: Order, at: int) -> None:
        """A cancel of any order of a class: an entry as any order (its legs follow it); an
        exit with its sibling, a held one canceled at once, a working one pending_cancel."""
        if self.waiting(order):
            raise NotCancelableError(order.id, order.status)
        for target in (order, *self.siblings(order)):
            if not target.is_open:
                continue
            if target.status is PaperStatus.HELD:
                self._venue._finish(target, PaperStatus.CANCELED, at)
            elif target.status is not PaperStatus.PENDING_REPLACE:
                self._venue._request_cancel(target)

    def work_started(self, order: Order, at: int) -> None:
        """An OCO's take-profit goes to work: its stop-loss is watched from now on."""
        if order.order_class == "oco" and order.parent_id is None:
            for leg in order.legs:
                self._arm(leg, at)

    def triggered(self, stop_loss: Order, at: int) -> None:
        """A held stop-loss's stop is crossed: the take-profit working in its place is
        canceled and the stop-loss goes to work (the engine then works it as a stop)."""
        for sibling in self.siblings(stop_loss):
            if sibling.is_open:
                self._venue._finish(sibling, PaperStatus.CANCELED, at)
        self._activate(stop_loss, at)

    # -- internals -----------------------------------------------------------------------

    def _activate_exits(self, entry: Order, at: int) -> None:
        """The entry filled: a bracket's take-profit works and its stop-loss is watched;
        a lone exit (an OTO's, or a bracket's whose sibling is gone) works."""
        exits = [leg for leg in entry.legs if leg.is_open and leg.status is PaperStatus.HELD]
        take_profits = [leg for leg in exits if not is_stop_loss(leg)]
        for leg in exits:
            if is_stop_loss(leg) and take_profits:
                continue
            self._activate(leg, at)
            self._work(leg, at)
        if take_profits:
            for leg in exits:
                if is_stop_loss(leg):
                    self._arm(leg, at)

    def _activate(self, leg: Order, at: int) -> None:
        """Held to new: it holds buying power and is at the venue from now on."""
        venue = self._venue
        venue.accounts[leg.account].start_holding(leg)
        leg.routed = True
        leg.set_status(PaperStatus.NEW, at)
        venue._emit(TradeEvent.NEW, leg, at)

    def _work(self, leg: Order, at: int) -> None:
        venue = self._venue
        if venue.session.is_open:
            venue._work_or_rest(leg, at)
        else:  # an entry filled by hand overnight: its exits work from the open
            venue._park(leg)

    def _arm(self, stop_loss: Order, at: int) -> None:
        """Watch a held stop-loss's stop: at once if the market is already through it."""
        if stop_loss.status is not PaperStatus.HELD or stop_loss.resting is not None:
            return
        venue = self._venue
        book = venue.book(stop_loss.symbol)
        if venue.session.is_open and book.stop_triggered(stop_loss):
            venue._on_trigger(stop_loss, book, at)
        else:
            book.rest_stop(stop_loss)
