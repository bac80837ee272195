"""Binance's JSON for orders, fills, trades and the account, as rest-api.md's examples."""

from __future__ import annotations

import zlib
from decimal import Decimal

from brokers.binance.paper.symbols import fmt8
from brokers.binance.paper.venue import BinanceAccount, BinanceOrder, Trade
from brokers.paper.model import Order

Json = dict[str, object]
_ZERO = Decimal(0)


def ms(us: int) -> int:
    return us // 1000


def _update_ms(order: Order) -> int:
    return ms(max(order.updated_us, order.created_us))


def ack_json(placed: BinanceOrder) -> Json:
    return {
        "symbol": placed.pair.symbol,
        "orderId": placed.order_id,
        "orderListId": -1,
        "clientOrderId": placed.client_order_id,
        "transactTime": placed.created_ms,
    }


def _terms(placed: BinanceOrder) -> Json:
    order = placed.order
    return {
        "price": fmt8(order.limit_price or _ZERO),
        "origQty": fmt8(order.qty),
        "executedQty": fmt8(order.filled_qty),
        "origQuoteOrderQty": fmt8(placed.quote_order_qty or _ZERO),
        "cummulativeQuoteQty": fmt8(placed.cumulative_quote),
        "status": placed.status,
        "timeInForce": placed.time_in_force or "GTC",
        "type": placed.type,
        "side": order.side.value.upper(),
    }


def _stop(placed: BinanceOrder) -> Json:
    return {"stopPrice": fmt8(placed.order.stop_price)} if placed.order.stop_price else {}


def result_json(placed: BinanceOrder, *, full: bool) -> Json:
    """newOrderRespType RESULT, or FULL with the fills made while placing."""
    body: Json = {
        **ack_json(placed),
        **_terms(placed),
        **_stop(placed),
        "workingTime": placed.working_ms,
        "selfTradePreventionMode": "NONE",
    }
    if full:
        body["fills"] = [fill_json(trade) for trade in placed.trades]
    return body


def fill_json(trade: Trade) -> Json:
    return {
        "price": fmt8(trade.fill.price),
        "qty": fmt8(trade.fill.qty),
        "commission": fmt8(trade.commission),
        "commissionAsset": trade.commission_asset,
        "tradeId": trade.id,
    }


def order_json(placed: BinanceOrder) -> Json:
    """GET /api/v3/order's fields, in its order."""
    return {
        "symbol": placed.pair.symbol,
        "orderId": placed.order_id,
        "orderListId": -1,
        "clientOrderId": placed.client_order_id,
        **_terms(placed),
        "stopPrice": fmt8(placed.order.stop_price or _ZERO),
        "icebergQty": fmt8(_ZERO),
        "time": placed.created_ms,
        "updateTime": _update_ms(placed.order),
        "isWorking": placed.working_ms != -1,
        "workingTime": placed.working_ms,
        "selfTradePreventionMode": "NONE",
    }


def canceled_json(placed: BinanceOrder, cancel_id: str) -> Json:
    return {
        "symbol": placed.pair.symbol,
        "origClientOrderId": placed.client_order_id,
        "orderId": placed.order_id,
        "orderListId": -1,
        "clientOrderId": cancel_id,
        "transactTime": _update_ms(placed.order),
        **_terms(placed),
        **_stop(placed),
        "selfTradePreventionMode": "NONE",
    }


def trade_json(trade: Trade) -> Json:
    order = trade.order.order
    return {
        "symbol": trade.order.pair.symbol,
        "id": trade.id,
        "orderId": trade.order.order_id,
        "orderListId": -1,
        "price": fmt8(trade.fill.price),
        "qty": fmt8(trade.fill.qty),
        "quoteQty": fmt8(trade.quote_qty),
        "commission": fmt8(trade.commission),
        "commissionAsset": trade.commission_asset,
        "time": ms(trade.fill.time_us),
        "isBuyer": order.side.value == "buy",
        "isMaker": trade.order.maker,
        "isBestMatch": True,
    }


def account_json(
    account: BinanceAccount, locked: dict[str, Decimal], fee_rate: Decimal, omit_zero: bool
) -> Json:
    assets = sorted(set(account.wallet) | set(locked))
    balances = []
    for asset in assets:
        held = locked.get(asset, _ZERO)
        free = account.wallet.get(asset, _ZERO) - held
        if omit_zero and free == 0 and held == 0:
            continue
        balances.append({"asset": asset, "free": fmt8(free), "locked": fmt8(held)})
    bps = int(fee_rate * 10_000)
    return {
        "makerCommission": bps,
        "takerCommission": bps,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": fmt8(fee_rate),
            "taker": fmt8(fee_rate),
            "buyer": fmt8(_ZERO),
            "seller": fmt8(_ZERO),
        },
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": account.update_ms,
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
        "uid": zlib.crc32(account.api_key.encode()),
    }


def truth_json(placed: BinanceOrder) -> Json:
    """What ``/_sim/truth`` adds to an engine order placed through /api/v3."""
    return {
        "binance": {
            **order_json(placed),
            "trades": [trade_json(trade) for trade in placed.trades],
        }
    }


# Why an order expired (user-data-stream.md, ``eR``), by its kind.
_EXPIRY_REASONS = {"IOC": "UNFILLED_IOC_QUANTITY_EXPIRED", "FOK": "UNFILLED_FOK_ORDER_EXPIRED"}
_NO_AMOUNT = fmt8(_ZERO)


def execution_report_json(
    placed: BinanceOrder, execution: str, at_us: int, execution_id: int, trade: Trade | None
) -> Json:
    """The user data stream's ``executionReport`` of the order as it is now: on a cancel
    ``c`` is the cancel's own id and ``C`` the order's; a trade's fields only with one."""
    order = placed.order
    canceled = execution == "CANCELED"
    on_book = (order.is_open and placed.type in ("LIMIT", "LIMIT_MAKER")
               and placed.time_in_force not in ("IOC", "FOK"))  # fmt: skip
    body: Json = {
        "e": "executionReport",
        "E": ms(at_us),
        "s": placed.pair.symbol,
        "c": placed.cancel_id if canceled and placed.cancel_id else placed.client_order_id,
        "S": order.side.value.upper(),
        "o": placed.type,
        "f": placed.time_in_force or "GTC",
        "q": fmt8(order.qty),
        "p": fmt8(order.limit_price or _ZERO),
        "P": fmt8(order.stop_price or _ZERO),
        "F": _NO_AMOUNT,
        "g": -1,
        "C": placed.client_order_id if canceled else "",
        "x": execution,
        "X": placed.status,
        # The reject fault stands for a refusal after acceptance: Binance's reason for that.
        "r": "INSUFFICIENT_BALANCES" if execution == "REJECTED" else "NONE",
        "i": placed.order_id,
        "l": fmt8(trade.fill.qty) if trade else _NO_AMOUNT,
        "z": fmt8(order.filled_qty),
        "L": fmt8(trade.fill.price) if trade else _NO_AMOUNT,
        "n": fmt8(trade.commission) if trade else "0",
        "N": trade.commission_asset if trade else None,
        "T": ms(at_us),
        "t": trade.id if trade else -1,
        "I": execution_id,
        "w": on_book,
        "m": placed.maker if trade else False,
        "M": False,
        "O": placed.created_ms,
        "Z": fmt8(placed.cumulative_quote),
        "Y": fmt8(trade.quote_qty) if trade else _NO_AMOUNT,
        "Q": fmt8(placed.quote_order_qty or _ZERO),
        "V": "NONE",
    }
    if on_book:
        body["W"] = placed.working_ms
    if execution == "EXPIRED":
        reason = _EXPIRY_REASONS.get(placed.time_in_force or "", "EXCHANGE_CANCELED")
        body["eR"] = "INSUFFICIENT_LIQUIDITY" if placed.type == "MARKET" else reason
    return body


def account_position_json(
    account: BinanceAccount, assets: tuple[str, ...], locked: dict[str, Decimal], at_us: int
) -> Json:
    """``outboundAccountPosition``: the balances an execution may have moved."""
    balances = [
        {"a": asset, "f": fmt8(account.wallet.get(asset, _ZERO) - locked.get(asset, _ZERO)),
         "l": fmt8(locked.get(asset, _ZERO))}
        for asset in dict.fromkeys(assets)
    ]  # fmt: skip
    return {"e": "outboundAccountPosition", "E": ms(at_us), "u": ms(at_us), "B": balances}
