"""The Alpaca JSON shapes: orders, FILL and CFEE activities, trade_updates events, positions,
the account, the clock, ground truth.

Money and quantities leave as decimal strings, times as RFC3339 UTC with microseconds
(the clock, as Alpaca's, in New York time).
"""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal
from functools import lru_cache

from brokers.alpaca.paper import crypto
from brokers.paper.accounts import Account, PriceOf
from brokers.paper.engine import Engine
from brokers.paper.events import OrderEvent
from brokers.paper.ledger import Position
from brokers.paper.model import (
    CENT,
    Fee,
    Fill,
    Order,
    asset_id,
    eastern_iso,
    fmt_decimal,
    rfc3339,
)
from brokers.paper.session import seconds_to_us

Json = dict[str, object]


def fmt_money(value: Decimal) -> str:
    """At least cents (``190.10``), more digits only when the value has them."""
    cents = value.quantize(CENT)
    return f"{cents:f}" if cents == value else fmt_decimal(value)


def _time(us: int | None) -> str | None:
    return None if us is None else rfc3339(us)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else fmt_money(value)


@lru_cache(maxsize=4096)
def _asset_id(symbol: str) -> str:
    return asset_id(symbol)


def order_json(order: Order, *, legs: bool = True) -> Json:
    """The order as Alpaca writes it; ``legs`` (an order's legs under it, each a whole order
    whose own ``legs`` is null) unless listed flat, where every leg is listed on its own."""
    nested = [order_json(leg, legs=False) for leg in order.legs] if legs and order.legs else None
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        "created_at": rfc3339(order.created_us),
        "updated_at": rfc3339(order.updated_us),
        "submitted_at": rfc3339(order.submitted_us),
        "filled_at": _time(order.filled_us),
        "expired_at": _time(order.expired_us),
        "canceled_at": _time(order.canceled_us),
        "failed_at": _time(order.failed_us),
        "replaced_at": _time(order.replaced_us),
        "replaced_by": order.replaced_by,
        "replaces": order.replaces,
        "asset_id": _asset_id(order.symbol),
        "symbol": order.symbol,
        "asset_class": "crypto" if order.crypto else "us_equity",
        # A notional order shows its dollars and no qty, as Alpaca's does.
        "notional": None if order.notional is None else fmt_decimal(order.notional),
        "qty": fmt_decimal(order.qty) if order.notional is None else None,
        "filled_qty": fmt_decimal(order.filled_qty),
        "filled_avg_price": _money(order.avg_price),
        "order_class": order.order_class,
        "order_type": order.type.value,
        "type": order.type.value,
        "side": order.side.value,
        "time_in_force": order.time_in_force.value,
        "limit_price": _money(order.limit_price),
        "stop_price": _money(order.stop_price),
        "status": order.status.value,
        "extended_hours": False,
        "legs": nested,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "position_intent": None,
    }


def activity_json(fill: Fill) -> Json:
    return {
        "id": fill.id,
        "activity_type": "FILL",
        "transaction_time": rfc3339(fill.time_us),
        "type": "fill" if fill.is_final else "partial_fill",
        "price": fmt_money(fill.price),
        "qty": fmt_decimal(fill.qty),
        "side": fill.order.side.value,
        "symbol": fill.order.symbol,
        "leaves_qty": fmt_decimal(fill.leaves_qty),
        "cum_qty": fmt_decimal(fill.cum_qty),
        "order_id": fill.order.id,
        "order_status": fill.order_status.value,
    }


def fee_activity_json(fee: Fee) -> Json:
    """A CFEE activity as Alpaca posts it: no order id; a coin fee as a negative ``qty`` of
    the position it came out of (``BTCUSD``) at its USD ``price``, ``net_amount`` 0; a dollar
    fee as a negative ``net_amount`` only."""
    body: Json = {
        "id": fee.id,
        "activity_type": "CFEE",
        "date": crypto.fee_date(fee),
        "created_at": rfc3339(fee.posted_us),
        "net_amount": fmt_money(-fee.amount) if crypto.in_usd(fee) else "0",
        "description": crypto.USD_FEE if crypto.in_usd(fee) else crypto.COIN_FEE,
    }
    if not crypto.in_usd(fee):
        assert fee.price is not None
        body["symbol"] = crypto.fee_symbol(fee)
        body["qty"] = fmt_decimal(-fee.amount)
        body["price"] = fmt_decimal(fee.price)
    body["status"] = "executed"
    body["currency"] = "USD"
    return body


def trade_update_json(event: OrderEvent, execution_id: str) -> Json:
    """A ``trade_updates`` message: the order as GET /v2/orders/{id} shows it now; a fill's
    own price and qty and the position after it only on partial_fill and fill."""
    data: Json = {
        "event": event.event.value,
        "execution_id": execution_id,
        "order": order_json(event.order),
        "timestamp": rfc3339(event.at_us),
    }
    fill = event.fill
    if fill is not None:
        data["price"] = fmt_money(fill.price)
        data["qty"] = fmt_decimal(fill.qty)
        data["position_qty"] = fmt_decimal(event.position_qty or Decimal(0))
    return {"stream": "trade_updates", "data": data}


def truth_json(order: Order) -> Json:
    """The order as the exchange really holds it, with every fill (and when its activity
    is listed) and every status change."""
    return {
        **order_json(order),
        "account": order.account,
        "parent_id": order.parent_id,  # a leg's parent; its parent's leg_ids name it
        "leg_ids": [leg.id for leg in order.legs],
        "fills": [_truth_fill(fill) for fill in order.fills],
        "timeline": [
            {"status": status.value, "time": rfc3339(at)} for status, at in order.timeline
        ],
        "forgotten": order.forgotten,
        "parked": order.parked,  # acknowledged while closed, or done for the day
    }


def _truth_fill(fill: Fill) -> Json:
    """A fill as the truth shows it; a crypto fill with its ``fee``: the asset it was taken
    in, the amount (what the position or cash got less), and its CFEE activity."""
    body: Json = {
        "id": fill.id,
        "qty": fmt_decimal(fill.qty),
        "price": fmt_money(fill.price),
        "time": rfc3339(fill.time_us),
        "visible_at": rfc3339(fill.visible_us),
    }
    fee = fill.fee
    if fill.order.crypto:
        body["fee"] = None
    if fee is not None:
        body["fee"] = {
            "asset": fee.asset,
            "amount": fmt_decimal(fee.amount),
            "price": None if fee.price is None else fmt_decimal(fee.price),
            "activity_id": fee.id,
            "posted_at": rfc3339(fee.posted_us),
        }
    return body


def position_json(
    symbol: str, position: Position, price: Decimal, available: Decimal | None = None
) -> Json:
    """One position; a crypto asset's (held under its USD pair, ``BTC/USD``) named as Alpaca
    names it, ``BTCUSD``, with ``available`` what open sells do not hold."""
    market_value = position.qty * price
    cost_basis = position.qty * position.avg_price
    is_crypto = available is not None
    return {
        "asset_id": _asset_id(symbol),
        "symbol": crypto.position_symbol(symbol) if is_crypto else symbol,
        "exchange": "CRYPTO" if is_crypto else "NASDAQ",
        "asset_class": "crypto" if is_crypto else "us_equity",
        "qty": fmt_decimal(abs(position.qty)),
        "qty_available": fmt_decimal(abs(position.qty if available is None else available)),
        "side": "long" if position.qty > 0 else "short",
        "avg_entry_price": fmt_money(position.avg_price.quantize(Decimal("1e-9"))),
        "market_value": fmt_money(market_value.quantize(CENT)),
        "cost_basis": fmt_money(cost_basis.quantize(CENT)),
        "unrealized_pl": fmt_money((market_value - cost_basis).quantize(CENT)),
        "current_price": fmt_money(price),
    }


def _position(account: Account, symbol: str, position: Position, price_of: PriceOf) -> Json:
    available = None
    if crypto.is_pair(symbol):
        base = crypto.split(symbol)[0]
        available = position.qty - crypto.held(base, account.open.values(), price_of)
    return position_json(symbol, position, price_of(symbol), available)


def positions_json(account: Account, price_of: PriceOf) -> list[Json]:
    return [
        _position(account, symbol, position, price_of)
        for symbol, position in sorted(account.ledger.positions.items())
    ]


def find_position_json(account: Account, price_of: PriceOf, symbol_or_asset_id: str) -> Json | None:
    """``GET /v2/positions/{symbol_or_asset_id}``: Alpaca accepts either key; a crypto
    position's symbol as ``BTCUSD`` or ``BTC/USD``."""
    wanted = crypto.pair_of(symbol_or_asset_id) or symbol_or_asset_id
    for symbol, position in account.ledger.positions.items():
        if wanted in (symbol, _asset_id(symbol)):
            return _position(account, symbol, position, price_of)
    return None


def account_json(account: Account, price_of: PriceOf) -> Json:
    """Per key: its own id and number (derived from the key id), cash and buying power."""
    long_value, short_value = account.market_values(price_of)
    cash = account.ledger.cash
    equity = (cash + long_value + short_value).quantize(CENT)
    buying_power = fmt_money(account.buying_power(price_of).quantize(CENT))
    digest = hashlib.sha256(account.key.encode()).hexdigest()
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"ordersync-paper:account:{account.key}")),
        "account_number": f"PA{digest[:10].upper()}",
        "status": "ACTIVE",
        "currency": "USD",
        "cash": fmt_money(cash.quantize(CENT)),
        "buying_power": buying_power,
        "regt_buying_power": buying_power,
        "non_marginable_buying_power": buying_power,
        "equity": fmt_money(equity),
        "last_equity": fmt_money(equity),
        "portfolio_value": fmt_money(equity),
        "long_market_value": fmt_money(long_value.quantize(CENT)),
        "short_market_value": fmt_money(short_value.quantize(CENT)),
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "shorting_enabled": True,
        "multiplier": "1",
    }


def clock_json(engine: Engine) -> Json:
    """``GET /v2/clock``: the simulated session; a market that never closes reports
    9999-12-31 as its next close and open."""
    settings = engine.config
    next_open, next_close = engine.session.next_open_close(
        seconds_to_us(settings.session_s), seconds_to_us(settings.overnight_s)
    )
    return {
        "timestamp": eastern_iso(engine.now_us),
        "is_open": engine.session.is_open,
        "next_open": eastern_iso(next_open),
        "next_close": eastern_iso(next_close),
    }
