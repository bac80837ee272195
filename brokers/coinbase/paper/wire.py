"""Coinbase's JSON for orders, fills and accounts (the fields of its documented examples;
decimals as strings, times RFC 3339 UTC with microseconds)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

from brokers.coinbase.paper.products import plain
from brokers.coinbase.paper.venue import CoinbaseAccount, CoinbaseFill, CoinbaseOrder, Fees
from brokers.paper.model import rfc3339
from core.enums import OrderType

Json = dict[str, object]
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
SUMMARY_WINDOW_US = 30 * 86_400 * 1_000_000  # Coinbase's fee tier looks back 30 days
_ORDER_TYPES = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.STOP_LIMIT: "STOP_LIMIT",
}


def _id(kind: str, name: str) -> str:
    """A stable uuid for what Coinbase identifies by uuid (users, portfolios, wallets)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ordersync-paper:coinbase:{kind}:{name}"))


def user_id(key_name: str) -> str:
    return _id("user", key_name)


def portfolio_id(key_name: str) -> str:
    return _id("portfolio", key_name)


def side_name(placed: CoinbaseOrder) -> str:
    return placed.order.side.value.upper()


def placed_json(placed: CoinbaseOrder) -> Json:
    """Create Order's ``success: true`` answer; a reused client_order_id gets the order
    already made under it (Coinbase's docs: the order corresponding to that ID is
    returned)."""
    return {
        "success": True,
        "success_response": {
            "order_id": placed.order_id,
            "product_id": placed.product.product_id,
            "side": side_name(placed),
            "client_order_id": placed.client_order_id,
            "attached_order_id": "",
        },
        "order_configuration": {placed.config_key: placed.config},
    }


def _trigger_status(placed: CoinbaseOrder) -> str:
    if placed.order.type is not OrderType.STOP_LIMIT:
        return "INVALID_ORDER_TYPE"
    return "STOP_PENDING" if placed.order.resting == "stop" else "STOP_TRIGGERED"


def _completion(placed: CoinbaseOrder) -> Decimal:
    order = placed.order
    if placed.status == "FILLED":
        return _HUNDRED
    if order.qty <= 0:
        return _ZERO
    return (order.filled_qty / order.qty * _HUNDRED).quantize(Decimal("0.01"))


def order_json(placed: CoinbaseOrder, key_name: str, hold: Decimal) -> Json:
    """One order, as Get Order's ``order`` and List Orders' items write it."""
    order, status = placed.order, placed.status
    filled, value, fees = order.filled_qty, placed.filled_value, placed.total_fees
    buy = side_name(placed) == "BUY"
    last_fill = placed.fills[-1].fill.time_us if placed.fills else None
    return {
        "order_id": placed.order_id,
        "product_id": placed.product.product_id,
        "user_id": user_id(key_name),
        "order_configuration": {placed.config_key: placed.config},
        "side": side_name(placed),
        "client_order_id": placed.client_order_id,
        "status": status,
        "time_in_force": placed.time_in_force,
        "created_time": rfc3339(order.created_us),
        "completion_percentage": plain(_completion(placed)),
        "filled_size": plain(filled),
        "average_filled_price": plain(value / filled) if filled else "0",
        "fee": "",
        "number_of_fills": str(len(placed.fills)),
        "filled_value": plain(value),
        "pending_cancel": False,
        "size_in_quote": placed.quote_size is not None,
        "total_fees": plain(fees),
        "size_inclusive_of_fees": False,
        "total_value_after_fees": plain(value + fees if buy else value - fees),
        "trigger_status": _trigger_status(placed),
        "order_type": _ORDER_TYPES[order.type],
        "reject_reason": "REJECT_REASON_UNSPECIFIED",
        "settled": status == "FILLED",
        "product_type": "SPOT",
        "reject_message": "order rejected by the venue" if status == "FAILED" else "",
        "cancel_message": "User requested cancel" if placed.canceled_by_client else "",
        "order_placement_source": "RETAIL_ADVANCED",
        "outstanding_hold_amount": plain(hold),
        "is_liquidation": False,
        "last_fill_time": None if last_fill is None else rfc3339(last_fill),
        "edit_history": [],
        "leverage": "",
        "margin_type": "UNKNOWN_MARGIN_TYPE",
        "retail_portfolio_id": portfolio_id(key_name),
        "originating_order_id": "",
        "attached_order_id": "",
    }


def fill_json(record: CoinbaseFill, key_name: str) -> Json:
    """One item of List Fills."""
    fill, placed = record.fill, record.order
    return {
        "entry_id": record.entry_id,
        "trade_id": record.trade_id,
        "order_id": placed.order_id,
        "trade_time": rfc3339(fill.time_us),
        "trade_type": "FILL",
        "price": plain(fill.price),
        "size": plain(fill.qty),
        "commission": plain(record.commission),
        "product_id": placed.product.product_id,
        "sequence_timestamp": rfc3339(fill.time_us),
        "liquidity_indicator": "MAKER" if record.maker else "TAKER",
        "size_in_quote": False,
        "user_id": user_id(key_name),
        "side": side_name(placed),
        "retail_portfolio_id": portfolio_id(key_name),
    }


def account_json(account: CoinbaseAccount, currency: str, hold: Decimal, at_us: int) -> Json:
    """One currency's wallet, as List Accounts writes it."""
    total = account.wallet.get(currency, _ZERO)
    name = account.key_name
    return {
        "uuid": _id("wallet", f"{name}:{currency}"),
        "name": f"{currency} Wallet",
        "currency": currency,
        "available_balance": {"value": plain(total - hold), "currency": currency},
        "default": True,
        "active": True,
        "created_at": rfc3339(at_us),
        "updated_at": rfc3339(at_us),
        "deleted_at": None,
        "type": "ACCOUNT_TYPE_FIAT" if currency == "USD" else "ACCOUNT_TYPE_CRYPTO",
        "ready": True,
        "hold": {"value": plain(hold), "currency": currency},
        "retail_portfolio_id": portfolio_id(name),
        "platform": "ACCOUNT_PLATFORM_CONSUMER",
    }


def truth_json(placed: CoinbaseOrder, key_name: str) -> Json:
    """What ``/_sim/truth`` adds to an engine order placed through /api/v3/brokerage."""
    return {
        "coinbase": {
            **order_json(placed, key_name, _ZERO),
            "fills": [fill_json(record, key_name) for record in placed.fills],
        }
    }


NO_TIME = "0001-01-01T00:00:00Z"  # the channel's unset time (Go's zero time)


def nanos(us: int) -> str:
    """The WebSocket's timestamps: UTC with nine fraction digits (``...57.609931463Z``)."""
    return rfc3339(us).removesuffix("Z") + "000Z"


def user_order_json(placed: CoinbaseOrder, key_name: str, hold: Decimal) -> Json:
    """One order of a ``user`` channel event (the SDK's ``UserOrders`` fields): as it stands
    now, its fill progress in ``cumulative_quantity``, ``leaves_quantity``, ``avg_price``,
    ``number_of_fills`` and ``total_fees``; decimals and booleans as strings."""
    order, status = placed.order, placed.status
    filled, value, fees = order.filled_qty, placed.filled_value, placed.total_fees
    buy = side_name(placed) == "BUY"
    return {
        "avg_price": plain(value / filled) if filled else "0",
        "cancel_reason": "User requested cancel" if placed.canceled_by_client else "",
        "client_order_id": placed.client_order_id,
        "completion_percentage": plain(_completion(placed)),
        "contract_expiry_type": "UNKNOWN_CONTRACT_EXPIRY_TYPE",
        "cumulative_quantity": plain(filled),
        "filled_value": plain(value),
        "leaves_quantity": plain(order.qty - filled),
        "limit_price": "" if order.limit_price is None else plain(order.limit_price),
        "number_of_fills": str(len(placed.fills)),
        "order_id": placed.order_id,
        "order_side": side_name(placed),
        "order_type": _ORDER_TYPES[order.type],
        "outstanding_hold_amount": plain(hold),
        "post_only": "true" if placed.config.get("post_only") is True else "false",
        "product_id": placed.product.product_id,
        "product_type": "SPOT",
        "reject_reason": "order rejected by the venue" if status == "FAILED" else "",
        "retail_portfolio_id": portfolio_id(key_name),
        "risk_managed_by": "UNKNOWN_RISK_MANAGEMENT_TYPE",
        "status": status,
        "stop_price": "" if order.stop_price is None else plain(order.stop_price),
        "time_in_force": placed.time_in_force,
        "total_fees": plain(fees),
        "total_value_after_fees": plain(value + fees if buy else value - fees),
        "trigger_status": _trigger_status(placed),
        "creation_time": nanos(order.created_us),
        "end_time": NO_TIME if placed.end_us is None else rfc3339(placed.end_us),
        "start_time": NO_TIME,
    }


def summary_json(
    account: CoinbaseAccount, fees: Fees, now_us: int, usd_per: Callable[[str], Decimal]
) -> Json:
    """Get Transaction Summary: the last 30 days' volume and fees in USD and the fee tier
    (the venue's one maker and taker rate). Coinbase writes the volumes and fees as JSON
    doubles, so they leave as floats here, at the wire only."""
    recent = [f for f in account.fills if f.fill.time_us > now_us - SUMMARY_WINDOW_US]
    volume = sum((f.value * usd_per(f.order.product.quote) for f in recent), Decimal(0))
    paid = sum((f.commission * usd_per(f.order.product.quote) for f in recent), Decimal(0))
    tier = {
        "pricing_tier": "", "usd_from": "0", "usd_to": "10000",
        "taker_fee_rate": plain(fees.rate(maker=False)),
        "maker_fee_rate": plain(fees.rate(maker=True)),
        "aop_from": "", "aop_to": "",
    }  # fmt: skip
    return {
        "total_volume": float(volume), "total_fees": float(paid), "fee_tier": tier,
        "margin_rate": None, "goods_and_services_tax": None,
        "advanced_trade_only_volume": float(volume), "advanced_trade_only_fees": float(paid),
        "coinbase_pro_volume": 0, "coinbase_pro_fees": 0, "total_balance": "",
        "has_promo_fee": False,
    }  # fmt: skip
