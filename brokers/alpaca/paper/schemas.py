"""Request bodies and how validation failures read; Alpaca answers them 422/40010001."""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from brokers.alpaca.paper.crypto import is_pair
from brokers.alpaca.paper.notional import shape_problem
from brokers.paper.model import (
    TOO_LARGE,
    OrderChanges,
    OrderClass,
    OrderRequest,
    Refusal,
    StopLoss,
    TakeProfit,
)
from core.enums import OrderType, Side, TimeInForce

# The exchange's own vocabulary: the domain enums also hold kinds it does not trade.
PlacedType = Literal["market", "limit", "stop", "stop_limit"]
PlacedTimeInForce = Literal["day", "gtc", "ioc", "fok"]
PlacedOrderClass = Literal["simple", "bracket", "oco", "oto", ""]  # "" is simple too
ClientOrderId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Symbol = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
MAX_QTY_DECIMALS = 9
MAX_BULK_ORDERS = 50_000


class ApiError(Refusal):
    """An answer in Alpaca's error shape ``{"code": int, "message": str}``; ``extra`` fields
    go with them (Alpaca adds ``base_price`` to a bracket price refusal)."""


def invalid(message: str) -> ApiError:
    return ApiError(422, 40010001, message)


def describe_errors(errors: Iterable[Any]) -> str:
    """One readable line from pydantic's error list: ``qty: Input should be ...``."""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error["loc"] if p not in ("body", "query", "path"))
        what = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {what}" if where else what)
    return "; ".join(parts) or "invalid request"


def _positive(name: str, value: Decimal | None) -> None:
    """Positive and below ``TOO_LARGE``: what no account trades would overflow arithmetic."""
    if value is not None and not (value.is_finite() and value > 0):
        raise ValueError(f"{name} must be a positive decimal")
    if value is not None and value >= TOO_LARGE:
        raise ValueError(f"{name} must be below {TOO_LARGE:E}")


class TakeProfitBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit_price: Decimal | None = None


class StopLossBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    stop_price: Decimal | None = None
    limit_price: Decimal | None = None


class OrderBody(BaseModel):
    """``POST /v2/orders``; fields Alpaca accepts but this exchange ignores pass through.

    ``take_profit`` and ``stop_loss`` make legs only with an ``order_class`` that has them
    (a simple order ignores them); the rules that depend on the market or the position are
    ``brokers.alpaca.paper.legs``'.
    """

    model_config = ConfigDict(extra="ignore")

    symbol: Symbol
    qty: Decimal | None = None
    notional: Decimal | None = None  # dollars instead of a qty (brokers.paper.notional)
    side: Literal["buy", "sell"]
    type: PlacedType
    time_in_force: PlacedTimeInForce
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: ClientOrderId | None = None
    order_class: PlacedOrderClass | None = None
    take_profit: TakeProfitBody | None = None
    stop_loss: StopLossBody | None = None

    @property
    def kind(self) -> OrderClass:
        return self.order_class or "simple"

    @property
    def fractional(self) -> bool:
        return self.notional is not None or (
            self.qty is not None and self.qty != self.qty.to_integral_value()
        )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.qty is None and self.notional is None:
            raise ValueError("qty is required")  # Alpaca's wording, with or without notional
        if self.qty is not None and self.notional is not None:
            raise ValueError("only one of qty or notional may be specified")
        for name, amount in (("qty", self.qty), ("notional", self.notional)):
            _positive(name, amount)
            exponent = None if amount is None else amount.normalize().as_tuple().exponent
            if isinstance(exponent, int) and exponent < -MAX_QTY_DECIMALS:
                raise ValueError(f"{name} has more than {MAX_QTY_DECIMALS} decimal places")
        if self.fractional and self.kind == "simple":
            problem = shape_problem(
                crypto=is_pair(self.symbol),
                notional=self.notional is not None,
                type=self.type,
                time_in_force=self.time_in_force,
            )
            if problem is not None:
                raise ValueError(problem)
        _positive("limit_price", self.limit_price)
        _positive("stop_price", self.stop_price)
        if self.kind != "simple" and not is_pair(self.symbol):
            self._check_class()  # a crypto order of a class is refused whole (the engine)
        if self.type in ("limit", "stop_limit") and self._limit_price() is None:
            raise ValueError(f"limit_price is required for {self.type} orders")
        if self.type in ("stop", "stop_limit") and self.stop_price is None:
            raise ValueError(f"stop_price is required for {self.type} orders")
        return self

    def _check_class(self) -> None:
        """Alpaca's shape rules for an order with legs (its wording where it is known)."""
        kind, take_profit, stop_loss = self.kind, self.take_profit, self.stop_loss
        if self.fractional:
            raise ValueError("fractional orders must be simple orders")
        if self.time_in_force not in ("day", "gtc"):
            raise ValueError(f"{kind} orders must be day or gtc orders")
        if take_profit is not None:
            if take_profit.limit_price is None:
                raise ValueError(f"{kind} orders require take_profit.limit_price")
            _positive("take_profit.limit_price", take_profit.limit_price)
        if stop_loss is not None:
            if stop_loss.stop_price is None:
                raise ValueError(f"{kind} orders require stop_loss.stop_price")
            _positive("stop_loss.stop_price", stop_loss.stop_price)
            _positive("stop_loss.limit_price", stop_loss.limit_price)
        if kind in ("bracket", "oco"):
            if take_profit is None:
                raise ValueError(f"{kind} orders require take_profit.limit_price")
            if stop_loss is None:
                raise ValueError(f"{kind} orders require stop_loss.stop_price")
        elif take_profit is None and stop_loss is None:
            raise ValueError("oto orders require either take_profit or stop_loss")
        elif take_profit is not None and stop_loss is not None:
            raise ValueError("oto orders take one of take_profit or stop_loss (both: bracket)")
        if kind == "oco":
            if self.type != "limit":
                raise ValueError("oco orders must be limit orders")
            assert take_profit is not None
            if self.limit_price not in (None, take_profit.limit_price):
                raise ValueError("limit_price of an oco order must be take_profit.limit_price")
        elif self.type not in ("market", "limit"):
            raise ValueError(f"{kind} orders must be market or limit orders")

    def _limit_price(self) -> Decimal | None:
        """An OCO's limit price is its take-profit's (Alpaca's examples give only that)."""
        if self.kind == "oco" and self.take_profit is not None:
            return self.take_profit.limit_price
        return self.limit_price

    def to_request(self) -> OrderRequest:
        """Prices that do not apply to the order type are dropped; so are legs that do not
        apply to the order class."""
        limits = self.type in ("limit", "stop_limit")
        stops = self.type in ("stop", "stop_limit")
        kind = self.kind
        take_profit = stop_loss = None
        legs = kind != "simple" and not is_pair(self.symbol)
        if legs and self.take_profit is not None:
            assert self.take_profit.limit_price is not None
            take_profit = TakeProfit(self.take_profit.limit_price)
        if legs and self.stop_loss is not None:
            assert self.stop_loss.stop_price is not None
            stop_loss = StopLoss(self.stop_loss.stop_price, self.stop_loss.limit_price)
        return OrderRequest(
            symbol=self.symbol,
            qty=Decimal(0) if self.qty is None else self.qty,  # the engine sizes a notional
            side=Side(self.side),
            type=OrderType(self.type),
            time_in_force=TimeInForce(self.time_in_force),
            limit_price=self._limit_price() if limits else None,
            stop_price=self.stop_price if stops else None,
            client_order_id=self.client_order_id,
            order_class=kind,
            take_profit=take_profit,
            stop_loss=stop_loss,
            notional=self.notional,
        )


class ReplaceBody(BaseModel):
    """``PATCH /v2/orders/{id}``: fields Alpaca accepts but this exchange ignores pass through;
    ``trail`` is refused, as there are no trailing stop orders here, and so is ``notional``
    (Alpaca takes it only for IPO orders)."""

    model_config = ConfigDict(extra="ignore")

    qty: Decimal | None = None
    time_in_force: PlacedTimeInForce | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail: Any = None
    notional: Any = None
    client_order_id: ClientOrderId | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.trail is not None:
            raise ValueError("trail applies only to trailing stop orders")
        if self.notional is not None:
            raise ValueError("notional can be replaced only on IPO orders")
        self.to_changes()  # OrderChanges refuses what no order could take
        return self

    def to_changes(self) -> OrderChanges:
        tif = self.time_in_force
        return OrderChanges(
            qty=self.qty,
            time_in_force=None if tif is None else TimeInForce(tif),
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            client_order_id=self.client_order_id,
        )


def _json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object whose numbers are Decimals, not floats."""
    try:
        data = json.loads(raw or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid("request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise invalid("request body must be a JSON object")
    return data


def parse_order(raw: bytes) -> OrderRequest:
    """Read a POST /v2/orders body exactly: JSON numbers become Decimals, not floats."""
    try:
        return OrderBody.model_validate(_json_object(raw)).to_request()
    except ValidationError as exc:
        raise invalid(describe_errors(exc.errors())) from exc


def parse_replace(raw: bytes) -> OrderChanges:
    """Read a PATCH /v2/orders/{id} body as exactly as an order: Decimals, never floats."""
    try:
        return ReplaceBody.model_validate(_json_object(raw)).to_changes()
    except ValidationError as exc:
        raise invalid(describe_errors(exc.errors())) from exc


def parse_bulk_orders(raw: bytes) -> list[OrderRequest]:
    """``POST /_sim/orders/bulk``: ``{"orders": [order, ...]}``, each as POST /v2/orders
    takes it; one bad order refuses the whole batch, so nothing is half-seeded."""
    orders = _json_object(raw).get("orders")
    if not isinstance(orders, list) or not 1 <= len(orders) <= MAX_BULK_ORDERS:
        raise invalid(f"orders: expected a list of 1 to {MAX_BULK_ORDERS} orders")
    requests = []
    for index, item in enumerate(orders):
        if not isinstance(item, dict):
            raise invalid(f"orders[{index}]: must be a JSON object")
        try:
            request = OrderBody.model_validate(item).to_request()
        except ValidationError as exc:
            raise invalid(f"orders[{index}]: {describe_errors(exc.errors())}") from exc
        if request.order_class != "simple":
            raise invalid(f"orders[{index}]: only simple orders can be seeded")
        requests.append(request)
    return requests


class MarketChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frozen: bool | None = None
    volatility_bps: Annotated[float, Field(ge=0)] | None = None


class ForcedFill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    qty: Decimal | None = None
    price: Decimal | None = None
