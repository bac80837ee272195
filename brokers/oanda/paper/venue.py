"""What OANDA keeps beside the engine: per account its balance in the home currency, one
increasing transaction id counter (an order's id is its create transaction's, a trade's its
opening fill's), its orders, and its open trades, netted first in first out per instrument
as OANDA's US (FIFO) accounts are.

The engine runs the orders (under the account ``oanda:<account id>``); this venue hears of
every fill and end through the engine's listeners and writes the transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from brokers.oanda.paper.instruments import HOME, INSTRUMENTS, Instrument
from brokers.paper.engine import Engine
from brokers.paper.events import OrderEvent
from brokers.paper.model import Fill, Order

PREFIX = "oanda:"
MONEY = Decimal("0.0001")  # OANDA states home currency amounts to four places
STARTING_BALANCE = Decimal(100_000)
Json = dict[str, object]


def engine_account(account_id: str) -> str:
    return PREFIX + account_id


def money(value: Decimal) -> str:
    return f"{value.quantize(MONEY, ROUND_HALF_UP):f}"


@dataclass(slots=True)
class Transaction:
    id: int
    time_us: int
    body: Json  # every field but id and time, as OANDA names them


@dataclass(slots=True, eq=False)
class Trade:
    id: int
    instrument: Instrument
    price: Decimal
    open_us: int
    initial_units: Decimal  # signed
    units: Decimal  # signed, what is left open
    realized: Decimal = Decimal(0)  # home currency
    closing_ids: list[int] = field(default_factory=list)  # the fills that closed units of it
    closed_value: Decimal = Decimal(0)  # sum of units closed * price, for averageClosePrice
    close_us: int | None = None  # when its last unit was closed

    @property
    def state(self) -> str:
        return "OPEN" if self.units else "CLOSED"


@dataclass(frozen=True, slots=True)
class Terms:
    """An order's terms as OANDA took them."""

    kind: str  # MARKET, LIMIT, STOP, MARKET_IF_TOUCHED
    instrument: Instrument
    units: Decimal  # signed
    price: Decimal | None
    time_in_force: str
    position_fill: str
    client_id: str | None


@dataclass(slots=True, eq=False)
class OandaOrder:
    id: int
    terms: Terms
    create_us: int
    engine_order: Order | None = None
    state: str = "PENDING"
    filling_ids: list[int] = field(default_factory=list)
    filled_us: int | None = None
    trade_opened: int | None = None
    trades_closed: list[int] = field(default_factory=list)
    trade_reduced: int | None = None
    cancelling_id: int | None = None
    cancelled_us: int | None = None
    replaces: int | None = None
    replaced_by: int | None = None

    @property
    def forgotten(self) -> bool:
        return self.engine_order is not None and self.engine_order.forgotten


@dataclass(slots=True)
class OandaAccount:
    id: str
    balance: Decimal = STARTING_BALANCE
    created_us: int = 0
    pl: Decimal = Decimal(0)
    transactions: list[Transaction] = field(default_factory=list)
    orders: dict[int, OandaOrder] = field(default_factory=dict)
    by_client_id: dict[str, OandaOrder] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)  # open ones, oldest first
    closed_trades: list[Trade] = field(default_factory=list)
    # Told of each transaction as it is made (the transaction stream's hub).
    notify: Callable[[OandaAccount, Transaction], None] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def last_id(self) -> int:
        return self.transactions[-1].id if self.transactions else 0

    def add(self, at_us: int, body: Json) -> Transaction:
        made = Transaction(self.last_id + 1, at_us, {"accountID": self.id, "userID": 1, **body})
        made.body.setdefault("batchID", str(made.id))
        self.transactions.append(made)
        if self.notify is not None:
            self.notify(self, made)
        return made

    def known(self, order_id: int) -> OandaOrder | None:
        found = self.orders.get(order_id)
        return None if found is None or found.forgotten else found

    def open_units(self, instrument: str) -> Decimal:
        return sum((t.units for t in self.trades if t.instrument.name == instrument), Decimal(0))


class OandaVenue:
    def __init__(self, engine: Engine, tokens: dict[str, tuple[str, ...]]) -> None:
        self.engine = engine
        self.tokens = dict(tokens)  # token -> the account ids it opens; none: open mode
        for instrument in INSTRUMENTS.values():
            engine.listings[instrument.engine_symbol] = instrument.listing
        engine.listeners.append(self.on_event)
        # Told of every account's transactions as they are made, in id order.
        self.listeners: list[Callable[[OandaAccount, Transaction], None]] = []
        self._batch: int | None = None
        self.pending: tuple[OandaAccount, OandaOrder] | None = None  # being submitted
        self.reset()

    def reset(self) -> None:
        self.accounts: dict[str, OandaAccount] = {}
        self.by_engine_id: dict[str, tuple[OandaAccount, OandaOrder]] = {}

    @property
    def open_mode(self) -> bool:
        return not self.tokens

    def account(self, account_id: str) -> OandaAccount:
        """Opened on first use, as OANDA's first two transactions show it: CREATE, then a
        deposit of the starting balance."""
        found = self.accounts.get(account_id)
        if found is None:
            now = self.engine.now_us
            found = self.accounts[account_id] = OandaAccount(
                account_id, created_us=now, notify=self._made
            )
            found.add(
                now,
                {
                    "type": "CREATE",
                    "divisionID": 1,
                    "siteID": 101,
                    "accountUserID": 1,
                    "accountNumber": 1,
                    "homeCurrency": HOME,
                },
            )
            found.add(
                now,
                {
                    "type": "TRANSFER_FUNDS",
                    "amount": money(found.balance),
                    "fundingReason": "CLIENT_FUNDING",
                    "accountBalance": money(found.balance),
                },
            )
        return found

    def _made(self, account: OandaAccount, made: Transaction) -> None:
        for listener in self.listeners:
            listener(account, made)

    # -- prices -----------------------------------------------------------------------------

    def price(self, instrument: Instrument) -> Decimal:
        return self.engine.price_of(instrument.engine_symbol)

    def to_home(self, amount: Decimal, instrument: Instrument) -> Decimal:
        """An amount in the instrument's quote currency in the home currency (USD): JPY at
        the USD_JPY price of the moment."""
        if instrument.quote == HOME:
            return amount
        if instrument.base == HOME:
            return amount / self.price(instrument)
        raise ValueError(f"no conversion from {instrument.quote} to {HOME}")

    def margin_of(self, instrument: Instrument, units: Decimal) -> Decimal:
        value = abs(units) * self.price(instrument) * instrument.margin_rate
        return value / self.price(instrument) if instrument.base == HOME else value

    def margin_used(self, account: OandaAccount) -> Decimal:
        return sum((self.margin_of(t.instrument, t.units) for t in account.trades), Decimal(0))

    def unrealized(self, trade: Trade) -> Decimal:
        return self.to_home(
            (self.price(trade.instrument) - trade.price) * trade.units, trade.instrument
        )

    def nav(self, account: OandaAccount) -> Decimal:
        return account.balance + sum((self.unrealized(t) for t in account.trades), Decimal(0))

    def margin_short(self, account: OandaAccount, instrument: Instrument, units: Decimal) -> bool:
        """Whether a fill of ``units`` now would need more margin than is available."""
        held = account.open_units(instrument.name)
        extra = self.margin_of(instrument, held + units) - self.margin_of(instrument, held)
        return extra > 0 and extra > self.nav(account) - self.margin_used(account)

    # -- orders -----------------------------------------------------------------------------

    def keep(self, account: OandaAccount, order: OandaOrder) -> None:
        account.orders[order.id] = order
        if order.terms.client_id is not None:
            account.by_client_id[order.terms.client_id] = order
        if order.engine_order is not None:
            self.by_engine_id[order.engine_order.id] = (account, order)

    @contextmanager
    def batch(self, batch_id: int) -> Iterator[None]:
        """Transactions made inside are of the batch that made ``batch_id``."""
        self._batch = batch_id
        try:
            yield
        finally:
            self._batch = None

    def cancel(
        self, account: OandaAccount, order: OandaOrder, reason: str, at_us: int, **extra: object
    ) -> Transaction:
        body: Json = {"type": "ORDER_CANCEL", "orderID": str(order.id), "reason": reason, **extra}
        if order.terms.client_id is not None:
            body["clientOrderID"] = order.terms.client_id
        if self._batch is not None:
            body["batchID"] = str(self._batch)
        made = account.add(at_us, body)
        order.state, order.cancelling_id, order.cancelled_us = "CANCELLED", made.id, at_us
        return made

    def on_event(self, event: OrderEvent) -> None:
        """A fill writes an ORDER_FILL; an end the venue did not ask for (a day order's
        expiry) an ORDER_CANCEL."""
        found = self.by_engine_id.get(event.order.id)
        if found is None and self.pending is not None:  # it fills inside the engine's submit
            found, self.pending = self.pending, None
            found[1].engine_order = event.order
            self.keep(*found)
        if found is None:
            return
        account, order = found
        if event.fill is not None:
            self._fill(account, order, event.fill)
        elif not event.order.is_open and order.state == "PENDING":
            self.cancel(account, order, "TIME_IN_FORCE_EXPIRED", event.at_us)

    def _fill(self, account: OandaAccount, order: OandaOrder, fill: Fill) -> None:
        instrument = order.terms.instrument
        units = fill.qty if order.terms.units > 0 else -fill.qty
        fill_id = account.last_id + 1
        closed, reduced, left, pl = self._net(account, instrument, units, fill.price,
                                              (fill_id, fill.time_us))  # fmt: skip
        account.balance += pl
        account.pl += pl
        body: Json = {
            "type": "ORDER_FILL",
            "orderID": str(order.id),
            "instrument": instrument.name,
            "units": instrument.units_str(units),
            "price": instrument.price_str(fill.price),
            "fullVWAP": instrument.price_str(fill.price),
            "fullPrice": {
                "type": "PRICE",
                "closeoutBid": instrument.price_str(fill.price),
                "closeoutAsk": instrument.price_str(fill.price),
                "bids": [{"price": instrument.price_str(fill.price), "liquidity": "10000000"}],
                "asks": [{"price": instrument.price_str(fill.price), "liquidity": "10000000"}],
            },
            "reason": f"{order.terms.kind}_ORDER",
            "pl": money(pl),
            "quotePL": money(pl),
            "financing": money(Decimal(0)),
            "baseFinancing": "0",
            "commission": money(Decimal(0)),
            "guaranteedExecutionFee": money(Decimal(0)),
            "halfSpreadCost": money(Decimal(0)),
            "accountBalance": money(account.balance),
        }
        if order.terms.client_id is not None:
            body["clientOrderID"] = order.terms.client_id
        if self._batch is not None:
            body["batchID"] = str(self._batch)
        if closed:
            body["tradesClosed"] = [
                self._leg(t, u, instrument, fill.price, p) for t, u, p in closed
            ]
            order.trades_closed.extend(t.id for t, _, _ in closed)
        if reduced is not None:
            body["tradeReduced"] = self._leg(
                *reduced[:1], reduced[1], instrument, fill.price, reduced[2]
            )
            order.trade_reduced = reduced[0].id
        if left != 0:
            trade = Trade(fill_id, instrument, fill.price, fill.time_us, left, left)
            account.trades.append(trade)
            body["tradeOpened"] = {
                "tradeID": str(fill_id),
                "units": instrument.units_str(left),
                "price": instrument.price_str(fill.price),
                "guaranteedExecutionFee": "0.0000",
                "halfSpreadCost": "0.0000",
                "initialMarginRequired": money(self.margin_of(instrument, left)),
            }
            order.trade_opened = fill_id
        made = account.add(fill.time_us, body)
        order.filling_ids.append(made.id)
        if fill.leaves_qty == 0:
            order.state, order.filled_us = "FILLED", fill.time_us

    @staticmethod
    def _leg(
        trade: Trade, units: Decimal, instrument: Instrument, price: Decimal, pl: Decimal
    ) -> Json:
        return {
            "tradeID": str(trade.id),
            "units": instrument.units_str(units),
            "price": instrument.price_str(price),
            "realizedPL": money(pl),
            "financing": "0.0000",
            "baseFinancing": "0",
            "guaranteedExecutionFee": "0.0000",
            "halfSpreadCost": "0.0000",
        }

    def _net(
        self,
        account: OandaAccount,
        instrument: Instrument,
        units: Decimal,
        price: Decimal,
        fill: tuple[int, int],
    ) -> tuple[
        list[tuple[Trade, Decimal, Decimal]],
        tuple[Trade, Decimal, Decimal] | None,
        Decimal,
        Decimal,
    ]:
        """Close the instrument's opposite trades oldest first: those closed (trade, signed
        units, realized P&L), the one reduced, the units left to open, the total P&L.
        ``fill`` is the closing fill's (transaction id, time)."""
        closed: list[tuple[Trade, Decimal, Decimal]] = []
        reduced = None
        total = Decimal(0)
        left = units
        for trade in [t for t in account.trades if t.instrument is instrument]:
            if left == 0 or (trade.units > 0) == (left > 0):
                break
            take = min(abs(trade.units), abs(left))
            signed = take if trade.units < 0 else -take  # the closing units, as OANDA signs
            pl = self.to_home((price - trade.price) * -signed, instrument).quantize(
                MONEY, ROUND_HALF_UP
            )
            trade.units += signed
            trade.realized += pl
            trade.closing_ids.append(fill[0])
            trade.closed_value += take * price
            total += pl
            left -= signed
            if trade.units == 0:
                trade.close_us = fill[1]
                account.trades.remove(trade)
                account.closed_trades.append(trade)
                closed.append((trade, signed, pl))
            else:
                reduced = (trade, signed, pl)
        return closed, reduced, left, total
