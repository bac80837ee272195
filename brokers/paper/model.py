"""Orders and fills as the paper exchange holds them.

Times are integer microseconds since the Unix epoch so ordering and ties are exact; they
become RFC3339 strings only on the wire.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

from core.enums import OrderType, Side, TimeInForce

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
CENT = Decimal("0.01")
QTY_QUANTUM = Decimal("1e-9")
# No account trades this much: refusing it keeps Decimal arithmetic from overflowing.
TOO_LARGE = Decimal("1e18")
# Alpaca stamps activity ids and reports its clock in New York time (system tz database).
EASTERN = ZoneInfo("America/New_York")


class PaperStatus(StrEnum):
    """Alpaca's status strings, the subset this exchange produces."""

    ACCEPTED = "accepted"
    # Alpaca: these three and stopped, suspended and calculated occur "only on rare
    # occasions"; the engine produces them by chance (EngineConfig.p_*).
    PENDING_NEW = "pending_new"
    ACCEPTED_FOR_BIDDING = "accepted_for_bidding"
    PENDING_REVIEW = "pending_review"
    NEW = "new"
    # An order-class leg not working yet: a bracket's or OTO's exit until its entry fills,
    # and a stop-loss while its take-profit works (Alpaca: "held"; not terminal).
    HELD = "held"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    DONE_FOR_DAY = "done_for_day"
    CALCULATED = "calculated"  # after the last fill, while settlement is calculated
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    REPLACED = "replaced"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        PaperStatus.FILLED,
        PaperStatus.CALCULATED,
        PaperStatus.CANCELED,
        PaperStatus.EXPIRED,
        PaperStatus.REJECTED,
        PaperStatus.REPLACED,
    }
)


class Refusal(Exception):
    """What Alpaca answers instead of taking an order for its terms: status, code, message
    and extra fields (a balance refusal names what is available)."""

    def __init__(
        self, status: int, code: int, message: str, extra: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}


class NotCancelableError(Exception):
    """The order is being replaced, or is a held leg its entry decides: a cancel is refused
    until that is settled."""

    def __init__(self, order_id: str, status: PaperStatus) -> None:
        super().__init__(f"order {order_id} is not cancelable: status is {status.value}")
        self.order_id = order_id
        self.status = status


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch; naive datetimes are refused so no local time leaks in."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return (moment - EPOCH) // ONE_US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def rfc3339(us: int) -> str:
    """Alpaca's timestamp shape: UTC, microseconds, ``Z``."""
    return from_us(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def eastern_wall(us: int) -> datetime:
    """US Eastern wall-clock time, naive: what Alpaca writes into activity ids."""
    return from_us(us).astimezone(EASTERN).replace(tzinfo=None)


def wall_stamp(wall: datetime) -> str:
    """``YYYYMMDDhhmmssSSS``: wall time to the millisecond, so stamps sort as strings."""
    return wall.strftime("%Y%m%d%H%M%S") + f"{wall.microsecond // 1000:03d}"


def eastern_iso(us: int) -> str:
    """RFC3339 with the New York offset, as Alpaca's clock answers."""
    return from_us(us).astimezone(EASTERN).isoformat(timespec="microseconds")


def parse_time(text: str) -> int:
    """Parse an RFC3339 timestamp or a plain date (taken as UTC midnight) into microseconds."""
    text = text.strip()
    if "T" in text:  # an unencoded '+' of an offset arrives in a query as a space
        text = text.replace(" ", "+")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # trim nanoseconds to the microseconds Python can hold
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[:digits][:6] + rest[digits:]
        text = f"{head}.{rest}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_us(moment)


def fmt_decimal(value: Decimal) -> str:
    """A decimal string without exponent or trailing zeros (``10``, ``1.5``)."""
    if value == 0:
        return "0"
    return f"{value.normalize():f}"


def fmt_price(value: Decimal) -> str:
    return f"{value.quantize(CENT):f}"


def initial_price(symbol: str) -> Decimal:
    """A deterministic starting price between 20.00 and 500.00, from the symbol alone."""
    digest = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")
    return Decimal(2000 + digest % 48001) / 100


def asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ordersync-paper:{symbol}"))


# Alpaca's order classes: an order alone, or with exit legs the venue creates with it.
OrderClass = Literal["simple", "bracket", "oco", "oto"]
ORDER_CLASSES: tuple[OrderClass, ...] = ("simple", "bracket", "oco", "oto")


@dataclass(frozen=True, slots=True)
class TakeProfit:
    """``take_profit``: the exit limit order of a bracket, an OTO or an OCO."""

    limit_price: Decimal


@dataclass(frozen=True, slots=True)
class StopLoss:
    """``stop_loss``: the exit stop order; with a limit price it is a stop_limit order."""

    stop_price: Decimal
    limit_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated submission; the app layer does the validating (shape only: the rules that
    depend on the market or the account are the venue's rules')."""

    symbol: str
    qty: Decimal
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: str | None = None
    order_class: OrderClass = "simple"
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None
    # A dollar amount instead of a quantity (brokers.paper.notional): ``qty`` is then what
    # it buys at the price of the moment, and the fills decide the real quantity.
    notional: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderChanges:
    """A ``PATCH /v2/orders/{id}``: each field given overrides the old order's; it refuses
    what no order could take, so the engine only checks what depends on the order."""

    qty: Decimal | None = None
    time_in_force: TimeInForce | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: str | None = None

    def __post_init__(self) -> None:
        prices = (("limit_price", self.limit_price), ("stop_price", self.stop_price))
        given = (self.qty, self.time_in_force, self.client_order_id, *(p for _, p in prices))
        if all(value is None for value in given):
            raise ValueError(
                "nothing to replace: give qty, time_in_force, limit_price, stop_price "
                "or client_order_id"
            )
        qty = self.qty
        if qty is not None and not (qty.is_finite() and qty > 0 and qty == qty.to_integral_value()):
            raise ValueError("qty must be a positive whole number of shares")
        for name, price in prices:
            if price is not None and not (price.is_finite() and price > 0):
                raise ValueError(f"{name} must be a positive decimal")
        for name, value in (("qty", qty), *prices):
            if value is not None and value >= TOO_LARGE:
                raise ValueError(f"{name} must be below {TOO_LARGE:E}")


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution; ``id`` is also the FILL activity id and the activities page token.

    It changes the order at ``time_us`` but its activity is listed only from ``visible_us``.
    """

    id: str
    order: Order
    qty: Decimal
    price: Decimal
    time_us: int
    cum_qty: Decimal
    leaves_qty: Decimal
    order_status: PaperStatus
    visible_us: int
    fee: Fee | None = None  # what the venue's rules took (Alpaca: a crypto fill's)

    @property
    def is_final(self) -> bool:
        return self.leaves_qty == 0


@dataclass(frozen=True, slots=True)
class Fee:
    """One fill's fee: ``amount`` (> 0) of ``asset``, the asset the fill credited; ``price`` is
    the asset's USD price at the fill (None for USD). Its activity is listed from
    ``posted_us`` on, under ``id``."""

    id: str
    fill_id: str
    order: Order
    asset: str
    amount: Decimal
    price: Decimal | None
    time_us: int
    posted_us: int


@dataclass(slots=True, eq=False)
class Order:
    """``submitted_us`` equals ``created_us`` until the order is routed to the market, then
    it is the routing time (the next open, for an order accepted overnight)."""

    id: str
    client_order_id: str
    account: str
    seq: int  # arrival number across the exchange: breaks submitted_at ties in listings
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    qty: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    created_us: int
    submitted_us: int
    status: PaperStatus = PaperStatus.ACCEPTED
    updated_us: int = 0
    filled_us: int | None = None
    expired_us: int | None = None
    canceled_us: int | None = None
    failed_us: int | None = None
    replaced_us: int | None = None
    replaces: str | None = None  # the order this one replaces (PATCH /v2/orders/{id})
    replaced_by: str | None = None  # set only once the replacement took this order's place
    filled_qty: Decimal = Decimal(0)
    filled_notional: Decimal = Decimal(0)
    fills: list[Fill] = field(default_factory=list)
    timeline: list[tuple[PaperStatus, int]] = field(default_factory=list)
    forgotten: bool = False
    routed: bool = False  # submitted_us is final
    parked: bool = False  # waits for the next open to be worked
    work_gen: int = 0  # bumped when parked: fills scheduled before are void
    ack_due_us: int | None = None
    tie_us: int | None = None  # submitted_us to take when routed (p_same_timestamp)
    # Where the order sits in its symbol's book ("limit", "stop") or None; heap entries whose
    # order no longer sits there are stale and skipped (lazy deletion).
    resting: str | None = None
    # Order classes (brokers.paper.legs): a bracket's, OTO's or OCO's orders share the class;
    # legs are orders of their own that name their parent, which lists them.
    order_class: OrderClass = "simple"
    parent_id: str | None = None
    legs: list[Order] = field(default_factory=list)
    reserving: bool = True  # holds buying power while open (a held leg does not)
    # A coin pair's order (the venue's rules say which): trades around the clock, and the
    # rules settle its balances and fees.
    crypto: bool = False
    # A notional order's dollars (brokers.paper.notional): ``qty`` is then the filled
    # quantity plus what the dollars left buy at the last price, and is not shown.
    notional: Decimal | None = None

    @property
    def leaves_qty(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return not self.status.is_terminal

    @property
    def awaiting_replace(self) -> bool:
        """A replacement that has not reached the venue yet: its REPLACE event decides."""
        return self.replaces is not None and self.ack_due_us is not None

    @property
    def avg_price(self) -> Decimal | None:
        if self.filled_qty == 0:
            return None
        return (self.filled_notional / self.filled_qty).quantize(QTY_QUANTUM)

    def set_status(self, status: PaperStatus, at_us: int) -> None:
        """Every status change goes through here so the timeline is complete."""
        self.updated_us = at_us
        if status is not self.status:
            self.status = status
            self.timeline.append((status, at_us))
