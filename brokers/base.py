"""The one interface every broker adapter implements.

An adapter returns the normalized reports of ``core.reports``, never broker JSON, and takes
its ``httpx.Client`` in the constructor so tests can hand it a ``MockTransport`` or point it
at the paper exchange.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import ClassVar, Literal, Self

from core.reports import (
    BrokerTradeReport,
    FeeReport,
    FillReport,
    OrderReport,
    Page,
    PlaceOrderRequest,
    PositionReport,
    ReplaceOrderRequest,
    StreamEvent,
)

ListStatus = Literal["open", "closed", "all"]
# Told of every HTTP attempt: (endpoint label such as "GET /v2/orders/{id}", the status code
# or None when no answer came, seconds). Adapters stay free of metrics libraries.
RequestObserver = Callable[[str, int | None, float], None]


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """A response's rate-limit figures as the broker states them, so a shared budget can learn.

    On a 429 without a reset time, ``reset_at`` comes from ``Retry-After``.
    """

    limit: int | None
    remaining: int | None
    reset_at: datetime | None
    status_code: int
    window_s: float = 60.0  # what ``limit`` and ``remaining`` count over (Coinbase: a second)


class BrokerAdapter(abc.ABC):
    """Submit, look up, list, cancel; each method returns normalized reports or raises a
    ``brokers.errors.BrokerError`` subclass."""

    kind: str
    # False for a broker with no executions endpoint: fills are then derived from its
    # cumulative order figures (models.reconciliation.derived_fill).
    lists_fills: ClassVar[bool] = True
    # True for a broker that posts some fees later and apart from the fills (``list_fees``).
    lists_fees: ClassVar[bool] = False
    # True for a broker that lists orders and fills one symbol at a time (Binance): its
    # ``list_orders`` and ``list_fills`` cover only the ``symbols`` they are given.
    lists_by_symbol: ClassVar[bool] = False
    # The broker refuses a client order id used before, whatever became of its order (or
    # answers with that order): sending a placement again can never make a second order.
    # Binance takes an id again once its order has closed: a resend is looked up first.
    refuses_reused_client_ids: ClassVar[bool] = True
    # True for a broker whose positions are its asset balances ("BTC"), cash included: a
    # balance of an asset none of our symbols trades is not ours to compare.
    positions_by_asset: ClassVar[bool] = False
    # True for a broker that keeps trades of its own, each opened by one fill (OANDA):
    # ``get_trades`` reads them, so the deep run can compare their realized P&L with ours.
    reports_trades: ClassVar[bool] = False

    @abc.abstractmethod
    def place(self, request: PlaceOrderRequest) -> OrderReport:
        """Submit once. Raises ``AnswerLost`` when the outcome is unknown: never resubmit
        before a lookup by client order id."""

    @abc.abstractmethod
    def get_order(self, broker_order_id: str) -> OrderReport: ...

    @abc.abstractmethod
    def get_order_by_client_id(
        self, client_order_id: str, *, symbol: str | None = None
    ) -> OrderReport:
        """The order submitted with this client id; how a lost placement answer is resolved.
        ``symbol`` is the order's, for brokers that look orders up within a symbol."""

    @abc.abstractmethod
    def list_orders(
        self,
        *,
        status: ListStatus = "all",
        after: datetime | None = None,
        until: datetime | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        symbols: Sequence[str] = (),
    ) -> Page[OrderReport]:
        """Orders submitted in (after, until), oldest first, one page per call; of
        ``symbols`` only where the broker ``lists_by_symbol``."""

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
        symbols: Sequence[str] = (),
    ) -> Page[FillReport]:
        """Account executions in (after, until), oldest first, one page per call; of
        ``symbols`` only where the broker ``lists_by_symbol``."""

    @abc.abstractmethod
    def fill_cursor(self, fill: FillReport) -> str:
        """A ``list_fills`` page token that continues right after ``fill``."""

    @abc.abstractmethod
    def list_positions(self) -> list[PositionReport]: ...

    def holding_of(self, symbol: str) -> str:
        """The name under which ``list_positions`` reports what ``symbol`` trades: the symbol
        itself, or its base asset where positions are asset balances (BTCUSDT -> BTC)."""
        return symbol

    def quoted_in(self, symbol: str) -> str | None:
        """The holding ``symbol`` pays with, where positions are asset balances (BTCUSDT ->
        USDT): trading it moves that balance too. None where positions are per symbol."""
        return None

    def list_fees(
        self,
        *,
        after: datetime | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> Page[FeeReport]:
        """Fees posted apart from the fills in (after, now], oldest first, one page per call;
        none where a broker charges its fees on the fills (``lists_fees`` False)."""
        return Page(items=())

    def get_trades(self, trade_ids: Sequence[str]) -> Page[BrokerTradeReport]:
        """The broker's trades with these ids, open or closed; an id it does not know is
        left out. Only where ``reports_trades``: other brokers keep no trades."""
        raise NotImplementedError(f"{self.kind} keeps no trades of its own")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the adapter's resources (an owned client)."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A stream frame or event that could not be read: kept so it is never silently lost."""

    reason: str
    excerpt: str


class OrderStream(abc.ABC):
    """One authenticated connection to a broker's order-update stream; ``events`` yields
    what arrives, and None after ``idle_s`` of silence so the caller can look around."""

    @abc.abstractmethod
    def open(self) -> None:
        """Connect, authenticate and subscribe; AuthenticationFailed, BrokerUnavailable."""

    @abc.abstractmethod
    def events(self, idle_s: float) -> Iterator[StreamEvent | Unreadable | None]:
        """What arrives, in order; None after ``idle_s`` without a frame. Ends with
        BrokerUnavailable when the connection is lost."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        try:
            self.open()
        except BaseException:
            self.close()  # what ``open`` made before it failed (an owned REST client)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self.close()
