"""The normalized reports every broker adapter returns and the requests it takes.

Nothing above an adapter sees broker JSON: only these frozen dataclasses, with ``Decimal``
money and timezone-aware UTC times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeVar

from core.enums import Intent, OrderClass, OrderStatus, OrderType, Side, TimeInForce

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PlaceOrderRequest:
    """What ordersync asks a broker to do; validated before it gets here."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal | None  # None for a notional order
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    # Exit legs the broker creates with the order (see OrderClass); validated upstream.
    order_class: OrderClass = OrderClass.SIMPLE
    take_profit_limit_price: Decimal | None = None
    stop_loss_stop_price: Decimal | None = None
    stop_loss_limit_price: Decimal | None = None
    # A notional order names the amount of money to trade instead of a quantity.
    notional: Decimal | None = None
    # Whether it opens or closes a trade, and the account's position in the symbol as
    # recorded when it is sent: a broker whose sides say so (Tradier) needs them.
    intent: Intent | None = None
    held: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ReplaceOrderRequest:
    """The whole replacing order's terms (what changes and what stays): the broker makes a
    new order, with ``client_order_id``, in place of the working one."""

    client_order_id: str
    quantity: Decimal
    time_in_force: TimeInForce
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class FillReport:
    """One execution. ``broker_fill_id`` is unique per order at the broker."""

    broker_fill_id: str
    broker_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    filled_at: datetime
    fee: Decimal = Decimal(0)  # money, in the symbol's quote currency
    # A fee the broker took in the asset traded (Binance's commission in the base asset of
    # a buy): the position gets ``quantity`` less this.
    fee_quantity: Decimal = Decimal(0)
    # A fee in a third asset (Binance's commission in BNB): not money here, kept per account.
    fee_asset: str | None = None
    fee_asset_amount: Decimal = Decimal(0)
    client_order_id: str | None = None
    # The order's filled quantity with this execution: what a broker's listing and its
    # stream both carry, so one execution seen by both is recorded once.
    cum_quantity: Decimal | None = None
    # The broker's own record of the execution, for what the fields above do not carry
    # (OANDA's trades opened and closed with their realized P&L and financing).
    raw: dict[str, object] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FeeReport:
    """A fee the broker posted apart from the fills (Alpaca's crypto ``CFEE``), with no
    order named. ``symbol`` set: ``quantity`` of that position's asset was taken, worth
    ``amount`` at ``price``; unset: ``amount`` was taken in cash. ``amount`` is > 0."""

    broker_fee_id: str
    symbol: str | None
    quantity: Decimal | None
    price: Decimal | None
    amount: Decimal
    currency: str
    posted_at: datetime
    description: str = ""


@dataclass(frozen=True, slots=True)
class OrderReport:
    """The broker's view of one order at ``updated_at``.

    ``filled_quantity`` and ``average_fill_price`` are the broker's cumulative figures;
    ``fills`` carries individual executions only where the broker gives them inline.
    """

    broker_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal | None  # None for a notional order (``notional`` set) the broker sizes
    status: OrderStatus
    raw_status: str
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    created_at: datetime
    updated_at: datetime | None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    submitted_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    fees: Decimal | None = None
    replaced_by: str | None = None  # broker order id of the order that took its place
    replaces: str | None = None  # broker order id of the order this one took the place of
    reject_reason: str | None = None
    fills: tuple[FillReport, ...] = ()
    order_class: OrderClass = OrderClass.SIMPLE
    legs: tuple[OrderReport, ...] = ()  # orders the broker made with this one (exit legs)
    notional: Decimal | None = None  # the amount of money ordered, for a notional order
    # False where the report does not state what was ordered (Coinbase's user channel gives
    # filled and left, not the order's size or notional): its quantity is not compared.
    states_terms: bool = True
    raw: dict[str, object] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One order update from a broker's stream: the order as it stands after it, and the
    execution when the update is one. ``kind`` is the broker's own event name."""

    kind: str
    report: OrderReport
    at: datetime
    event_id: str | None = None
    fill: FillReport | None = None
    # The account (our name) it is of, where one connection carries several accounts'
    # events (a Tradier token's); None: the connection's own account.
    account: str | None = None


@dataclass(frozen=True, slots=True)
class PositionReport:
    symbol: str
    quantity: Decimal  # signed: negative is short
    average_entry_price: Decimal | None


@dataclass(frozen=True, slots=True)
class BrokerTradeReport:
    """A trade as a broker that keeps its own trades (OANDA, FIFO per instrument) sees it:
    what it realized, and the fills (by ``broker_fill_id``) that closed it."""

    trade_id: str  # the id of the fill that opened it
    symbol: str
    state: str  # the broker's: OPEN, CLOSED, ...
    closed: bool
    initial_quantity: Decimal  # unsigned: what the opening fill opened
    realized_pnl: Decimal  # of the closed part, before commission and financing
    financing: Decimal
    # The unit ``realized_pnl`` is stated to (OANDA: 0.0001 of the home currency); each
    # closing fill's share of it was rounded to that once.
    pnl_quantum: Decimal
    # False where the broker states ``realized_pnl`` in another currency than the symbol's
    # quote currency (USD_JPY in a USD account): not comparable with notionals.
    pnl_in_quote: bool
    closing_fill_ids: tuple[str, ...]
    opened_at: datetime
    closed_at: datetime | None = None
    raw: dict[str, object] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MalformedItem:
    """An item of a list answer that could not be read; kept so it is never silently lost."""

    reason: str
    raw: object


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list answer. ``next_token`` is opaque; ``None`` means the last page."""

    items: tuple[T, ...]
    next_token: str | None = None
    malformed: tuple[MalformedItem, ...] = ()
