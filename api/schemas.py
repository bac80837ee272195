"""The API's JSON shapes. Money and quantities travel as decimal strings, times as ISO 8601
with their UTC offset; unknown fields in a request are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from core.enums import (
    Intent,
    OrderClass,
    OrderOrigin,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)

Money = Annotated[
    Decimal,
    PlainSerializer(lambda v: format(v, "f"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["187.25"]}),
]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError("out of range once in UTC") from None


# A time in a request: with its UTC offset, and in range once in UTC (the database's zone).
UtcTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Problem(BaseModel):
    """One thing wrong with the input."""

    where: str = Field(description='e.g. "query.limit", "path.order_id", "quantity" (a body '
                       'field); "" for the body as a whole.')  # fmt: skip
    message: str
    type: str = Field(description='What kind of problem, e.g. "missing", "extra_forbidden".')


class ErrorOut(BaseModel):
    """Every error: what is wrong, in words; for bad input, each problem with its place."""

    detail: str
    errors: list[Problem] | None = Field(default=None, description="For invalid input (422).")


class OrderOut(Out):
    order_id: str
    account: str
    client_order_id: str
    broker_order_id: str | None
    origin: OrderOrigin
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    order_class: OrderClass = Field(description="simple, or bracket, oco or oto with exit legs.")
    quantity: Money | None = Field(description="Null for a notional order: the broker sizes it "
                                   "(what it filled is `filled_quantity`).")  # fmt: skip
    notional: Money | None = Field(
        default=None, description="The amount of money a notional order is for; null otherwise."
    )
    limit_price: Money | None
    stop_price: Money | None
    requested_price: Money | None
    status: OrderStatus
    raw_status: str | None = Field(description="The broker's own status string.")
    filled_quantity: Money = Field(description="The sum of the recorded fills.")
    broker_filled_quantity: Money = Field(description="What the broker reports filled.")
    average_fill_price: Money | None
    fees: Money
    intent: Intent | None
    decision_id: str | None
    trade_id: str | None
    anomaly_count: int
    last_error: str | None
    created_at: datetime
    submitted_at: datetime | None
    accepted_at: datetime | None
    filled_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime
    last_checked_at: datetime | None
    lost_at: datetime | None
    lifecycle: str = Field(description='e.g. "Entry filled \u2013 trade OPEN".')


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


class HistoryOut(Out):
    id: int
    at: datetime
    kind: str
    from_status: OrderStatus | None
    to_status: OrderStatus | None
    filled_quantity: Money
    raw_status: str | None
    source: str
    detail: str | None


class FillOut(Out):
    broker_fill_id: str
    quantity: Money
    price: Money
    fee: Money
    filled_at: datetime
    recorded_at: datetime
    source: str


class TradeOut(Out):
    trade_id: str
    account: str
    symbol: str
    side: str
    status: str
    decision_id: str | None
    entry_order_id: str | None
    entry_quantity: Money
    exit_quantity: Money
    open_quantity: Money
    entry_average_price: Money | None
    exit_average_price: Money | None
    fees: Money
    realized_pnl: Money | None
    opened_at: datetime
    closed_at: datetime | None
    lifecycle: str


class OutcomeOut(Out):
    quantity: Money
    entry_average_price: Money
    exit_average_price: Money
    fees: Money
    realized_pnl: Money
    entry_slippage: Money | None
    exit_slippage: Money | None
    slippage_cost: Money
    holding_s: Money
    opened_at: datetime
    exited_at: datetime
    closed_at: datetime


class OrderLinks(BaseModel):
    """Orders this one is tied to, by ordersync's ids (replacements, bracket legs)."""

    replaced_by: str | None = Field(None, description="The order that replaced this one.")
    replaces: str | None = Field(None, description="The order this one replaced.")
    parent: str | None = Field(None, description="The order this exit leg was made with.")
    legs: list[str] = Field([], description="Exit legs the broker made with this order.")


class OrderDetail(BaseModel):
    order: OrderOut
    history: list[HistoryOut]
    fills: list[FillOut]
    trade: TradeOut | None
    outcome: OutcomeOut | None
    links: OrderLinks
    last_broker_report: dict[str, Any] | None = Field(
        description="The last report the broker gave for this order, as recorded."
    )


class PlaceAccepted(BaseModel):
    client_order_id: str = Field(description="The order's id at the broker side; look it up.")
    task_id: str
    status_url: str


class ReplaceAccepted(BaseModel):
    replaces: str = Field(description="The order being replaced (ordersync's id).")
    client_order_id: str = Field(description="The replacing order's client order id.")
    task_id: str | None = Field(description="None when the replacement was asked for before.")
    status_url: str = Field(description="Where the replacing order can be looked up.")


class CancelAccepted(BaseModel):
    order_id: str
    status: OrderStatus = Field(description="The status when the cancel was asked for.")
    detail: str


class SyncOut(BaseModel):
    order_id: str
    old_status: OrderStatus
    new_status: OrderStatus
    outcome: str
    order: OrderOut


class PositionOut(Out):
    account: str
    symbol: str
    quantity: Money
    average_cost: Money | None
    realized_pnl: Money
    fees: Money
    updated_at: datetime


class FeeOut(Out):
    """A fee the broker posted apart from the fills (a crypto fee)."""

    account: str
    broker_fee_id: str
    symbol: str | None = Field(description="The position it came out of; null: taken in cash.")
    quantity: Money | None = Field(description="How much of the symbol's asset it took.")
    price: Money | None
    amount: Money = Field(description="Its worth in the account's currency.")
    currency: str
    description: str
    trades: list[list[str]] = Field(
        description="[trade id, quantity] for each open trade it came out of, oldest first."
    )
    posted_at: datetime
    recorded_at: datetime


class EventOut(BaseModel):
    id: int = Field(description="Ascending; ask for events after the last one you have.")
    event_id: str = Field(description="Unique: dedupe on it.")
    kind: str
    order_id: str | None
    trade_id: str | None
    created_at: datetime
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int = Field(
        description="Pass as `after` to continue: every event up to it has been answered "
        "(it may pass other accounts' events; it stops before an event that may still commit)."
    )


class AccountOut(Out):
    name: str
    broker: str
    base_url: str
    is_active: bool
    rate_limit_per_min: int
    created_at: datetime


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
