"""A symbol's trading rules from ``GET /api/v3/exchangeInfo``, checked before placing so a
request Binance would refuse (-1013) is refused here with the filter and values named."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from brokers.binance.parse import ParseError, as_dict, as_list, decimal, text
from core.enums import OrderType
from core.reports import PlaceOrderRequest

DEFAULT_WEIGHT_LIMIT = 6000
_MARKET_TYPES = frozenset({OrderType.MARKET, OrderType.STOP})


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """The assets a symbol trades and its filters, each filter's fields as given."""

    symbol: str
    base_asset: str
    quote_asset: str
    filters: Mapping[str, Mapping[str, object]]


def parse_symbol_rules(exchange_info: object, symbol: str) -> SymbolRules:
    """The rules for ``symbol`` in an exchangeInfo answer; ParseError when it is absent."""
    for item in as_list(as_dict(exchange_info, "exchangeInfo").get("symbols"), "symbols"):
        raw = as_dict(item, "symbol")
        if raw.get("symbol") != symbol:
            continue
        filters = {}
        for entry in as_list(raw.get("filters", []), "filters"):
            rule = as_dict(entry, "filter")
            filters[text(rule, "filterType")] = rule
        return SymbolRules(symbol, text(raw, "baseAsset"), text(raw, "quoteAsset"), filters)
    raise ParseError(f"exchangeInfo does not list symbol {symbol!r}")


def weight_limit(exchange_info: object) -> int | None:
    """The REQUEST_WEIGHT limit per minute from ``rateLimits``, if stated."""
    limits = as_dict(exchange_info, "exchangeInfo").get("rateLimits")
    for item in limits if isinstance(limits, list) else ():
        if (
            isinstance(item, dict)
            and item.get("rateLimitType") == "REQUEST_WEIGHT"
            and item.get("interval") == "MINUTE"
            and item.get("intervalNum") == 1
            and isinstance(item.get("limit"), int)
        ):
            return int(item["limit"])
    return None


def _field(rule: Mapping[str, object], key: str) -> Decimal:
    """A filter's figure; 0 (or absent) turns that check off."""
    return decimal(rule, key) if rule.get(key) is not None else Decimal(0)


def _show(value: Decimal) -> str:
    """A figure as people write it: 0.00010000 -> 0.0001."""
    return format(value.normalize(), "f")


def _bounds(name: str, what: str, value: Decimal, rule: Mapping[str, object],
            low: str, high: str, step: str) -> str | None:  # fmt: skip
    """Binance's range-and-step test: low <= value <= high, (value - low) % step == 0."""
    minimum, maximum, increment = _field(rule, low), _field(rule, high), _field(rule, step)
    if minimum and value < minimum:
        return f"{name}: {what} {_show(value)} is below {low} {_show(minimum)}"
    if maximum and value > maximum:
        return f"{name}: {what} {_show(value)} is above {high} {_show(maximum)}"
    if increment and (value - minimum) % increment != 0:
        return f"{name}: {what} {_show(value)} is not a multiple of {step} {_show(increment)}"
    return None


def _notional(rules: SymbolRules, request: PlaceOrderRequest) -> str | None:
    """MIN_NOTIONAL / NOTIONAL minimum, where the order's value is known beforehand."""
    market = request.order_type in _MARKET_TYPES
    if request.notional is not None:
        value: Decimal | None = request.notional
    elif request.limit_price is not None and request.quantity is not None:
        value = request.quantity * request.limit_price
    else:
        value = None  # a market order by quantity: its price is not known here
    if value is None:
        return None
    for name, applies in (("NOTIONAL", "applyMinToMarket"), ("MIN_NOTIONAL", "applyToMarket")):
        rule = rules.filters.get(name)
        if rule is None or (market and rule.get(applies) is not True):
            continue
        minimum = _field(rule, "minNotional")
        if minimum and value < minimum:
            return f"{name}: notional {_show(value)} is below minNotional {_show(minimum)}"
    return None


def check_order(rules: SymbolRules, request: PlaceOrderRequest) -> str | None:
    """The first filter the request breaks, as a message naming it and the values; or None."""
    problems: list[str | None] = []
    if request.quantity is not None:
        lot = rules.filters.get("LOT_SIZE")
        if lot is not None:
            problems.append(_bounds("LOT_SIZE", "quantity", request.quantity, lot,
                                    "minQty", "maxQty", "stepSize"))  # fmt: skip
        market_lot = rules.filters.get("MARKET_LOT_SIZE")
        if market_lot is not None and request.order_type is OrderType.MARKET:
            problems.append(_bounds("MARKET_LOT_SIZE", "quantity", request.quantity, market_lot,
                                    "minQty", "maxQty", "stepSize"))  # fmt: skip
    price_rule = rules.filters.get("PRICE_FILTER")
    if price_rule is not None:
        for what, price in (("price", request.limit_price), ("stopPrice", request.stop_price)):
            if price is not None:
                problems.append(_bounds("PRICE_FILTER", what, price, price_rule,
                                        "minPrice", "maxPrice", "tickSize"))  # fmt: skip
    problems.append(_notional(rules, request))
    return next((problem for problem in problems if problem is not None), None)
