"""Task arguments: the public contract, parsed strictly (see README "Task contract").

Decimals arrive as strings (integers are accepted for quantities); floats are refused so no
binary rounding reaches an order. Unknown arguments are refused.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from core.enums import Intent, OrderClass, OrderType, Side, TimeInForce
from models.state_machine import MAX_PLACES, storable

PLACEABLE_TYPES = (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT)
PLACEABLE_TIFS = (TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK)
MAX_VALID_FOR_S = 7 * 86400.0


class InvalidTaskArguments(ValueError):
    """A task call that breaks the contract; nothing was written for it.

    It must survive the trip to the caller. Celery's worker first pickles every failure and,
    when that fails, sends the nearest base class that pickles instead (``ValueError``, for
    a constructor that refused its own ``args``); ``__reduce__`` rebuilds it. The JSON
    result then carries the type's name and ``args``, here ``(problem,)``: a caller that
    imports nothing of ordersync raises ``InvalidTaskArguments: <problem>``, and a process
    that has this class rebuilds it from the problem alone (the task name is not carried).
    """

    def __init__(self, task_name: str, problem: str | None = None) -> None:
        if problem is None:  # rebuilt from ``args`` by a Celery client
            task_name, problem = "", task_name
        self.task_name = task_name
        self.problem = problem
        super().__init__(problem)

    def __str__(self) -> str:
        return f"{self.task_name}: {self.problem}" if self.task_name else self.problem

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task_name, self.problem))


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool | float):
        raise ValueError(f"send decimals as strings, not {type(value).__name__} ({value!r})")
    if isinstance(value, int):
        return _in_range(Decimal(value), value)
    if isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal") from None
        if not result.is_finite():
            raise ValueError(f"{value!r} is not a finite decimal")
        return _in_range(result, value)
    raise ValueError(f"expected a decimal string, got {type(value).__name__}")


def _in_range(result: Decimal, given: object) -> Decimal:
    if not storable(result):
        shown = repr(given) if len(repr(given)) <= 40 else f"{repr(given)[:37]}..."
        raise ValueError(
            f"{shown} is out of range (at most 20 integer digits and {MAX_PLACES} decimal places)"
        )
    return result


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


# Documented as a string (an HTTP API publishes these models' JSON schema): that is how
# money is sent; whole numbers are accepted as well.
DECIMAL_PATTERN = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*$"
Positive = Annotated[
    Decimal,
    BeforeValidator(_decimal),
    AfterValidator(_positive),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["10", "187.25"]}),
]


def _printable(value: str) -> str:
    """No control characters: a NUL cannot even be stored by PostgreSQL."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_printable),
]
Ref = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(_printable),
]
TradeId = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_printable)]
# AAPL, BTC/USD, BTC-USD, BTCUSDT, BRK.B, OANDA's EUR_USD.
Symbol = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z0-9./_-]{1,32}$"),
]
ClientOrderId = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9._:-]{1,128}$")
]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TakeProfit(_Args):
    """A take-profit exit leg: a limit order on the other side."""

    limit_price: Positive


class StopLoss(_Args):
    """A stop-loss exit leg: a stop order on the other side (stop-limit with a limit)."""

    stop_price: Positive
    limit_price: Positive | None = None


# The entry's types and times in force a broker takes with exit legs.
LEG_ENTRY_TYPES = (OrderType.MARKET, OrderType.LIMIT)
LEG_TIFS = (TimeInForce.DAY, TimeInForce.GTC)


class PlaceOrderTerms(_Args):
    """An order as asked for, without its account (the HTTP API takes the account from
    the path)."""

    symbol: Symbol
    side: Side
    # What to trade: a quantity, or ``notional``, an amount of money the broker turns into
    # a (fractional) quantity as it fills. Exactly one of the two.
    quantity: Positive | None = None
    notional: Positive | None = None
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Positive | None = None
    stop_price: Positive | None = None
    requested_price: Positive | None = None
    intent: Intent | None = None
    decision_id: Ref | None = None
    trade_id: TradeId | None = None
    client_order_id: ClientOrderId | None = None
    # The placement deadline: nothing is sent after it (an ISO 8601 time with its offset,
    # or seconds from when the order is first written); unset: the default per order kind.
    expires_at: AwareDatetime | None = None
    valid_for_s: Annotated[float, Field(gt=0, le=MAX_VALID_FOR_S)] | None = None
    # Exit legs the broker makes and holds for the order: bracket (both), OTO (one), OCO
    # (a limit take-profit whose leg is the stop-loss).
    order_class: OrderClass = OrderClass.SIMPLE
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None

    @model_validator(mode="after")
    def _sized(self) -> Self:
        if (self.quantity is None) == (self.notional is None):
            both = ", not both" if self.quantity is not None else ""
            raise ValueError(f"give quantity or notional (an amount of money){both}")
        if self.notional is not None and self.intent is Intent.EXIT:
            raise ValueError(
                "an EXIT order gives quantity, not notional: what it may close of its trade "
                "is counted in quantity"
            )
        return self

    @model_validator(mode="after")
    def _legs_fit(self) -> Self:
        problem = legs_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.expires_at is not None and self.valid_for_s is not None:
            raise ValueError("give expires_at or valid_for_s, not both")
        if self.order_type not in PLACEABLE_TYPES:
            raise ValueError(f"order_type {self.order_type.value} cannot be placed")
        if self.time_in_force not in PLACEABLE_TIFS:
            raise ValueError(f"time_in_force {self.time_in_force.value} cannot be placed")
        needs_limit = self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if needs_limit != (self.limit_price is not None):
            raise ValueError(
                f"limit_price is {'required' if needs_limit else 'not allowed'} "
                f"for a {self.order_type.value} order"
            )
        if needs_stop != (self.stop_price is not None):
            raise ValueError(
                f"stop_price is {'required' if needs_stop else 'not allowed'} "
                f"for a {self.order_type.value} order"
            )
        if self.intent is Intent.EXIT and self.trade_id is None:
            raise ValueError("an EXIT order needs trade_id: the trade it closes")
        return self


def legs_problem(terms: PlaceOrderTerms) -> str | None:
    """Why the order class and its legs cannot go together, or None."""
    kind, take, stop = terms.order_class, terms.take_profit, terms.stop_loss
    given = [name for name, leg in (("take_profit", take), ("stop_loss", stop)) if leg]
    if kind is OrderClass.SIMPLE:
        return f"{' and '.join(given)} need order_class bracket, oto or oco" if given else None
    if kind is OrderClass.OTO and len(given) != 1:
        return "an oto order takes exactly one of take_profit and stop_loss"
    if kind in (OrderClass.BRACKET, OrderClass.OCO) and len(given) != 2:
        return f"a {kind.value} order needs both take_profit and stop_loss"
    if terms.time_in_force not in LEG_TIFS:
        return f"a {kind.value} order must be day or gtc"
    if kind is OrderClass.OCO:
        if terms.order_type is not OrderType.LIMIT or take is None:
            return "an oco order is a limit order: its limit_price is the take-profit's"
        if terms.limit_price != take.limit_price:
            return "an oco order's limit_price must equal take_profit.limit_price"
    elif terms.order_type not in LEG_ENTRY_TYPES:
        return f"a {kind.value} order's entry must be market or limit"
    if take is not None and stop is not None:
        # The exits sell above and below (a buy's), or buy below and above (a sell's).
        exits_sell = (
            terms.side is Side.BUY if kind is not OrderClass.OCO else terms.side is Side.SELL
        )
        if exits_sell != (take.limit_price > stop.stop_price):
            return ("take_profit.limit_price must be "
                    f"{'above' if exits_sell else 'below'} stop_loss.stop_price")  # fmt: skip
    return None


class PlaceOrderArgs(PlaceOrderTerms):
    account: Name


class TrackOrderArgs(_Args):
    account: Name
    broker_order_id: Ref | None = None
    client_order_id: ClientOrderId | None = None
    requested_price: Positive | None = None
    intent: Intent | None = None
    decision_id: Ref | None = None
    trade_id: TradeId | None = None
    # The order's symbol: brokers that look an order up within a symbol (Binance) need it
    # to find one by client order id.
    symbol: Symbol | None = None

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if not (self.broker_order_id or self.client_order_id):
            raise ValueError("give broker_order_id or client_order_id")
        return self


class _OrderRef(_Args):
    """An order of an account, by ordersync's id or its client order id."""

    account: Name
    order_id: Ref | None = None
    client_order_id: ClientOrderId | None = None

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if not (self.order_id or self.client_order_id):
            raise ValueError("give order_id or client_order_id")
        return self


class CancelOrderArgs(_OrderRef):
    pass


class ReplaceOrderTerms(_Args):
    """What changes in a working order; everything else stays as the order has it. The
    replacing order is a new order: ``quantity`` is its own (unset: what the working order
    has left to fill), the replaced order's fills stay with it."""

    quantity: Positive | None = None
    limit_price: Positive | None = None
    stop_price: Positive | None = None
    time_in_force: TimeInForce | None = None
    requested_price: Positive | None = None
    new_client_order_id: ClientOrderId | None = None
    valid_for_s: Annotated[float, Field(gt=0, le=MAX_VALID_FOR_S)] | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        changes = (self.quantity, self.limit_price, self.stop_price, self.time_in_force)
        if all(change is None for change in changes):
            raise ValueError("give at least one of quantity, limit_price, stop_price, "
                             "time_in_force")  # fmt: skip
        if self.time_in_force is not None and self.time_in_force not in PLACEABLE_TIFS:
            raise ValueError(f"time_in_force {self.time_in_force.value} cannot be placed")
        return self


class ReplaceOrderArgs(ReplaceOrderTerms, _OrderRef):
    """The order to replace (``order_id`` or ``client_order_id``) and its new terms."""


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown argument {where!r}")
            continue
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


M = TypeVar("M", bound=_Args)


def parse_args(model: type[M], task_name: str, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> M:  # fmt: skip
    """The validated arguments, or ``InvalidTaskArguments`` saying what is wrong."""
    if args:
        raise InvalidTaskArguments(task_name, "call with keyword arguments only")
    try:
        return model.model_validate(kwargs)
    except ValidationError as error:
        raise InvalidTaskArguments(task_name, _describe(error)) from None
