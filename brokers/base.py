"""The one interface every broker adapter implements, and the normalized reports it returns.

Nothing above an adapter sees broker JSON: only these frozen dataclasses, with ``Decimal``
money and timezone-aware UTC times. An adapter takes its ``httpx.Client`` in the
constructor so tests can hand it a ``MockTransport`` or point it at the paper exchange.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Generic, Literal, TypeVar

from models.enums import OrderClass, OrderStatus, OrderType, Side, TimeInForce

ListStatus = Literal["open", "closed", "all"]
# Told of every HTTP attempt: (endpoint label such as "GET /v2/orders/{id}", the status code
# or None when no answer came, seconds). Adapters stay free of metrics libraries.
RequestObserver = Callable[[str, int | None, float], None]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PlaceOrderRequest:
    """What ordersync asks a broker to do; validated before it gets here."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    # Exit legs the broker creates with the order (see OrderClass); validated upstream.
    order_class: OrderClass = OrderClass.SIMPLE
    take_profit_limit_price: Decimal | None = None
    stop_loss_stop_price: Decimal | None = None
    stop_loss_limit_price: Decimal | None = None


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
    fee: Decimal = Decimal(0)
    client_order_id: str | None = None
    # The order's filled quantity with this execution: what a broker's listing and its
    # stream both carry, so one execution seen by both is recorded once.
    cum_quantity: Decimal | None = None


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
    quantity: Decimal
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


@dataclass(frozen=True, slots=True)
class PositionReport:
    symbol: str
    quantity: Decimal  # signed: negative is short
    average_entry_price: Decimal | None


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


class BrokerAdapter(abc.ABC):
    """Submit, look up, list, cancel; each method returns normalized reports or raises a
    ``brokers.errors.BrokerError`` subclass."""

    kind: str
    # False for a broker with no executions endpoint: fills are then derived from its
    # cumulative order figures (models.reconciliation.derived_fill).
    lists_fills: ClassVar[bool] = True

    @abc.abstractmethod
    def place(self, request: PlaceOrderRequest) -> OrderReport:
        """Submit once. Raises ``AnswerLost`` when the outcome is unknown: never resubmit
        before a lookup by client order id."""

    @abc.abstractmethod
    def get_order(self, broker_order_id: str) -> OrderReport: ...

    @abc.abstractmethod
    def get_order_by_client_id(self, client_order_id: str) -> OrderReport: ...

    @abc.abstractmethod
    def list_orders(
        self,
        *,
        status: ListStatus = "all",
        after: datetime | None = None,
        until: datetime | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> Page[OrderReport]:
        """Orders submitted in (after, until), oldest first, one page per call."""

    @abc.abstractmethod
    def replace(self, broker_order_id: str, request: ReplaceOrderRequest) -> OrderReport:
        """Replace a working order; returns the new order's report. Like ``place``: an
        unknown outcome is ``AnswerLost`` (look the new client order id up), a refusal is
        ``OrderRejected``. Success does not mean the old order was replaced: it may fill
        first, and then the broker rejects the new one."""

    @abc.abstractmethod
    def cancel(self, broker_order_id: str) -> None:
        """Request a cancel; the outcome arrives as a later report (cancels race fills)."""

    @abc.abstractmethod
    def list_fills(
        self,
        *,
        after: datetime | None = None,
        until: datetime | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> Page[FillReport]:
        """Account executions in (after, until), oldest first, one page per call."""

    @abc.abstractmethod
    def fill_cursor(self, fill: FillReport) -> str:
        """A ``list_fills`` page token that continues right after ``fill``."""

    @abc.abstractmethod
    def list_positions(self) -> list[PositionReport]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the adapter's resources (an owned client)."""
