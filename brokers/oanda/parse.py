"""OANDA v20 JSON -> normalized reports, with no I/O so every documented shape is tested alone.

Field names are OANDA's (oanda/v20-openapi ``v20.json``). An order object carries no fill
figures: they come from its ORDER_FILL transaction when one is at hand (the create answer,
or a look-up of ``fillingTransactionID``); without one a FILLED order counts its ``units``.
Money on transactions (``commission``, ``financing``, ``pl``) is in the account's home
currency, which need not be the instrument's quote currency (USD_JPY in a USD account).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from brokers.oanda.rules import Instrument, quote_currency
from brokers.values import (
    ParseError,
    as_list,
    as_object,
    decimal,
    describe,
    excerpt,
    fail,
    loads,
    opt_text,
    text,
    to_datetime,
    to_decimal,
    when,
)
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import FillReport, OrderReport, PositionReport

# Every OANDA order type, as ordersync reads it. A market-if-touched order is a price that,
# touched, sends a market order: a stop in ordersync's vocabulary (the raw type is kept).
ORDER_TYPES: dict[str, OrderType] = {
    "MARKET": OrderType.MARKET,
    "FIXED_PRICE": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "STOP": OrderType.STOP,
    "MARKET_IF_TOUCHED": OrderType.STOP,
    "TAKE_PROFIT": OrderType.LIMIT,
    "STOP_LOSS": OrderType.STOP,
    "GUARANTEED_STOP_LOSS": OrderType.STOP,
    "TRAILING_STOP_LOSS": OrderType.TRAILING_STOP,
}
# Orders OANDA hangs on a trade (its exits): they have no units of their own, and ordersync
# never places them, so listings leave them out rather than call them malformed.
TRADE_EXIT_TYPES = frozenset(
    {"TAKE_PROFIT", "STOP_LOSS", "GUARANTEED_STOP_LOSS", "TRAILING_STOP_LOSS"}
)
# GTD (good till a date) stays open until then: good till cancelled is the nearest of ours.
TIMES_IN_FORCE: dict[str, TimeInForce] = {
    "GTC": TimeInForce.GTC,
    "GTD": TimeInForce.GTC,
    "GFD": TimeInForce.DAY,
    "FOK": TimeInForce.FOK,
    "IOC": TimeInForce.IOC,
}
# PENDING: working. TRIGGERED: its price was touched and the fill (or cancel) follows in
# the same batch, so it is still open here until that shows [U: OANDA documents no more].
STATES = frozenset({"PENDING", "TRIGGERED", "FILLED", "CANCELLED"})
# Cancel reasons that are the order's own terms at work, not a refusal at creation.
_EXPIRED_REASONS = frozenset({"TIME_IN_FORCE_EXPIRED"})
_REPLACED_REASONS = frozenset({"CLIENT_REQUEST_REPLACED"})
_CANCELED_REASONS = frozenset({"CLIENT_REQUEST"})


def _opt_time(data: Mapping[str, object], key: str) -> datetime | None:
    value = data.get(key)
    return None if value is None else to_datetime(value, key)


def _opt_dec(data: Mapping[str, object], key: str) -> Decimal | None:
    value = data.get(key)
    return None if value is None else to_decimal(value, key)


def _side_and_size(data: Mapping[str, object]) -> tuple[Side, Decimal]:
    """OANDA signs ``units``: positive buys, negative sells."""
    units = decimal(data, "units")
    if units == 0:
        fail("units is 0, expected a signed non-zero number")
    return (Side.BUY if units > 0 else Side.SELL), abs(units)


def _client_id(data: Mapping[str, object]) -> str | None:
    extensions = data.get("clientExtensions")
    if extensions is None:
        return None
    return opt_text(as_object(extensions, "clientExtensions"), "id")


def order_type(raw_type: str) -> OrderType:
    """An order's type, or a create transaction's (``LIMIT_ORDER``) as the order's."""
    name = raw_type.removesuffix("_ORDER")
    try:
        return ORDER_TYPES[name]
    except KeyError:
        fail(f"unknown order type {raw_type!r}")


def _time_in_force(data: Mapping[str, object]) -> TimeInForce:
    raw = text(data, "timeInForce")
    try:
        return TIMES_IN_FORCE[raw]
    except KeyError:
        fail(f"unknown timeInForce {raw!r}")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What decided an order, where known: its fill and its cancel transactions."""

    fill: Mapping[str, object] | None = None
    cancel: Mapping[str, object] | None = None


def _status(data: Mapping[str, object], state: str, filled: Decimal, outcome: Outcome,
            raw_type: str) -> tuple[OrderStatus, str | None]:  # fmt: skip
    """The status, and the reason for a refusal. An order cancelled in the batch that made
    it, with nothing filled, was refused (margin, a halted market, a bound): REJECTED with
    OANDA's reason, since it never worked. A market order never rests, so one CANCELLED
    without a fill was cancelled at creation even when the cancel is not at hand."""
    if state in ("PENDING", "TRIGGERED"):
        return OrderStatus.NEW, None
    if state == "FILLED":
        return OrderStatus.FILLED, None
    reason = None if outcome.cancel is None else opt_text(outcome.cancel, "reason")
    if data.get("replacedByOrderID") or reason in _REPLACED_REASONS:
        return OrderStatus.REPLACED, None
    if filled > 0 or reason in _CANCELED_REASONS:
        return OrderStatus.CANCELED, None
    if reason in _EXPIRED_REASONS:
        return OrderStatus.EXPIRED, None
    if outcome.cancel is not None:
        at_creation = outcome.cancel.get("batchID") == data.get("id")
    else:
        at_creation = raw_type.removesuffix("_ORDER") == "MARKET"
    if at_creation:
        return OrderStatus.REJECTED, reason or "cancelled by OANDA when created"
    return OrderStatus.CANCELED, None


def parse_order(
    value: object, outcome: Outcome = Outcome(), home: str | None = None
) -> OrderReport:
    """One order object (``GET /orders/{specifier}`` -> ``order``) as an OrderReport."""
    data = as_object(value, "order")
    state = text(data, "state")
    if state not in STATES:
        fail(f"unknown order state {state!r}")
    return _report(data, state, outcome, home, when(data, "createTime"))


def _report(data: Mapping[str, object], state: str, outcome: Outcome, home: str | None,
            created_at: datetime) -> OrderReport:  # fmt: skip
    raw_type = text(data, "type")
    kind = order_type(raw_type)
    side, quantity = _side_and_size(data)
    order_id = text(data, "id")
    fill = None if outcome.fill is None else parse_fill(outcome.fill, home)
    if fill is not None:
        filled, average = fill.quantity, fill.price
    else:
        filled, average = (quantity if state == "FILLED" else Decimal(0)), None
    status, reason = _status(data, state, filled, outcome, raw_type)
    price = _opt_dec(data, "price")
    cancelled_at = _opt_time(data, "cancelledTime")
    if cancelled_at is None and outcome.cancel is not None:
        cancelled_at = _opt_time(outcome.cancel, "time")
    filled_at = _opt_time(data, "filledTime") or (None if fill is None else fill.filled_at)
    return OrderReport(
        broker_order_id=order_id,
        client_order_id=_client_id(data),
        symbol=text(data, "instrument"),
        side=side,
        order_type=kind,
        time_in_force=_time_in_force(data),
        quantity=quantity,
        status=status,
        raw_status=state,
        filled_quantity=filled,
        average_fill_price=average,
        created_at=created_at,
        updated_at=filled_at or cancelled_at,
        limit_price=price if kind is OrderType.LIMIT else None,
        stop_price=price if kind is OrderType.STOP else None,
        filled_at=filled_at,
        canceled_at=cancelled_at,
        replaced_by=opt_text(data, "replacedByOrderID"),
        replaces=opt_text(data, "replacesOrderID"),
        reject_reason=reason,
        fills=() if fill is None else (fill,),
        raw=dict(data),
    )


def parse_created(body: bytes, home: str | None) -> OrderReport:
    """A 201 to ``POST /orders`` (or a replace): the order as its create transaction says,
    decided by the fill or cancel transaction OANDA made in the same batch, if any."""
    data = as_object(loads(body), "body")
    create = as_object(data.get("orderCreateTransaction"), "orderCreateTransaction")
    fill = _opt_object(data, "orderFillTransaction")
    order = {**create, "type": text(create, "type").removesuffix("_ORDER")}
    if fill is not None and fill.get("orderID") != create.get("id"):
        fill = None  # another order's fill in the batch (never seen; not this order's)
    # A replace answers with the old order's cancel too; the new order's own immediate
    # cancel is ``replacingOrderCancelTransaction`` there.
    cancel = None
    for key in ("orderCancelTransaction", "replacingOrderCancelTransaction"):
        found = _opt_object(data, key)
        if found is not None and found.get("orderID") == create.get("id"):
            cancel = found
    filled = Decimal(0) if fill is None else abs(decimal(fill, "units"))
    _, units = _side_and_size(create)
    state = "CANCELLED" if cancel is not None else ("FILLED" if filled >= units else "PENDING")
    if state == "FILLED":
        order["filledTime"] = fill["time"] if fill is not None else None
    return _report(order, state, Outcome(fill, cancel), home, when(create, "time"))


def _opt_object(data: Mapping[str, object], key: str) -> dict[str, object] | None:
    value = data.get(key)
    return None if value is None else as_object(value, key)


def parse_order_answer(body: bytes) -> dict[str, object]:
    """``{"order": {...}, "lastTransactionID": ...}`` -> the raw order."""
    return as_object(as_object(loads(body), "body").get("order"), "order")


# -- transactions ---------------------------------------------------------------------------


def is_fill(value: object) -> bool:
    """Whether a raw transaction is an ORDER_FILL (others are skipped, not malformed)."""
    return isinstance(value, dict) and value.get("type") == "ORDER_FILL"


def transaction_id(value: object) -> int | None:
    """A raw transaction's numeric id, if readable (ids rise with time, per account)."""
    raw = value.get("id") if isinstance(value, dict) else None
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    return None


def _vwap(data: Mapping[str, object]) -> Decimal:
    """The fill's price: the units-weighted price of the trades it opened, closed and
    reduced (OANDA's exact prices), else ``fullVWAP``, else the deprecated ``price``."""
    legs: list[object] = []
    for key in ("tradeOpened", "tradeReduced"):
        if data.get(key) is not None:
            legs.append(data[key])
    if data.get("tradesClosed") is not None:
        legs.extend(as_list(data["tradesClosed"], "tradesClosed"))
    weighted = total = Decimal(0)
    for leg in legs:
        trade = as_object(leg, "trade")
        if trade.get("price") is None:
            break
        units = abs(decimal(trade, "units"))
        weighted += units * decimal(trade, "price")
        total += units
    else:
        if total > 0:
            return weighted / total
    for key in ("fullVWAP", "price"):
        if data.get(key) is not None:
            return decimal(data, key)
    fail("ORDER_FILL has no price (trades, fullVWAP or price)")


def parse_fill(value: object, home: str | None) -> FillReport:
    """One ORDER_FILL transaction. Its id is the fill id. ``commission`` (and any
    ``guaranteedExecutionFee``) is in the home currency: the fee where that is the quote
    currency, else a fee in that currency (``fee_asset``). ``pl``, ``financing`` and the
    trades it opened, closed or reduced (with their ``realizedPL``) stay in ``raw``."""
    data = as_object(value, "transaction")
    if data.get("type") != "ORDER_FILL":
        fail(f"type is {describe(data.get('type'))}, expected ORDER_FILL")
    side, quantity = _side_and_size(data)
    instrument = text(data, "instrument")
    fee = (_opt_dec(data, "commission") or Decimal(0)) + (
        _opt_dec(data, "guaranteedExecutionFee") or Decimal(0)
    )
    price = _vwap(data)
    in_quote = home is None or home == quote_currency(instrument) or fee == 0
    return FillReport(
        broker_fill_id=text(data, "id"),
        broker_order_id=text(data, "orderID"),
        symbol=instrument,
        side=side,
        quantity=quantity,
        price=price,
        filled_at=when(data, "time"),
        fee=fee if in_quote else Decimal(0),
        fee_asset=None if in_quote else home,
        fee_asset_amount=Decimal(0) if in_quote else fee,
        client_order_id=opt_text(data, "clientOrderID"),
        raw=dict(data),
    )


def transactions(body: bytes) -> tuple[list[object], int]:
    """A ``sinceid``/``idrange`` answer: its raw transactions and ``lastTransactionID``."""
    data = as_object(loads(body), "body")
    last = opt_text(data, "lastTransactionID")
    if last is None or not last.isdigit():
        fail(f"lastTransactionID is {describe(data.get('lastTransactionID'))}")
    return as_list(data.get("transactions", []), "transactions"), int(last)


def first_page_start(body: bytes) -> tuple[int | None, int]:
    """A ``GET /transactions`` answer: the first id of its first page (None when it found
    nothing) and ``lastTransactionID``. Pages are ``idrange`` URLs; only ``from`` is read,
    so a URL naming another host (OANDA's own) is never followed."""
    data = as_object(loads(body), "body")
    last = opt_text(data, "lastTransactionID")
    if last is None or not last.isdigit():
        fail(f"lastTransactionID is {describe(data.get('lastTransactionID'))}")
    pages = as_list(data.get("pages", []), "pages")
    if not pages:
        return None, int(last)
    url = pages[0]
    if not isinstance(url, str):
        fail(f"pages[0] is {describe(url)}, expected a URL")
    start = parse_qs(urlsplit(url).query).get("from", [""])[0]
    if not start.isdigit():
        fail(f"pages[0] has no numeric from: {excerpt(url)!r}")
    return int(start), int(last)


def transaction(body: bytes) -> dict[str, object]:
    """``GET /transactions/{id}`` -> the raw transaction."""
    return as_object(as_object(loads(body), "body").get("transaction"), "transaction")


# -- account --------------------------------------------------------------------------------


def parse_positions(body: bytes) -> list[PositionReport]:
    """``/openPositions``: long and short units per instrument as one signed quantity (a
    hedging account may hold both); the entry price of the side held, None when both are."""
    data = as_object(loads(body), "body")
    reports = []
    for raw in as_list(data.get("positions"), "positions"):
        position = as_object(raw, "position")
        long = as_object(position.get("long"), "long")
        short = as_object(position.get("short"), "short")
        long_units, short_units = decimal(long, "units"), decimal(short, "units")
        net = long_units + (short_units if short_units <= 0 else -short_units)
        average = None
        if long_units and not short_units:
            average = _opt_dec(long, "averagePrice")
        elif short_units and not long_units:
            average = _opt_dec(short, "averagePrice")
        if net != 0 or long_units or short_units:
            reports.append(PositionReport(text(position, "instrument"), net, average))
    return reports


def parse_instrument(body: bytes, name: str) -> Instrument | None:
    """``GET /accounts/{id}/instruments?instruments=NAME``: its units rules, or None when
    the account cannot trade it."""
    data = as_object(loads(body), "body")
    for raw in as_list(data.get("instruments"), "instruments"):
        item = as_object(raw, "instrument")
        if item.get("name") != name:
            continue
        precision = item.get("tradeUnitsPrecision")
        if not isinstance(precision, int) or isinstance(precision, bool) or precision < 0:
            fail(f"tradeUnitsPrecision is {describe(precision)}, expected an integer >= 0")
        return Instrument(
            name=name,
            trade_units_precision=precision,
            minimum_trade_size=_opt_dec(item, "minimumTradeSize") or Decimal(0),
            maximum_order_units=_opt_dec(item, "maximumOrderUnits"),
        )
    return None


def home_currency(body: bytes) -> str:
    """``GET /accounts/{id}/summary`` -> the account's ``currency``."""
    account = as_object(as_object(loads(body), "body").get("account"), "account")
    return text(account, "currency")


def account_summary(body: bytes) -> tuple[str, int]:
    """``GET /accounts/{id}/summary`` -> the home ``currency`` and ``lastTransactionID``."""
    data = as_object(loads(body), "body")
    last = opt_text(data, "lastTransactionID")
    if last is None or not last.isdigit():
        fail(f"lastTransactionID is {describe(data.get('lastTransactionID'))}")
    return home_currency(body), int(last)


def orders(body: bytes) -> list[object]:
    """``GET /orders`` -> its raw orders, newest first as OANDA lists them."""
    return as_list(as_object(loads(body), "body").get("orders"), "orders")


# -- errors ---------------------------------------------------------------------------------

_REJECTS = ("orderRejectTransaction", "orderCancelRejectTransaction")


def reject_reason(body: bytes) -> str | None:
    """The ``rejectReason`` of a reject transaction in an error answer, else its
    ``errorCode``; None when the body says neither."""
    try:
        data = loads(body)
    except ParseError:
        return None
    if not isinstance(data, dict):
        return None
    for key in _REJECTS:
        reject = data.get(key)
        if isinstance(reject, dict) and isinstance(reject.get("rejectReason"), str):
            return str(reject["rejectReason"])
    code = data.get("errorCode")
    return code if isinstance(code, str) else None


def error_message(body: bytes, status: int) -> str:
    """``errorMessage`` with the reason (``rejectReason`` or ``errorCode``) when given."""
    try:
        data = loads(body)
    except ParseError:
        data = None
    message = data.get("errorMessage") if isinstance(data, dict) else None
    reason = reject_reason(body)
    if isinstance(message, str):
        return f"{reason}: {message}" if reason and reason not in message else message
    return reason or excerpt(body) or f"HTTP {status}"
