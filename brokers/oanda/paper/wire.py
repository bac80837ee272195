"""OANDA v20's JSON for orders, transactions, trades, positions and the account, with times
as the request's ``Accept-Datetime-Format`` asks: RFC3339 (nanoseconds) or UNIX seconds."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from brokers.oanda.paper.instruments import HOME, Instrument
from brokers.oanda.paper.venue import (
    Json,
    OandaAccount,
    OandaOrder,
    OandaVenue,
    Terms,
    Trade,
    Transaction,
    money,
)
from brokers.paper.model import from_us

Stamp = Callable[[int], str]


def rfc3339(us: int) -> str:
    return from_us(us).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def unix(us: int) -> str:
    return f"{us // 1_000_000}.{us % 1_000_000:06d}000"


def stamp_for(header: str | None) -> Stamp | None:
    """The time format asked for; None for one OANDA does not know."""
    if header is None or header == "RFC3339":
        return rfc3339
    return unix if header == "UNIX" else None


def transaction_json(tx: Transaction, stamp: Stamp) -> Json:
    return {"id": str(tx.id), "time": stamp(tx.time_us), **tx.body}


def _terms(terms: Terms, body: Json) -> Json:
    """What an order and its create transaction both say of its terms."""
    body.update(instrument=terms.instrument.name,
                units=terms.instrument.units_str(terms.units), timeInForce=terms.time_in_force,
                positionFill=terms.position_fill)  # fmt: skip
    if terms.price is not None:
        body["price"] = terms.instrument.price_str(terms.price)
        body["triggerCondition"] = "DEFAULT"
    if terms.kind != "MARKET":
        body["partialFill"] = "DEFAULT_FILL"
    if terms.client_id is not None:
        body["clientExtensions"] = {"id": terms.client_id}
    return body


def create_body(order: OandaOrder, reason: str) -> Json:
    """A ``{TYPE}_ORDER`` transaction's fields (its id and time are the transaction's)."""
    body = _terms(order.terms, {"type": f"{order.terms.kind}_ORDER"})
    body["reason"] = reason
    if order.replaces is not None:
        body["replacesOrderID"] = str(order.replaces)
    return body


def order_json(order: OandaOrder, stamp: Stamp) -> Json:
    body = _terms(order.terms, {"id": str(order.id), "createTime": stamp(order.create_us),
                                "type": order.terms.kind})  # fmt: skip
    body["state"] = order.state
    if order.filling_ids and order.state == "FILLED":
        body["fillingTransactionID"] = str(order.filling_ids[-1])
        body["filledTime"] = stamp(order.filled_us or order.create_us)
        if order.trade_opened is not None:
            body["tradeOpenedID"] = str(order.trade_opened)
        if order.trade_reduced is not None:
            body["tradeReducedID"] = str(order.trade_reduced)
        if order.trades_closed:
            body["tradeClosedIDs"] = [str(t) for t in order.trades_closed]
    if order.cancelling_id is not None:
        body["cancellingTransactionID"] = str(order.cancelling_id)
        body["cancelledTime"] = stamp(order.cancelled_us or order.create_us)
    if order.replaces is not None:
        body["replacesOrderID"] = str(order.replaces)
    if order.replaced_by is not None:
        body["replacedByOrderID"] = str(order.replaced_by)
    return body


def trade_json(venue: OandaVenue, trade: Trade, stamp: Stamp) -> Json:
    """A Trade object: a closed one has ``closeTime`` and no open figures; the close price
    and closing transactions only once some of it was closed, as OANDA leaves them out."""
    i = trade.instrument
    body: Json = {
        "id": str(trade.id),
        "instrument": i.name,
        "price": i.price_str(trade.price),
        "openTime": stamp(trade.open_us),
        "state": trade.state,
        "initialUnits": i.units_str(trade.initial_units),
        "initialMarginRequired": money(venue.margin_of(i, trade.initial_units)),
        "currentUnits": i.units_str(trade.units),
        "realizedPL": money(trade.realized),
        "financing": "0.0000",
        "dividendAdjustment": "0.0000",
    }
    if trade.units:
        body["unrealizedPL"] = money(venue.unrealized(trade))
        body["marginUsed"] = money(venue.margin_of(i, trade.units))
    if trade.closing_ids:
        closed = abs(trade.initial_units - trade.units)
        body["averageClosePrice"] = f"{(trade.closed_value / closed).quantize(i.tick / 10):f}"
        body["closingTransactionIDs"] = [str(t) for t in trade.closing_ids]
    if trade.close_us is not None:
        body["closeTime"] = stamp(trade.close_us)
    return body


def _side(venue: OandaVenue, trades: list[Trade], i: Instrument, pl: Decimal) -> Json:
    units = sum((t.units for t in trades), Decimal(0))
    side: Json = {
        "units": i.units_str(units),
        "pl": money(pl),
        "resettablePL": money(pl),
        "unrealizedPL": money(sum((venue.unrealized(t) for t in trades), Decimal(0))),
        "financing": "0.0000",
        "dividendAdjustment": "0.0000",
        "guaranteedExecutionFees": "0.0000",
    }
    if trades:
        average = sum((t.price * abs(t.units) for t in trades), Decimal(0)) / abs(units)
        side["averagePrice"] = f"{average.quantize(i.tick / 10):f}"
        side["tradeIDs"] = [str(t.id) for t in trades]
    return side


def position_json(venue: OandaVenue, account: OandaAccount, i: Instrument) -> Json:
    trades = [t for t in account.trades if t.instrument is i]
    longs, shorts = [t for t in trades if t.units > 0], [t for t in trades if t.units < 0]
    realized = sum((t.realized for t in trades), Decimal(0))
    unrealized = sum((venue.unrealized(t) for t in trades), Decimal(0))
    return {
        "instrument": i.name,
        "long": _side(venue, longs, i, Decimal(0)),
        "short": _side(venue, shorts, i, Decimal(0)),
        "pl": money(realized),
        "resettablePL": money(realized),
        "unrealizedPL": money(unrealized),
        "marginUsed": money(sum((venue.margin_of(i, t.units) for t in trades), Decimal(0))),
        "financing": "0.0000",
        "commission": "0.0000",
        "dividendAdjustment": "0.0000",
        "guaranteedExecutionFees": "0.0000",
    }


def summary_json(venue: OandaVenue, account: OandaAccount, stamp: Stamp) -> Json:
    used = venue.margin_used(account)
    nav = venue.nav(account)
    pending = [o for o in account.orders.values() if o.state == "PENDING" and not o.forgotten]
    instruments = {t.instrument.name for t in account.trades}
    return {
        "id": account.id,
        "alias": "Primary",
        "currency": HOME,
        "createdByUserID": 1,
        "createdTime": stamp(account.created_us),
        "guaranteedStopLossOrderMode": "DISABLED",
        "hedgingEnabled": False,
        "marginRate": "0.02",
        "openTradeCount": len(account.trades),
        "openPositionCount": len(instruments),
        "pendingOrderCount": len(pending),
        "balance": money(account.balance),
        "pl": money(account.pl),
        "resettablePL": money(account.pl),
        "financing": "0.0000",
        "commission": "0.0000",
        "dividendAdjustment": "0.0000",
        "guaranteedExecutionFees": "0.0000",
        "unrealizedPL": money(nav - account.balance),
        "NAV": money(nav),
        "marginUsed": money(used),
        "marginAvailable": money(max(Decimal(0), nav - used)),
        "positionValue": money(
            sum((abs(t.units) * venue.price(t.instrument) for t in account.trades), Decimal(0))
        ),
        "marginCloseoutPercent": "0.00000",
        "withdrawalLimit": money(max(Decimal(0), nav - used)),
        "lastTransactionID": str(account.last_id),
    }


def truth_json(account: OandaAccount, order: OandaOrder) -> Json:
    """The ``oanda`` section of an order's ground truth: its OANDA ids, state and fills."""
    fills = [tx for tx in account.transactions if tx.id in order.filling_ids]
    return {
        "oanda": {
            "account_id": account.id,
            "order_id": str(order.id),
            "client_id": order.terms.client_id,
            "type": order.terms.kind,
            "state": order.state,
            "units": str(order.terms.units),
            "cancelling_transaction_id": None
            if order.cancelling_id is None
            else str(order.cancelling_id),
            "fills": [
                {
                    "id": str(tx.id),
                    **{k: tx.body[k] for k in ("units", "price", "pl")},
                    "trades_closed": tx.body.get("tradesClosed", []),
                    "trade_reduced": tx.body.get("tradeReduced"),
                    "trade_opened": tx.body.get("tradeOpened"),
                }
                for tx in fills
            ],
        }
    }
