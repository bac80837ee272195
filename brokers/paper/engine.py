"""The matching engine: order lifecycle, scheduled fills, cancels and replaces that race
fills and expiries, trading sessions, and accounts sharing one market.

No I/O and no hidden clock or randomness: the clock and ``random.Random`` are injected,
every public call first advances to the clock, and ``advance`` applies due events, session
changes and price ticks strictly in time order, each at its own scheduled time. Every
lifecycle change is reported to ``listeners`` as it happens (the trade_updates stream).
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from itertools import count, pairwise

from brokers.paper import notional
from brokers.paper.accounts import Account
from brokers.paper.book import SymbolBook
from brokers.paper.events import Listener, OrderEvent, TradeEvent
from brokers.paper.ledger import Ledger
from brokers.paper.legs import Legs
from brokers.paper.model import (
    QTY_QUANTUM,
    Fill,
    NotCancelableError,
    Order,
    OrderChanges,
    OrderRequest,
    PaperStatus,
    eastern_wall,
    from_us,
    to_us,
    wall_stamp,
)
from brokers.paper.rules import NEUTRAL, FillDraft, Market, VenueRules
from brokers.paper.session import Session, seconds_to_us
from core.enums import OrderType, Side, TimeInForce

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    fill_delay_ms: tuple[int, int] = (0, 300)
    partial_fill_probability: float = 0.3
    ack_delay_ms: tuple[int, int] = (1, 5)
    cancel_delay_ms: tuple[int, int] = (0, 50)
    tick_ms: int = 100
    volatility_bps: float = 5.0
    starting_cash: Decimal = Decimal("1000000")
    session_s: float = 23_400.0  # 0: the market never closes
    overnight_s: float = 0.0
    # Statuses Alpaca reports "only on rare occasions", each a chance per order, each lasting
    # rare_status_ms: pending_new, accepted_for_bidding or pending_review between routing and
    # new; stopped before the fills; suspended instead of working (then back, no event);
    # calculated after the last fill (then filled again, no event).
    p_pending_new: float = 0.0
    p_accepted_for_bidding: float = 0.0
    p_pending_review: float = 0.0
    p_stopped: float = 0.0
    p_suspended: float = 0.0
    p_calculated: float = 0.0
    rare_status_ms: tuple[int, int] = (50, 500)


DEFAULT_ACCOUNT = "paper"


@dataclass(frozen=True, slots=True)
class Listing:
    """A symbol a venue dialect lists itself: where its price starts, its price and quantity
    steps; it trades around the clock (unless told not to) under ``rules`` (neutral ones by
    default: the dialect checks its venue's own before it submits), not the engine's
    default rules."""

    price: Decimal
    tick: Decimal
    lot: Decimal
    rules: VenueRules = NEUTRAL
    whole_fills: bool = False  # the venue fills an order in one execution (OANDA), never parts
    around_the_clock: bool = True  # False: it trades in the market's session only (options)


class DuplicateClientOrderIdError(Exception):
    pass


class InsufficientBuyingPowerError(Exception):
    """The order would hold more than the account's buying power: nothing is created."""


class UnknownOrderError(LookupError):
    pass


class OrderClosedError(Exception):
    """The order is terminal: it can be neither canceled nor filled."""


@dataclass(frozen=True, slots=True)
class DayClose:
    expired: int
    done_for_day: int


@dataclass(frozen=True, slots=True)
class CancelAll:
    """What ``cancel_all`` did: orders now pending_cancel, and those it could not cancel."""

    canceled: list[Order]
    refused: list[Order]


class _Event(IntEnum):
    ACK = 0
    REJECT = 1
    FILL = 2
    CANCEL = 3
    PUBLISH = 4  # a late FILL activity becomes visible
    REPLACE = 5  # a replacement reaches the venue: it takes its predecessor's place or fails
    RESUME = 6  # a suspended order is eligible for trading again
    SETTLE = 7  # a filled order becomes calculated, or calculated becomes filled again
    POST_FEE = 8  # a fill's fee activity is posted


# (due, seq, event, order, qty, the order's work generation, the fill to publish)
_EventEntry = tuple[int, int, _Event, Order, Decimal, int, Fill | None]
_NO_QTY = Decimal(0)
_EVENT, _SESSION, _TICK = 0, 1, 2  # what goes first when due at the same microsecond
_PENDING = frozenset({PaperStatus.PENDING_CANCEL, PaperStatus.PENDING_REPLACE})
# Not yet taken by the venue: the acknowledgement (or the open, overnight) makes them new.
_UNACKNOWLEDGED = frozenset(
    {
        PaperStatus.ACCEPTED,
        PaperStatus.PENDING_NEW,
        PaperStatus.ACCEPTED_FOR_BIDDING,
        PaperStatus.PENDING_REVIEW,
    }
)
# Without a fill yet: the first fill makes them partially_filled.
_UNFILLED = _UNACKNOWLEDGED | {PaperStatus.NEW, PaperStatus.STOPPED, PaperStatus.SUSPENDED}
_FINISH_EVENTS = {
    PaperStatus.CANCELED: TradeEvent.CANCELED,
    PaperStatus.EXPIRED: TradeEvent.EXPIRED,
    PaperStatus.REJECTED: TradeEvent.REJECTED,
    PaperStatus.REPLACED: TradeEvent.REPLACED,
}


def no_delay() -> int:
    return 0


class Engine:
    def __init__(
        self,
        config: EngineConfig,
        clock: Clock,
        rng: random.Random,
        accounts: Iterable[str] = (DEFAULT_ACCOUNT,),
        *,
        rules: VenueRules,
    ) -> None:
        self.config = config
        self.rules = rules  # every symbol's that no venue dialect lists
        self._market = Market(self.price_of, self._delay_us, self._uuid)  # what fees draw on
        self._clock = clock
        self._rng = rng
        self.account_keys = tuple(accounts)  # known from the start and kept across resets
        # How long a new fill's activity stays out of the listing, in µs (a fault's hook).
        self.activity_delay_us: Callable[[], int] = no_delay
        # Called with every lifecycle change, in order, at its engine time; kept across resets.
        self.listeners: list[Listener] = []
        self._order_seq = count()
        self._legs = Legs(self)  # bracket, OTO and OCO orders' hooks
        # Symbols a venue dialect lists (brokers.binance.paper): kept across resets.
        self.listings: dict[str, Listing] = {}
        # Listers of symbols too many to list ahead (a venue's option contracts): asked, in
        # turn, for a symbol nobody listed when it is first named.
        self.listers: list[Callable[[str], Listing | None]] = []
        self.reset(config)

    def reset(self, config: EngineConfig) -> None:
        """Drop every order, fill and position; prices go back to their starting values and
        a new trading session starts now."""
        self.config = config
        self.frozen = False
        self.volatility_bps = config.volatility_bps
        self.now_us = to_us(self._clock())
        self._events: list[_EventEntry] = []
        self._event_seq = count()
        self._next_tick_us = self.now_us + self._tick_us
        self.books: dict[str, SymbolBook] = {}
        self.accounts: dict[str, Account] = {}
        for key in self.account_keys:
            self.account(key)
        self.orders: list[Order] = []  # arrival order, every account, forgotten ones included
        self._by_id: dict[str, Order] = {}  # known to the venue: forgotten ones are not
        self.truth_by_id: dict[str, Order] = {}
        self.fills: list[Fill] = []  # time order, every account, forgotten orders' included
        self._parked: list[Order] = []  # to be worked at the next open
        self.session = Session.opened(self.now_us, self._session_us)

    def account(self, key: str) -> Account:
        """The key's account, opened on first use (any key is an account in open mode)."""
        found = self.accounts.get(key)
        if found is None:
            found = self.accounts[key] = Account(key, Ledger(cash=self.config.starting_cash))
        return found

    @property
    def _tick_us(self) -> int:
        return max(1, self.config.tick_ms) * 1000

    @property
    def _session_us(self) -> int:
        return seconds_to_us(self.config.session_s)

    @property
    def _overnight_us(self) -> int:
        return seconds_to_us(self.config.overnight_s)

    # -- time ----------------------------------------------------------------------------

    def advance(self, now: datetime | None = None) -> None:
        """Apply every event, session change and price tick due by ``now`` (default: the
        clock), in time order; at one microsecond events first, then the session, then ticks."""
        target = max(self.now_us, to_us(now if now is not None else self._clock()))
        tick = self._tick_us
        ticking = bool(self.books) and not self.frozen and self.volatility_bps > 0
        if not ticking and self._next_tick_us <= target:  # frozen ticks change nothing
            self._next_tick_us += ((target - self._next_tick_us) // tick + 1) * tick
        while True:
            step = self._next_step(ticking)
            if step is None or step[0] > target:
                break
            at, kind = step
            self.now_us = at
            if kind == _EVENT:
                self._handle(heapq.heappop(self._events))
            elif kind == _SESSION:
                self._change_session(at)
            else:
                self._tick()
                self._next_tick_us += tick
        self.now_us = target

    def _next_step(self, ticking: bool) -> tuple[int, int] | None:
        """The earliest due (time, kind), if anything is ever due."""
        steps: list[tuple[int, int]] = []
        if self._events:
            steps.append((self._events[0][0], _EVENT))
        if self.session.next_change_us is not None:
            steps.append((self.session.next_change_us, _SESSION))
        if ticking:
            steps.append((self._next_tick_us, _TICK))
        return min(steps) if steps else None

    def next_due(self) -> datetime | None:
        """When something next happens, so a driver knows how long it may sleep."""
        step = self._next_step(bool(self.books) and not self.frozen and self.volatility_bps > 0)
        return None if step is None else from_us(step[0])

    def _tick(self) -> None:
        for book in self.books.values():
            book.step(self._rng, self.volatility_bps)
            self._match(book)

    # -- sessions ------------------------------------------------------------------------

    def close_day(self) -> DayClose:
        """Close the session now, as the closing bell would; the overnight gap and the next
        session follow. Nothing happens while the market is already closed."""
        self.advance()
        if not self.session.is_open:
            return DayClose(0, 0)
        closed = self._close_session(self.now_us)
        self.advance(from_us(self.now_us))  # without an overnight gap the next open is now
        return closed

    def restart_session(self) -> None:
        """A new session starts now (its length changed): opens the market if closed."""
        self.advance()
        if self.session.is_open:
            self.session = Session.opened(self.now_us, self._session_us)
        else:
            self._open_session(self.now_us)

    def _change_session(self, at: int) -> None:
        if self.session.is_open:
            self._close_session(at)
        else:
            self._open_session(at)

    def _close_session(self, at: int) -> DayClose:
        """Day orders expire; GTC orders with fills are done for the day; nothing trades
        until the open (fills already scheduled are void and worked again then)."""
        self.session = Session.closed(at, self._overnight_us)
        expired = done = 0
        for account in list(self.accounts.values()):
            for order in list(account.open.values()):
                if self.book(order.symbol).around_the_clock:
                    continue  # crypto trades around the clock: the close is not its
                if not order.is_open or self._legs.waiting(order):
                    continue  # ended with its parent, or held: its entry decides its fate
                if order.awaiting_replace:
                    continue  # not at the venue yet: its REPLACE event decides its fate
                if order.time_in_force is TimeInForce.DAY:
                    self._finish(order, PaperStatus.EXPIRED, at)
                    expired += 1
                elif order.status in _UNACKNOWLEDGED or order.parked:
                    continue  # its acknowledgement parks it
                elif order.filled_qty > 0 and order.status not in _PENDING:
                    order.set_status(PaperStatus.DONE_FOR_DAY, at)
                    self._emit(TradeEvent.DONE_FOR_DAY, order, at)
                    done += 1
                    self._park(order)
                elif order.resting is None:  # being worked: its pending fills must wait
                    self._park(order)
        return DayClose(expired, done)

    def _open_session(self, at: int) -> None:
        """Done-for-day orders resume; orders accepted overnight are routed now, and new."""
        self.session = Session.opened(at, self._session_us)
        parked, self._parked = self._parked, []
        for order in parked:
            order.parked = False
            if order.forgotten or not order.is_open:
                continue
            if not order.routed:
                self._resubmit(order, at if order.tie_us is None else order.tie_us)
                order.updated_us = at
            if order.status in _UNACKNOWLEDGED:
                order.set_status(PaperStatus.NEW, at)
                self._emit(TradeEvent.NEW, order, at)
            elif order.status in (PaperStatus.DONE_FOR_DAY, PaperStatus.SUSPENDED):
                self._back_to_work(order, at)  # Alpaca has no event for this
            self._work_or_rest(order, at)
        for book in list(self.books.values()):
            self._match(book)

    # -- requests ------------------------------------------------------------------------

    def submit(
        self,
        request: OrderRequest,
        *,
        account: str = DEFAULT_ACCOUNT,
        reject: bool = False,
        acknowledged: bool = False,
        same_timestamp: bool = False,
        check_buying_power: bool = True,
    ) -> Order:
        """Accept an order; it is acknowledged (or rejected) a few ms later, or at once when
        ``acknowledged`` (an order placed earlier, as seeded for a benchmark).

        ``same_timestamp``: it arrived in the same microsecond as the account's previous
        order, so it takes that order's created_at and, once routed, its submitted_at.
        """
        self.advance()
        owner = self.account(account)
        cid = request.client_order_id
        if cid is not None and cid in owner.by_client_id:
            raise DuplicateClientOrderIdError(cid)
        rules = self.rules_for(request.symbol)
        request = rules.admit(request, owner, self.price_of, check_funds=check_buying_power)
        if check_buying_power and not rules.is_crypto(request.symbol):
            self._check_buying_power(owner, request)
        partner = owner.last_order if same_timestamp else None
        created = self.now_us if partner is None else partner.created_us
        order = self._register(request, owner, created)
        self._legs.attach(order, request, owner)
        at = self.now_us
        if reject:
            self._push(at + self._delay_us(self.config.ack_delay_ms), _Event.REJECT, order)
        elif acknowledged:
            self._on_ack(order, at)
        elif partner is not None and partner.routed:
            order.tie_us = partner.submitted_us
            self._on_ack(order, at)
        else:
            due = at + self._delay_us(self.config.ack_delay_ms)
            if partner is not None and partner.ack_due_us is not None:
                due = partner.ack_due_us  # routed with it, in the same microsecond
            order.ack_due_us = due
            self._push(due, _Event.ACK, order)
        return order

    def _register(
        self,
        request: OrderRequest,
        owner: Account,
        created: int,
        replaces: str | None = None,
        parent: Order | None = None,
    ) -> Order:
        """A new accepted order, known to the venue and its account, holding buying power;
        a leg of ``parent`` is held instead, and holds none."""
        status = PaperStatus.ACCEPTED if parent is None else PaperStatus.HELD
        rules = self.rules_for(request.symbol)
        order = Order(
            id=self._uuid(),
            client_order_id=request.client_order_id or self._uuid(),
            account=owner.key,
            seq=next(self._order_seq),
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            qty=request.qty,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            created_us=created,
            submitted_us=created,
            status=status,
            updated_us=created,
            timeline=[(status, created)],
            replaces=replaces,
            order_class=request.order_class,
            parent_id=None if parent is None else parent.id,
            reserving=parent is None and rules.reserves(request.symbol),
            crypto=rules.is_crypto(request.symbol),
            notional=request.notional,
        )
        self.orders.append(order)
        self._by_id[order.id] = order
        self.truth_by_id[order.id] = order
        owner.add_order(order)
        return order

    def replace(self, order_id: str, account: str, changes: OrderChanges) -> Order:
        """A new accepted order now, as the venue's rules allow the change; the old one is
        pending_replace (it may still fill) until the ack delay later, when the new one takes
        its place, or is rejected if the old one ended first (Alpaca's PATCH)."""
        self.advance()
        old = self._known(order_id, account)
        owner = self.accounts[old.account]
        request = self.rules_for(old.symbol).replacement(old, changes, owner, self.price_of)
        cid = request.client_order_id
        if cid is not None and cid in owner.by_client_id:
            raise DuplicateClientOrderIdError(cid)
        increase = owner.swap_increase(old, request, self.price_of(old.symbol))
        if increase > 0 and increase > owner.buying_power(self.price_of):
            raise InsufficientBuyingPowerError(old.symbol)
        new = self._register(request, owner, self.now_us, replaces=old.id)
        owner.replacing[new.id] = (old, new)
        old.set_status(PaperStatus.PENDING_REPLACE, self.now_us)
        self._emit(TradeEvent.PENDING_REPLACE, old, self.now_us)
        new.ack_due_us = self.now_us + self._delay_us(self.config.ack_delay_ms)
        self._push(new.ack_due_us, _Event.REPLACE, new)
        return new

    def _check_buying_power(self, owner: Account, request: OrderRequest) -> None:
        """Refuse an order whose reservation would take more than the buying power left."""
        symbol = request.symbol
        increase = notional.holds(request)
        if increase is None:
            increase = owner.exposure_of(symbol).increase(
                request.side,
                request.limit_price,
                request.qty,
                owner.long_qty(symbol),
                self.book(symbol).price,
            )
        if increase > 0 and increase > owner.buying_power(self.price_of):
            raise InsufficientBuyingPowerError(request.symbol)

    def price_of(self, symbol: str) -> Decimal:
        return self.book(symbol).price

    def rules_for(self, symbol: str) -> VenueRules:
        """A listed symbol's rules (its dialect's), else the engine's default rules."""
        listing = self.listing(symbol)
        return self.rules if listing is None else listing.rules

    def get(self, order_id: str, account: str | None = None) -> Order | None:
        """The order if the venue knows it (and it is ``account``'s, when one is given)."""
        self.advance()
        order = self._by_id.get(order_id)
        if order is None or (account is not None and order.account != account):
            return None
        return order

    def get_by_client_id(
        self, client_order_id: str, account: str = DEFAULT_ACCOUNT
    ) -> Order | None:
        self.advance()
        return self.account(account).by_client_id.get(client_order_id)

    def cancel(self, order_id: str, account: str | None = None) -> Order:
        """Mark the order pending_cancel; it is canceled after the cancel delay unless a
        fill, a rejection or the close finishes it first."""
        self.advance()
        order = self._known(order_id, account)
        if not order.is_open:
            raise OrderClosedError(order_id)
        if order.status is PaperStatus.PENDING_REPLACE:
            self._emit(TradeEvent.ORDER_CANCEL_REJECTED, order, self.now_us)
            raise NotCancelableError(order_id, order.status)
        if order.order_class != "simple":
            self._legs.cancel(order, self.now_us)  # an exit takes its sibling with it
        else:
            self._request_cancel(order)
        return order

    def cancel_at_once(self, order_id: str, account: str | None = None) -> Order:
        """Cancel now, for a venue whose cancel answers with the final state (Binance)."""
        self.advance()
        order = self._known(order_id, account)
        if not order.is_open:
            raise OrderClosedError(order_id)
        self._finish(order, PaperStatus.CANCELED, self.now_us)
        return order

    def _request_cancel(self, order: Order) -> None:
        if order.status is not PaperStatus.PENDING_CANCEL:
            order.set_status(PaperStatus.PENDING_CANCEL, self.now_us)
            self._emit(TradeEvent.PENDING_CANCEL, order, self.now_us)
            due = self.now_us + self._delay_us(self.config.cancel_delay_ms)
            if order.awaiting_replace:  # a cancel cannot overtake the order it cancels
                due = max(due, order.ack_due_us or due)
            self._push(due, _Event.CANCEL, order)

    def cancel_all(self, account: str = DEFAULT_ACCOUNT) -> CancelAll:
        """Cancel every open order; those being replaced are refused, not canceled."""
        self.advance()
        canceled: list[Order] = []
        refused: list[Order] = []
        for order in list(self.account(account).open.values()):
            if not order.is_open or self._legs.waiting(order):
                continue  # ended with its sibling, or goes with its entry
            try:
                canceled.append(self.cancel(order.id))
            except NotCancelableError:
                refused.append(order)
        return CancelAll(canceled, refused)

    def force_fill(
        self, order_id: str, qty: Decimal | None = None, price: Decimal | None = None
    ) -> Fill:
        """Fill now, outside the market model; for tests that need an exact fill."""
        self.advance()
        order = self._known(order_id)
        if not order.is_open:
            raise OrderClosedError(order_id)
        if order.status is PaperStatus.DONE_FOR_DAY:
            raise ValueError("order is done_for_day: it trades again at the next open")
        if order.awaiting_replace:
            raise ValueError("order is a replacement not at the venue yet: it cannot trade")
        if order.status is PaperStatus.HELD:
            raise ValueError("order is held: a leg trades once its entry fills or its stop is hit")
        if price is None:
            price = self.book(order.symbol).price
        elif price <= 0:
            raise ValueError("price must be > 0")
        if order.notional is not None:  # what its dollars left buy at this price
            notional.resize(order, price, self.accounts[order.account])
        qty = order.leaves_qty if qty is None else qty
        if not 0 < qty <= order.leaves_qty:
            raise ValueError(f"qty must be > 0 and <= leaves_qty {order.leaves_qty}")
        return self._apply_fill(order, qty, price, self.now_us)

    def forget(self, order_id: str) -> Order:
        """The venue loses the order: unknown from now on, but ground truth keeps it."""
        self.advance()
        order = self._known(order_id)
        del self._by_id[order.id]
        owner = self.accounts[order.account]
        owner.by_client_id.pop(order.client_order_id, None)
        owner.release(order)
        self.book(order.symbol).remove(order)
        order.forgotten = True
        return order

    def set_price(self, symbol: str, price: Decimal) -> None:
        self.advance()
        book = self.book(self.rules_for(symbol).book_symbol(symbol))
        book.price = max(book.tick, price.quantize(book.tick))
        self._match(book)
        self.advance(from_us(self.now_us))  # fills due at once happen at once

    def listing(self, symbol: str) -> Listing | None:
        """The symbol's listing: a dialect's, or one a lister makes when it is first named."""
        found = self.listings.get(symbol)
        if found is None and self.listers:
            for lister in self.listers:
                found = lister(symbol)
                if found is not None:
                    self.listings[symbol] = found
                    break
        return found

    def book(self, symbol: str) -> SymbolBook:
        found = self.books.get(symbol)
        if found is None:
            listing = self.listing(symbol)
            if listing is not None:
                found = self.books[symbol] = SymbolBook(symbol, listing.price)
                found.tick, found.lot = listing.tick, listing.lot
                found.around_the_clock = listing.around_the_clock
                return found
            found = self.books[symbol] = SymbolBook.for_symbol(symbol)
            found.around_the_clock = self.rules.is_crypto(symbol)
        return found

    def _known(self, order_id: str, account: str | None = None) -> Order:
        order = self._by_id.get(order_id)
        if order is None or (account is not None and order.account != account):
            raise UnknownOrderError(order_id)
        return order

    # -- lifecycle -----------------------------------------------------------------------

    def _handle(self, entry: _EventEntry) -> None:
        at, _, event, order, qty, generation, fill = entry
        self.now_us = at
        if event is _Event.PUBLISH:
            assert fill is not None
            self.account(order.account).publish(fill)
            return
        if event is _Event.REPLACE:
            self._on_replace(order, at)
            return
        if event is _Event.SETTLE:
            self._settle(order, at)
            return
        if event is _Event.POST_FEE:
            assert fill is not None
            assert fill.fee is not None
            self.account(order.account).post_fee(fill.fee)
            return
        if order.forgotten or not order.is_open:
            return  # lazy deletion: events of finished orders are dropped here
        if event is _Event.ACK:
            self._on_ack(order, at)
        elif event is _Event.REJECT:
            self._finish(order, PaperStatus.REJECTED, at)
        elif event is _Event.RESUME:
            if generation == order.work_gen and order.status is PaperStatus.SUSPENDED:
                self._back_to_work(order, at)
                self._work_or_rest(order, at)
        elif event is _Event.FILL:
            if generation != order.work_gen:
                return  # scheduled before the close parked the order
            self._fill_part(order, qty, at)
        else:
            self._finish(order, PaperStatus.CANCELED, at)

    def _on_replace(self, new: Order, at: int) -> None:
        """The replacement reaches the venue: it takes the old order's place if that is still
        open (whatever it filled meanwhile stays its own), else it is rejected."""
        new.ack_due_us = None
        assert new.replaces is not None
        old = self.truth_by_id[new.replaces]
        self.accounts[new.account].replacing.pop(new.id, None)
        if old.forgotten or not old.is_open:  # filled, or expired at the close, first
            self._emit(TradeEvent.ORDER_REPLACE_REJECTED, old, at)
            if not new.forgotten and new.is_open:
                self._finish(new, PaperStatus.REJECTED, at)
            return
        old.replaced_by = new.id
        self._finish(old, PaperStatus.REPLACED, at)
        if not new.forgotten and new.is_open:
            self._on_ack(new, at)

    def _on_ack(self, order: Order, at: int) -> None:
        """Routed and new while the market is open (rarely after a pending_new or the like);
        accepted until the open, overnight."""
        order.ack_due_us = None
        # crypto is never closed
        is_open = self.session.is_open or self.book(order.symbol).around_the_clock
        if not order.routed and (is_open or order.tie_us is not None):
            self._resubmit(order, at if order.tie_us is None else order.tie_us)
        if not is_open:
            self._park(order)
            return
        if order.status in _UNACKNOWLEDGED:
            if order.status is PaperStatus.ACCEPTED and self._held(order, at):
                return
            order.set_status(PaperStatus.NEW, at)
            self._emit(TradeEvent.NEW, order, at)  # routed first: the final submitted_at
        self._work_or_rest(order, at)

    def _held(self, order: Order, at: int) -> bool:
        """Rarely the venue takes a while to accept a routed order; a replacement never
        waits here (its REPLACE event already took the ack delay)."""
        if order.replaces is not None:
            return False
        config = self.config
        for status, chance in (
            (PaperStatus.PENDING_NEW, config.p_pending_new),
            (PaperStatus.ACCEPTED_FOR_BIDDING, config.p_accepted_for_bidding),
            (PaperStatus.PENDING_REVIEW, config.p_pending_review),
        ):
            if self._chance(chance):
                order.set_status(status, at)
                if status is PaperStatus.PENDING_NEW:  # the others have no stream event
                    self._emit(TradeEvent.PENDING_NEW, order, at)
                order.ack_due_us = at + self._delay_us(config.rare_status_ms)
                self._push(order.ack_due_us, _Event.ACK, order)
                return True
        return False

    def _back_to_work(self, order: Order, at: int) -> None:
        """Out of done_for_day or suspended: the status its fills say."""
        filled = order.filled_qty > 0
        order.set_status(PaperStatus.PARTIALLY_FILLED if filled else PaperStatus.NEW, at)

    def _settle(self, order: Order, at: int) -> None:
        """A filled order is calculated for a while (Alpaca: settlement pending), then filled
        again; only the first change has an event."""
        if order.forgotten:
            return
        if order.status is PaperStatus.FILLED:
            order.set_status(PaperStatus.CALCULATED, at)
            self._emit(TradeEvent.CALCULATED, order, at)
            self._push(at + self._delay_us(self.config.rare_status_ms), _Event.SETTLE, order)
        elif order.status is PaperStatus.CALCULATED:
            order.set_status(PaperStatus.FILLED, at)

    def _resubmit(self, order: Order, submitted_us: int) -> None:
        """The order is routed: submitted_at becomes final."""
        order.routed = True
        if submitted_us != order.submitted_us:
            self.accounts[order.account].resubmit(order, submitted_us)

    def _park(self, order: Order) -> None:
        """Out of the market until the next open; fills already scheduled become void."""
        order.work_gen += 1
        self.book(order.symbol).remove(order)
        if not order.parked:
            order.parked = True
            self._parked.append(order)

    def _work_or_rest(self, order: Order, at: int) -> None:
        if order.legs:
            self._legs.work_started(order, at)  # an OCO's stop-loss is watched from now on
            if not order.is_open:
                return  # its stop was already crossed: the stop-loss took its place
        book = self.book(order.symbol)
        if self._suspended(order, at):
            return
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

    def _suspended(self, order: Order, at: int) -> bool:
        """Rarely an order is not eligible for trading for a while before it is worked."""
        working = (PaperStatus.NEW, PaperStatus.PARTIALLY_FILLED)
        if order.status not in working or not self._chance(self.config.p_suspended):
            return False
        order.set_status(PaperStatus.SUSPENDED, at)
        self._emit(TradeEvent.SUSPENDED, order, at)
        self._push(at + self._delay_us(self.config.rare_status_ms), _Event.RESUME, order)
        return True

    def _on_trigger(self, order: Order, book: SymbolBook, at: int) -> None:
        if order.status is PaperStatus.HELD:
            self._legs.triggered(order, at)  # a watched stop-loss takes its sibling's place
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
            parts = [order.leaves_qty if order.notional is None else notional.REST]
            if order.time_in_force is TimeInForce.IOC:
                parts = self._parts(order)
            self._fill_part(order, parts[0], at)
        if order.is_open:
            self._finish(order, PaperStatus.CANCELED, at)

    def _match(self, book: SymbolBook) -> None:
        if not self.session.is_open and not book.around_the_clock:
            return  # resting orders wait for the open, whatever the price does overnight
        for order, kind in book.pop_crossed():
            if kind == "stop":
                self._on_trigger(order, book, self.now_us)
            else:
                self._work(order, self.now_us)

    def _work(self, order: Order, at: int) -> None:
        """Schedule the order's fills: one, or 2-4 partials, within the fill delay; rarely the
        order is stopped first (a trade is guaranteed but has not occurred)."""
        if order.status is PaperStatus.NEW and self._chance(self.config.p_stopped):
            order.set_status(PaperStatus.STOPPED, at)
            self._emit(TradeEvent.STOPPED, order, at)
        end = at + self._delay_us(self.config.fill_delay_ms)
        parts = self._parts(order)
        times = [*sorted(self._rng.randint(at, end) for _ in parts[1:]), end]
        for due, qty in zip(times, parts, strict=True):
            self._push(due, _Event.FILL, order, qty)

    def _split(self, qty: Decimal, lot: Decimal | None = None) -> list[Decimal]:
        """Cut ``qty`` into 1 part, or 2-4 with the partial-fill probability (in whole
        ``lot``s when the symbol's listing names one)."""
        if self._rng.random() >= self.config.partial_fill_probability:
            return [qty]
        unit = Decimal(1) if qty == qty.to_integral_value() else (lot or QTY_QUANTUM)
        units = int(qty / unit)
        pieces = min(self._rng.randint(2, 4), units)
        if pieces <= 1:
            return [qty]
        bounds = [0, *sorted(self._rng.sample(range(1, units), pieces - 1)), units]
        return [(hi - lo) * unit for lo, hi in pairwise(bounds)]

    def _parts(self, order: Order) -> list[Decimal]:
        """The parts to fill: quantities, or a notional order's dollars (its last part
        spends what is left)."""
        listing = self.listings.get(order.symbol)
        if listing is not None and listing.whole_fills and order.notional is None:
            return [order.leaves_qty]
        if order.notional is None:
            return self._split(order.leaves_qty, self.book(order.symbol).lot)
        return notional.parts(self._split(notional.whole_cents(order)))

    def _fill_part(self, order: Order, part: Decimal, at: int) -> None:
        """Fill one scheduled part now, as far as the order still takes it."""
        if order.notional is None:
            qty = min(part, order.leaves_qty)
            if qty > 0:
                self._apply_fill(order, qty, self._fill_price(order), at)
            return
        price = self._fill_price(order)
        qty = notional.part_qty(order, part, price, self.accounts[order.account])
        if qty > 0:
            self._apply_fill(order, qty, price, at)

    def _fill_price(self, order: Order) -> Decimal:
        """The market price with up to a cent of slippage, never worse than a limit."""
        book = self.book(order.symbol)
        price = max(book.tick, book.price + self._rng.randint(-1, 1) * book.tick)
        if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and order.limit_price:
            if order.side is Side.BUY:
                return min(price, order.limit_price)
            return max(price, order.limit_price)
        return price

    def _apply_fill(self, order: Order, qty: Decimal, price: Decimal, at: int) -> Fill:
        """The order changes at once; its FILL activity may be listed only later."""
        owner = self.accounts[order.account]
        canceling = order.status is PaperStatus.PENDING_CANCEL
        order.filled_qty += qty
        order.filled_notional += qty * price
        owner.reserve(order, -qty)
        if order.leaves_qty == 0:
            order.filled_us = at
            self._close(order)
            order.set_status(PaperStatus.FILLED, at)
            if self._chance(self.config.p_calculated):
                due = at + self._delay_us(self.config.rare_status_ms)
                self._push(due, _Event.SETTLE, order)
        elif order.status in _UNFILLED:
            order.set_status(PaperStatus.PARTIALLY_FILLED, at)
        else:
            order.updated_us = at
        delay = max(0, self.activity_delay_us())
        fill_id = self._fill_id(at)
        rules = self.rules_for(order.symbol)
        fee = rules.fee(FillDraft(order, fill_id, qty, price, at), self._market)
        fill = Fill(
            id=fill_id,
            order=order,
            qty=qty,
            price=price,
            time_us=at,
            cum_qty=order.filled_qty,
            leaves_qty=order.leaves_qty,
            order_status=order.status,
            visible_us=at + delay,
            fee=fee,
        )
        order.fills.append(fill)
        self.fills.append(fill)
        rules.settle(owner.ledger, fill, self.price_of)
        if fill.fee is not None:  # its activity is posted later, or at once without a delay
            if fill.fee.posted_us > at:
                self._push(fill.fee.posted_us, _Event.POST_FEE, order, fill=fill)
            else:
                owner.post_fee(fill.fee)
        if delay:
            self._push(fill.visible_us, _Event.PUBLISH, order, fill=fill)
        else:
            owner.publish(fill)
        if self.listeners:
            event = TradeEvent.FILL if fill.is_final else TradeEvent.PARTIAL_FILL
            position = owner.long_qty(rules.position_of(order))
            self._emit(event, order, at, fill=fill, position_qty=position)
            if canceling and fill.is_final:  # the fill beat the cancel: it is refused
                self._emit(TradeEvent.ORDER_CANCEL_REJECTED, order, at)
        if order.order_class != "simple":
            self._legs.filled(order, fill, at)  # legs activated, or the sibling canceled
        return fill

    def _finish(self, order: Order, status: PaperStatus, at: int) -> None:
        self._close(order)
        if status is PaperStatus.CANCELED:
            order.canceled_us = at
        elif status is PaperStatus.EXPIRED:
            order.expired_us = at
        elif status is PaperStatus.REJECTED:
            order.failed_us = at
        elif status is PaperStatus.REPLACED:
            order.replaced_us = at
        order.set_status(status, at)
        self._emit(_FINISH_EVENTS[status], order, at)
        if order.legs:
            self._legs.finished(order, status, at)  # an entry's end takes its held legs

    def _close(self, order: Order) -> None:
        self.book(order.symbol).remove(order)
        self.accounts[order.account].release(order)

    # -- helpers -------------------------------------------------------------------------

    def _emit(
        self,
        event: TradeEvent,
        order: Order,
        at: int,
        *,
        fill: Fill | None = None,
        position_qty: Decimal | None = None,
    ) -> None:
        """Tell the listeners; an order the venue forgot has no events (GET cannot find it)."""
        if not self.listeners or order.forgotten:
            return
        record = OrderEvent(event, order, at, fill, position_qty)
        for listener in self.listeners:
            listener(record)

    def _push(
        self,
        at: int,
        event: _Event,
        order: Order,
        qty: Decimal = _NO_QTY,
        *,
        fill: Fill | None = None,
    ) -> None:
        entry = (at, next(self._event_seq), event, order, qty, order.work_gen, fill)
        heapq.heappush(self._events, entry)

    def _delay_us(self, bounds_ms: tuple[int, int]) -> int:
        return self._rng.randint(bounds_ms[0] * 1000, bounds_ms[1] * 1000)

    def _chance(self, probability: float) -> bool:
        """A draw only when the chance is on, so seeds give what they gave before."""
        return probability > 0 and self._rng.random() < probability

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _fill_id(self, at: int) -> str:
        """Alpaca's ``<YYYYMMDDhhmmssSSS>::<uuid4>``, the time in US Eastern: fills in one
        millisecond sort by their random uuid, not by arrival."""
        return f"{wall_stamp(eastern_wall(at))}::{self._uuid()}"
