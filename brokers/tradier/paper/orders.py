"""Tradier's placement form (place-equity-order and place-option-order docs), checked as
Tradier checks it: equity or option (multileg and the oto/oco classes are not served by the
paper exchange), whole shares or contracts, an option's OCC symbol on the underlying it
names and not expired, its side saying whether it opens or closes, a tag of letters,
digits and ``-`` up to 255 characters, a price for limit orders and a stop for stop orders.
Refusal wording is [U]: Tradier's exact messages are not documented."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qs

from brokers.tradier.paper.errors import TradierError, invalid
from core.enums import OrderType, Side, TimeInForce
from core.instruments import option_parts

SIDES = {"buy": Side.BUY, "sell": Side.SELL, "buy_to_cover": Side.BUY, "sell_short": Side.SELL}
OPTION_SIDES = {
    "buy_to_open": Side.BUY, "buy_to_close": Side.BUY,
    "sell_to_open": Side.SELL, "sell_to_close": Side.SELL,
}  # fmt: skip
TYPES = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
}
DURATIONS = {"day": TimeInForce.DAY, "gtc": TimeInForce.GTC, "pre": TimeInForce.DAY,
             "post": TimeInForce.DAY}  # fmt: skip
OTHER_CLASSES = frozenset({"multileg", "combo", "oto", "oco", "otoco"})
TAG = re.compile(r"[A-Za-z0-9-]{1,255}")
SYMBOL = re.compile(r"[A-Z][A-Z0-9.]{0,9}")


@dataclass(frozen=True, slots=True)
class NewOrder:
    symbol: str  # the engine's: the OCC symbol of an option
    side: str
    quantity: Decimal
    type: str
    duration: str
    price: Decimal | None
    stop: Decimal | None
    tag: str | None
    underlying: str | None = None  # an option's (its form's ``symbol``)

    @property
    def engine_side(self) -> Side:
        return {**SIDES, **OPTION_SIDES}[self.side]


def read_form(raw: bytes) -> dict[str, str]:
    """The form's fields; a field given twice is refused (which one Tradier keeps is [U])."""
    try:
        fields = parse_qs(raw.decode(), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        raise invalid("the body is not a form (application/x-www-form-urlencoded)") from None
    twice = sorted(name for name, values in fields.items() if len(values) > 1)
    if twice:
        raise invalid(f"{twice[0]} is given more than once")
    return {name: values[0] for name, values in fields.items()}


def _decimal(form: dict[str, str], name: str) -> Decimal | None:
    text = form.get(name, "")
    if text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise invalid(f"{name} {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise invalid(f"{name} must be a positive number, got {text}")
    return value


def _choice(form: dict[str, str], name: str, allowed: dict[str, object]) -> str:
    value = form.get(name, "")
    if not value:
        raise invalid(f"{name} is required")
    if value not in allowed:
        raise invalid(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return value


def parse_order(form: dict[str, str], today: date) -> NewOrder:
    """The form's order on ``today`` (an option that expired before it is refused)."""
    order_class = form.get("class", "")
    if order_class in OTHER_CLASSES:
        raise TradierError(400, messages=(
            f"class {order_class}: only equity and option orders are served by the paper "
            "exchange",
        ))  # fmt: skip
    if order_class not in ("equity", "option"):
        raise invalid(f"class {order_class!r} is not valid" if order_class else "class is required")
    symbol = form.get("symbol", "")
    if not SYMBOL.fullmatch(symbol):
        raise invalid(f"symbol {symbol!r} is not a valid equity symbol")
    underlying = None
    if order_class == "option":
        underlying, symbol = symbol, _option_symbol(form, symbol, today)
    side = _choice(form, "side", dict(OPTION_SIDES if underlying else SIDES))
    quantity = _decimal(form, "quantity")
    if quantity is None:
        raise invalid("quantity is required")
    if quantity != quantity.to_integral_value():
        unit = "contracts" if underlying else "shares"
        raise invalid(f"quantity {form['quantity']} must be a whole number of {unit}")
    kind = _choice(form, "type", dict(TYPES))
    duration = _choice(form, "duration", dict(DURATIONS))
    price, stop = _decimal(form, "price"), _decimal(form, "stop")
    if kind in ("limit", "stop_limit") and price is None:
        raise invalid(f"price is required for a {kind} order")
    if kind in ("stop", "stop_limit") and stop is None:
        raise invalid(f"stop is required for a {kind} order")
    tag = form.get("tag")
    if tag is not None and not TAG.fullmatch(tag):
        raise invalid("tag: at most 255 characters; valid characters are letters, numbers and -")
    return NewOrder(
        symbol, side, quantity, kind, duration,
        price if kind in ("limit", "stop_limit") else None,
        stop if kind in ("stop", "stop_limit") else None,
        tag, underlying,
    )  # fmt: skip


def _option_symbol(form: dict[str, str], underlying: str, today: date) -> str:
    """The form's ``option_symbol``: an OCC symbol of ``underlying``, not expired."""
    occ = form.get("option_symbol", "")
    if not occ:
        raise invalid("option_symbol is required for an option order")
    parts = option_parts(occ)
    if parts is None:
        raise invalid(f"option_symbol {occ!r} is not a valid OCC option symbol")
    if parts[0] != underlying:
        raise invalid(f"option_symbol {occ} is not an option on {underlying}")
    if parts[1] < today:
        raise invalid(f"option_symbol {occ} expired on {parts[1].isoformat()}")
    return occ


def check_side(new: NewOrder, held: Decimal, selling: Decimal, buying: Decimal) -> None:
    """Tradier's equity sides: sell only shares held (less open sells), sell_short only
    without a long position and for the day [3P: QuantConnect LEAN's Tradier model],
    buy_to_cover only a short one, buy not while short; an option's likewise in contracts
    (to_close only what is held that way, less open orders closing it, to_open not against
    it [U: Tradier's own checks on option sides are not documented])."""
    if new.underlying is not None:
        _check_option_side(new, held, selling, buying)
        return
    if new.side == "sell_short" and new.duration == "gtc":
        raise invalid(f"sell_short {new.symbol}: short sales are day orders, not gtc")
    if new.side == "sell" and new.quantity > held - selling:
        raise invalid(
            f"sell {new.quantity} {new.symbol}: the account holds {max(held, Decimal(0))}"
            f" (open sell orders: {selling}); a short sale is sell_short"
        )
    if new.side == "sell_short" and held > 0:
        raise invalid(f"sell_short {new.symbol}: the account holds a long position; use sell")
    if new.side == "buy_to_cover" and held >= 0:
        raise invalid(f"buy_to_cover {new.symbol}: the account holds no short position")
    if new.side == "buy" and held < 0:
        raise invalid(f"buy {new.symbol}: the account is short; use buy_to_cover")


def _check_option_side(new: NewOrder, held: Decimal, selling: Decimal, buying: Decimal) -> None:
    what = f"{new.side} {new.quantity} {new.symbol}"
    if new.side == "sell_to_close" and new.quantity > held - selling:
        raise invalid(f"{what}: the account holds {max(held, Decimal(0))} contracts long "
                      f"(open sell orders: {selling})")  # fmt: skip
    if new.side == "buy_to_close" and new.quantity > -held - buying:
        raise invalid(f"{what}: the account holds {max(-held, Decimal(0))} contracts short "
                      f"(open buy orders: {buying})")  # fmt: skip
    if new.side == "sell_to_open" and held > 0:
        raise invalid(f"{what}: the account holds the contract long; use sell_to_close")
    if new.side == "buy_to_open" and held < 0:
        raise invalid(f"{what}: the account holds the contract short; use buy_to_close")
