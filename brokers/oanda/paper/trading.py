"""Placing, replacing and cancelling as OANDA does them, each one batch of transactions: a
market order fills at once in full or is cancelled (``INSUFFICIENT_MARGIN``, or
``MARKET_HALTED`` for the reject fault); a pending order that is marketable fills at once,
an IOC or FOK one that is not is cancelled, the rest rest in the engine's book."""

from __future__ import annotations

import contextlib
from decimal import Decimal

from brokers.oanda.paper.errors import OandaError
from brokers.oanda.paper.orders import Reject, reject_body
from brokers.oanda.paper.venue import (
    Json,
    OandaAccount,
    OandaOrder,
    OandaVenue,
    Terms,
    Transaction,
    engine_account,
)
from brokers.oanda.paper.wire import Stamp, create_body, transaction_json
from brokers.paper.engine import OrderClosedError
from brokers.paper.model import OrderRequest
from core.enums import OrderType, Side, TimeInForce

_ENGINE_TIF = {
    "GTC": TimeInForce.GTC,
    "GFD": TimeInForce.DAY,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
}


def refuse(
    account: OandaAccount, raw: Json, reason: str, message: str, stamp: Stamp, now_us: int
) -> OandaError:
    """A 400 with the reject transaction OANDA records for it."""
    made = account.add(now_us, reject_body(raw, reason))
    return OandaError(
        400,
        message,
        reason,
        {
            "orderRejectTransaction": transaction_json(made, stamp),
            "relatedTransactionIDs": [str(made.id)],
            "lastTransactionID": str(account.last_id),
        },
    )


def duplicate(account: OandaAccount, new: Terms, but: OandaOrder | None = None) -> None:
    if new.client_id is None:
        return
    existing = account.by_client_id.get(new.client_id)
    if existing is not None and existing is not but and not existing.forgotten:
        raise Reject(
            "CLIENT_ORDER_ID_ALREADY_EXISTS",
            "The client Order ID specified is already assigned to another pending Order",
        )


def _engine_request(order: OandaOrder, market: Decimal) -> OrderRequest:
    side = Side.BUY if order.terms.units > 0 else Side.SELL
    kind = {"MARKET": OrderType.MARKET, "LIMIT": OrderType.LIMIT, "STOP": OrderType.STOP}.get(
        order.terms.kind
    )
    if kind is None:  # market if touched: a limit on the near side of the market, else a stop
        assert order.terms.price is not None
        below = order.terms.price <= market
        kind = OrderType.LIMIT if below == (side is Side.BUY) else OrderType.STOP
    price = order.terms.price
    return OrderRequest(
        symbol=order.terms.instrument.engine_symbol,
        qty=abs(order.terms.units),
        side=side,
        type=kind,
        time_in_force=_ENGINE_TIF[order.terms.time_in_force],
        limit_price=price if kind is OrderType.LIMIT else None,
        stop_price=price if kind is OrderType.STOP else None,
    )


def _marketable(order: OandaOrder, market: Decimal) -> bool:
    if order.terms.kind == "MARKET":
        return True
    assert order.terms.price is not None
    buy = order.terms.units > 0
    if order.terms.kind == "LIMIT":
        return order.terms.price >= market if buy else order.terms.price <= market
    if order.terms.kind == "STOP":
        return order.terms.price <= market if buy else order.terms.price >= market
    return True  # market if touched: its engine form decides when it is touched


def open_order(
    venue: OandaVenue,
    account: OandaAccount,
    new: Terms,
    *,
    reason: str,
    halted: bool,
    replaces: OandaOrder | None = None,
) -> list[Transaction]:
    """Create the order (after cancelling ``replaces``) and settle what happens at once: the
    transactions of the batch, in id order."""
    engine = venue.engine
    now = engine.now_us
    first = account.last_id + 1
    order_id = first + (1 if replaces is not None else 0)
    made: list[Transaction] = []
    with venue.batch(first):
        if replaces is not None:
            made.append(
                venue.cancel(
                    account,
                    replaces,
                    "CLIENT_REQUEST_REPLACED",
                    now,
                    replacedByOrderID=str(order_id),
                )
            )
            replaces.replaced_by = order_id
            if replaces.engine_order is not None and replaces.engine_order.is_open:
                engine.cancel_at_once(replaces.engine_order.id)
        order = OandaOrder(
            order_id,
            new,
            now,
            replaces=None if replaces is None else replaces.id,
        )
        venue.keep(account, order)
        made.append(account.add(now, create_body(order, reason)))
        start = len(account.transactions)
        market = venue.price(new.instrument)
        short = new.kind == "MARKET" and venue.margin_short(account, new.instrument, new.units)
        if halted or short:
            venue.cancel(account, order, "MARKET_HALTED" if halted else "INSUFFICIENT_MARGIN", now)
            _record_refused(venue, account, order, market)
        else:
            _submit(venue, account, order, market)
        made.extend(account.transactions[start:])
    return made


def _record_refused(
    venue: OandaVenue, account: OandaAccount, order: OandaOrder, market: Decimal
) -> None:
    """An order OANDA cancelled as it made it is still an order: the engine's ground truth
    holds it, rejected."""
    order.engine_order = venue.engine.submit(
        _engine_request(order, market), account=engine_account(account.id), reject=True,
        check_buying_power=False,
    )  # fmt: skip
    venue.keep(account, order)


def _submit(venue: OandaVenue, account: OandaAccount, order: OandaOrder, market: Decimal) -> None:
    engine = venue.engine
    venue.pending = (account, order)
    try:
        placed = engine.submit(
            _engine_request(order, market),
            account=engine_account(account.id),
            acknowledged=True,
            check_buying_power=False,
        )
    finally:
        venue.pending = None
    if order.engine_order is None:
        order.engine_order = placed
        venue.keep(account, order)
    if not placed.is_open:
        return
    if _marketable(order, market) and order.terms.kind != "MARKET_IF_TOUCHED":
        with contextlib.suppress(OrderClosedError):  # it filled inside submit
            engine.force_fill(placed.id)
    elif order.terms.time_in_force in ("IOC", "FOK"):
        venue.cancel(account, order, "TIME_IN_FORCE_EXPIRED", engine.now_us)
        engine.cancel_at_once(placed.id)


def cancel_order(venue: OandaVenue, account: OandaAccount, order: OandaOrder) -> Transaction:
    """A client's cancel of a pending order, its own batch."""
    made = venue.cancel(account, order, "CLIENT_REQUEST", venue.engine.now_us)
    if order.engine_order is not None and order.engine_order.is_open:
        venue.engine.cancel_at_once(order.engine_order.id)
    return made
