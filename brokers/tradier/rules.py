"""What Tradier takes before it is asked: equity and option orders of whole shares or
contracts, market, limit, stop or stop-limit, for the day or good till canceled, with no
exit legs and no amount of money in place of a quantity, an option's with its intent
(``build.terms_refusal``). Judged before the row is written,
so the API answers 422 before it sends anything."""

from __future__ import annotations

from decimal import Decimal

from brokers.tradier.build import terms_refusal
from core.enums import Intent, OrderClass, OrderType, TimeInForce


def default_time_in_force(symbol: str) -> TimeInForce:
    """An order that names none is a day order, as Tradier's own ``duration=day``."""
    return TimeInForce.DAY


def terms_problem(
    symbol: str, order_type: OrderType, time_in_force: TimeInForce, order_class: OrderClass,
    *, quantity: Decimal | None = None, notional: Decimal | None = None,
    intent: Intent | None = None,
) -> str | None:  # fmt: skip
    """Why Tradier would refuse these terms (or ordersync cannot express them), or None."""
    return terms_refusal(symbol, order_type, time_in_force, order_class, quantity, notional, intent)
