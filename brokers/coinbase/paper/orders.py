"""Create Order's body read as Coinbase reads it. A body it cannot read is 400
INVALID_ARGUMENT; an order it reads but will not make is ``Refused``: 200 with
``success: false`` and an ``error_response`` naming the failure (``error``) and the preview
check that failed (``preview_failure_reason``), as Coinbase answers them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from brokers.coinbase.paper.errors import invalid
from brokers.coinbase.paper.products import PRODUCTS, Product
from brokers.paper.model import parse_time
from core.enums import OrderType, Side, TimeInForce

Json = dict[str, object]
UNKNOWN = "UNKNOWN_FAILURE_REASON"


@dataclass(frozen=True, slots=True)
class Form:
    """One order_configuration key: the engine's type and time in force, Coinbase's names
    for them, and the fields its body takes (``sizes``: base_size and/or quote_size)."""

    type: OrderType
    engine_tif: TimeInForce
    tif: str
    sizes: tuple[str, ...]
    fields: frozenset[str]


_LIMIT = frozenset({"base_size", "limit_price"})
# A market IOC order takes the book until it is filled: the engine works it as GTC (fills
# within the fill delay) rather than cancel what its first fill leaves.
FORMS: dict[str, Form] = {
    "market_market_ioc": Form(OrderType.MARKET, TimeInForce.GTC, "IMMEDIATE_OR_CANCEL",
                              ("base_size", "quote_size"), frozenset({"base_size", "quote_size"})),
    "market_market_fok": Form(OrderType.MARKET, TimeInForce.FOK, "FILL_OR_KILL",
                              ("base_size", "quote_size"), frozenset({"base_size", "quote_size"})),
    "sor_limit_ioc": Form(OrderType.LIMIT, TimeInForce.IOC, "IMMEDIATE_OR_CANCEL",
                          ("base_size",), _LIMIT),
    "limit_limit_gtc": Form(OrderType.LIMIT, TimeInForce.GTC, "GOOD_UNTIL_CANCELLED",
                            ("base_size",), _LIMIT | {"post_only"}),
    "limit_limit_gtd": Form(OrderType.LIMIT, TimeInForce.GTC, "GOOD_UNTIL_DATE_TIME",
                            ("base_size",), _LIMIT | {"post_only", "end_time"}),
    "limit_limit_fok": Form(OrderType.LIMIT, TimeInForce.FOK, "FILL_OR_KILL",
                            ("base_size",), _LIMIT),
    "stop_limit_stop_limit_gtc": Form(OrderType.STOP_LIMIT, TimeInForce.GTC,
                                      "GOOD_UNTIL_CANCELLED", ("base_size",),
                                      _LIMIT | {"stop_price", "stop_direction"}),
    "stop_limit_stop_limit_gtd": Form(OrderType.STOP_LIMIT, TimeInForce.GTC,
                                      "GOOD_UNTIL_DATE_TIME", ("base_size",),
                                      _LIMIT | {"stop_price", "stop_direction", "end_time"}),
}  # fmt: skip
# Coinbase's other configurations, known to it but not made here.
UNSUPPORTED = frozenset(
    {
        "limit_limit_fok_gtd", "trigger_bracket_gtc", "trigger_bracket_gtd", "twap_limit_gtd",
        "scaled_limit_gtc", "sor_limit_gtc", "stop_limit_stop_limit_fok",
    }
)  # fmt: skip
STOP_DIRECTIONS = {Side.BUY: "STOP_DIRECTION_STOP_UP", Side.SELL: "STOP_DIRECTION_STOP_DOWN"}
CREATE_FIELDS = frozenset(
    {
        "client_order_id", "product_id", "side", "order_configuration",
        "self_trade_prevention_id", "leverage", "margin_type", "retail_portfolio_id",
        "preview_id", "attached_order_configuration", "sor_preference", "prediction_metadata",
    }
)  # fmt: skip


class Refused(Exception):
    """An order Coinbase reads but will not make: ``success: false``."""

    def __init__(self, error: str, preview: str, message: str = "") -> None:
        super().__init__(f"{error} {preview} {message}")
        self.error = error
        self.preview = preview
        self.message = message


@dataclass(frozen=True, slots=True)
class NewOrder:
    client_order_id: str
    product: Product
    side: Side
    config_key: str
    config: Json  # the configuration's body as sent, echoed in every answer
    form: Form
    base_size: Decimal | None
    quote_size: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    post_only: bool
    end_us: int | None


def read_body(raw: bytes) -> Json:
    try:
        body = json.loads(raw or b"null", parse_float=Decimal)
    except (ValueError, RecursionError):
        raise invalid("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return body


def _text(body: Json, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise invalid(f"{name} is required and must be a non-empty string")
    return value


def _decimal(body: Json, name: str) -> Decimal | None:
    """A size or price: a decimal string, as Coinbase's fields are."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise invalid(f"{name} must be a decimal string, got {type(value).__name__}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise invalid(f"{name} is not a decimal: {value[:40]!r}") from None
    if not number.is_finite():
        raise invalid(f"{name} is not a decimal: {value[:40]!r}")
    return number


def _steps(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def parse_create(raw: bytes) -> NewOrder:
    """The order, or 400 (unreadable) or ``Refused`` (its terms)."""
    body = read_body(raw)
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise invalid(f"unknown field {unknown[0]!r}")
    client_order_id = _text(body, "client_order_id")
    product_id = _text(body, "product_id")
    side_name = body.get("side")
    if side_name not in ("BUY", "SELL"):
        raise invalid(f"side must be BUY or SELL, got {side_name!r}")
    side = Side.BUY if side_name == "BUY" else Side.SELL
    config = body.get("order_configuration")
    if not isinstance(config, dict):
        raise invalid("order_configuration is required and must be an object")
    unknown = sorted(set(config) - set(FORMS) - UNSUPPORTED)
    if unknown:
        raise invalid(f"order_configuration: unknown field {unknown[0]!r}")
    given = [key for key, value in config.items() if value is not None]
    if len(given) != 1 or given[0] in UNSUPPORTED:
        raise Refused("UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_ORDER_CONFIG")
    key = given[0]
    product = PRODUCTS.get(product_id)
    if product is None:
        raise Refused("INVALID_PRODUCT_ID", "PREVIEW_INVALID_PRODUCT_ID")
    return _terms(client_order_id, product, side, key, config[key])


def _terms(client_order_id: str, product: Product, side: Side, key: str, raw: object) -> NewOrder:
    form = FORMS[key]
    if not isinstance(raw, dict):
        raise invalid(f"order_configuration.{key} must be an object")
    unknown = sorted(set(raw) - form.fields)
    if unknown:
        raise invalid(f"order_configuration.{key}: unknown field {unknown[0]!r}")
    base_size, quote_size = _decimal(raw, "base_size"), _decimal(raw, "quote_size")
    if (base_size is None) == (quote_size is None):
        sizes = " or ".join(form.sizes)
        raise invalid(f"order_configuration.{key}: exactly one of {sizes} is required")
    limit, stop = _decimal(raw, "limit_price"), _decimal(raw, "stop_price")
    if form.type is not OrderType.MARKET and limit is None:
        raise invalid(f"order_configuration.{key}: limit_price is required")
    if form.type is OrderType.STOP_LIMIT:
        if stop is None:
            raise invalid(f"order_configuration.{key}: stop_price is required")
        direction = raw.get("stop_direction")
        if direction not in STOP_DIRECTIONS.values():
            raise invalid(f"order_configuration.{key}: stop_direction is required")
        if direction != STOP_DIRECTIONS[side]:
            # The paper engine's stops trigger on the side's own direction only.
            raise Refused("UNSUPPORTED_ORDER_CONFIGURATION", "PREVIEW_INVALID_STOP_PRICE")
    post_only = raw.get("post_only", False)
    if not isinstance(post_only, bool):
        raise invalid(f"order_configuration.{key}: post_only must be a boolean")
    end_us = None
    if "end_time" in form.fields:
        end_time = raw.get("end_time")
        if not isinstance(end_time, str):
            raise invalid(f"order_configuration.{key}: end_time is required")
        try:
            end_us = parse_time(end_time)
        except ValueError:
            raise invalid(f"order_configuration.{key}: end_time is not RFC 3339") from None
    new = NewOrder(
        client_order_id, product, side, key, dict(raw), form, base_size, quote_size, limit,
        stop, post_only, end_us,
    )  # fmt: skip
    check_sizes(new)
    return new


def check_sizes(new: NewOrder) -> None:
    """The product's increments and limits, in the order Coinbase's preview checks them."""
    product = new.product
    for price in (new.limit_price, new.stop_price):
        if price is not None and price <= 0:
            raise Refused("INVALID_LIMIT_PRICE", "PREVIEW_INVALID_LIMIT_PRICE")
        if price is not None and not _steps(price, product.price_increment):
            raise Refused(
                "INVALID_PRICE_PRECISION", "PREVIEW_INVALID_PRICE_PRECISION",
                "Too many decimals in order price",
            )  # fmt: skip
    if new.base_size is not None:
        size = new.base_size
        if size <= 0 or not _steps(size, product.base_increment):
            raise Refused(
                "INVALID_SIZE_PRECISION", "PREVIEW_INVALID_SIZE_PRECISION",
                "Too many decimals in order amount",
            )  # fmt: skip
        if size < product.base_min_size:
            raise Refused(UNKNOWN, "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL")
        if size > product.base_max_size:
            raise Refused(UNKNOWN, "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE")
    if new.quote_size is not None:
        quote = new.quote_size
        if quote <= 0 or not _steps(quote, product.quote_increment):
            raise Refused(UNKNOWN, "PREVIEW_INVALID_QUOTE_SIZE_PRECISION")
        if quote < product.quote_min_size:
            raise Refused(UNKNOWN, "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL")
        if quote > product.quote_max_size:
            raise Refused(UNKNOWN, "PREVIEW_INVALID_QUOTE_SIZE_TOO_LARGE")


def check_market(new: NewOrder, market: Decimal) -> bool:
    """Whether the order takes liquidity now (a market order, or a limit at or through the
    market); a post-only order that would, and a stop already crossed, are refused."""
    if new.form.type is OrderType.MARKET:
        return True
    assert new.limit_price is not None
    if new.stop_price is not None:
        above = new.side is Side.BUY
        if above and new.stop_price <= market:
            raise Refused(UNKNOWN, "PREVIEW_STOP_PRICE_BELOW_LAST_TRADE_PRICE")
        if not above and new.stop_price >= market:
            raise Refused(UNKNOWN, "PREVIEW_STOP_PRICE_ABOVE_LAST_TRADE_PRICE")
        return False  # it rests until its stop, then works its limit
    buy = new.side is Side.BUY
    taker = new.limit_price >= market if buy else new.limit_price <= market
    if taker and new.post_only:
        raise Refused("INVALID_LIMIT_PRICE_POST_ONLY", "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY")
    return taker


def refused_json(refusal: Refused, order_configuration: object) -> Json:
    """``success: false`` as Coinbase answers it (200), the configuration echoed."""
    body: Json = {
        "success": False,
        "error_response": {
            "error": refusal.error,
            "message": refusal.message,
            "error_details": refusal.message,
            "preview_failure_reason": refusal.preview,
        },
    }
    if isinstance(order_configuration, dict):
        body["order_configuration"] = order_configuration
    return body
