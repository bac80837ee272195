"""OANDA v20's documented answers, as the tests' fakes send them.

Sources: hootnot/oanda-api-v20 ``oandapyV20/endpoints/responses/{orders,trades,positions,
accounts}.py`` (answers recorded from OANDA's practice API; cited per payload), and where
no recorded answer exists, bodies built from oanda/v20-openapi ``json/v20.json`` field by
field (marked "spec"): MarketOrderTransaction, OrderFillTransaction (tradeOpened with its
``price``), OrderCancelTransaction, the 400/404 reject bodies (``orderRejectTransaction``,
``errorCode``, ``errorMessage``), TransactionsResponse (``pages`` of idrange URLs).
"""

from __future__ import annotations

import copy
from typing import Any

ACCOUNT = "101-004-1435156-001"

# broker-apis.md §5 "Fixture: GET order" (hootnot orders.py, GET /orders/{id}).
PENDING_LIMIT: dict[str, Any] = {
    "order": {
        "triggerCondition": "TRIGGER_DEFAULT", "partialFill": "DEFAULT_FILL",
        "price": "1.20000", "stopLossOnFill": {"timeInForce": "GTC", "price": "1.22000"},
        "createTime": "2016-10-25T21:07:21.065554321Z", "timeInForce": "GTC",
        "instrument": "EUR_USD", "state": "PENDING", "units": "-100", "id": "2309",
        "type": "LIMIT", "positionFill": "POSITION_DEFAULT",
    },
    "lastTransactionID": "2309",
}  # fmt: skip

# hootnot trades.py (the ORDER_FILL closing trade 2313): no commission, no trade price.
FILL_CLOSE: dict[str, Any] = {
    "orderID": "2316", "financing": "0.0000", "instrument": "EUR_USD", "price": "1.09289",
    "userID": 1435156, "batchID": "2316", "accountBalance": "33848.1208",
    "reason": "MARKET_ORDER_TRADE_CLOSE",
    "tradesClosed": [{"units": "-100", "financing": "0.0000", "realizedPL": "-0.1455",
                      "tradeID": "2313"}],
    "time": "2016-10-28T15:11:58.023004583Z", "units": "-100", "type": "ORDER_FILL",
    "id": "2317", "pl": "-0.1455", "accountID": ACCOUNT,
}  # fmt: skip

# spec: MarketOrderTransaction + OrderFillTransaction in one batch (POST /orders -> 201).
MARKET_CREATE: dict[str, Any] = {
    "type": "MARKET_ORDER", "instrument": "EUR_USD", "units": "100", "timeInForce": "FOK",
    "positionFill": "DEFAULT", "reason": "CLIENT_ORDER", "clientExtensions": {"id": "cid-1"},
    "id": "6368", "accountID": ACCOUNT, "userID": 1435156, "batchID": "6368",
    "requestID": "60637520516862398", "time": "2024-05-02T10:00:00.000000000Z",
}  # fmt: skip
MARKET_FILL: dict[str, Any] = {
    "type": "ORDER_FILL", "orderID": "6368", "clientOrderID": "cid-1",
    "instrument": "EUR_USD", "units": "100", "requestID": "60637520516862398",
    "price": "1.07203", "fullVWAP": "1.07203", "reason": "MARKET_ORDER", "pl": "0.0000",
    "financing": "0.0000", "commission": "0.0500", "guaranteedExecutionFee": "0.0000",
    "accountBalance": "99999.9500", "halfSpreadCost": "0.0070",
    "tradeOpened": {"tradeID": "6369", "units": "100", "price": "1.07201",
                    "guaranteedExecutionFee": "0.0000", "halfSpreadCost": "0.0070",
                    "initialMarginRequired": "2.1440"},
    "id": "6369", "accountID": ACCOUNT, "userID": 1435156, "batchID": "6368",
    "time": "2024-05-02T10:00:00.000000000Z",
}  # fmt: skip
MARKET_FILLED = {
    "orderCreateTransaction": MARKET_CREATE, "orderFillTransaction": MARKET_FILL,
    "relatedTransactionIDs": ["6368", "6369"], "lastTransactionID": "6369",
}  # fmt: skip
# spec: a market order OANDA cancels in the batch that made it (OrderCancelReason).
MARKET_HALTED = {
    "orderCreateTransaction": MARKET_CREATE,
    "orderCancelTransaction": {
        "type": "ORDER_CANCEL", "orderID": "6368", "clientOrderID": "cid-1",
        "reason": "MARKET_HALTED", "id": "6369", "accountID": ACCOUNT, "userID": 1435156,
        "batchID": "6368", "requestID": "60637520516862398",
        "time": "2024-05-02T10:00:00.000000000Z",
    },
    "relatedTransactionIDs": ["6368", "6369"], "lastTransactionID": "6369",
}  # fmt: skip

# hootnot orders.py "_v3_accounts_accountID_orders_create" (a LIMIT, 201, not filled).
LIMIT_CREATED: dict[str, Any] = {
    "orderCreateTransaction": {
        "timeInForce": "GTC", "triggerCondition": "TRIGGER_DEFAULT", "positionFill": "DEFAULT",
        "stopLossOnFill": {"timeInForce": "GTC", "price": "1.22000"}, "userID": 1435156,
        "id": "2304", "batchID": "2304", "instrument": "EUR_USD", "reason": "CLIENT_ORDER",
        "time": "2016-10-24T21:48:18.593753865Z", "units": "-100", "type": "LIMIT_ORDER",
        "price": "1.20000", "accountID": ACCOUNT,
    },
    "relatedTransactionIDs": ["2304"], "lastTransactionID": "2304",
}  # fmt: skip


def reject(reason: str, message: str, kind: str = "MARKET_ORDER_REJECT") -> dict[str, Any]:
    """spec: a 400/404 to POST /orders: the reject transaction, errorCode and errorMessage."""
    return {
        "orderRejectTransaction": {
            "type": kind, "instrument": "EUR_USD", "units": "100", "timeInForce": "FOK",
            "rejectReason": reason, "id": "6370", "accountID": ACCOUNT, "batchID": "6370",
            "time": "2024-05-02T10:00:01.000000000Z",
        },
        "relatedTransactionIDs": ["6370"], "lastTransactionID": "6370",
        "errorCode": reason, "errorMessage": message,
    }  # fmt: skip


# OANDA's 401 body (the v20 docs' and every client's).
UNAUTHORIZED = {"errorMessage": "Insufficient authorization to perform request."}
NO_SUCH_ORDER = {"errorCode": "ORDER_DOESNT_EXIST", "errorMessage": "The order ID specified "
                 "does not exist"}  # fmt: skip

# hootnot accounts.py "_v3_account_by_accountID_instruments" (trimmed to the units fields).
INSTRUMENTS = {
    "instruments": [
        {"name": "EUR_USD", "type": "CURRENCY", "displayName": "EUR/USD", "pipLocation": -4,
         "displayPrecision": 5, "tradeUnitsPrecision": 0, "minimumTradeSize": "1",
         "maximumTrailingStopDistance": "1.00000", "minimumTrailingStopDistance": "0.00050",
         "maximumPositionSize": "0", "maximumOrderUnits": "100000000", "marginRate": "0.02"},
    ],
    "lastTransactionID": "2124",
}  # fmt: skip
# spec: a CFD that takes a tenth of a unit.
BRENT = {
    "instruments": [
        {"name": "BCO_USD", "type": "CFD", "displayName": "Brent Crude Oil",
         "pipLocation": -2, "displayPrecision": 3, "tradeUnitsPrecision": 1,
         "minimumTradeSize": "1", "maximumOrderUnits": "10000", "marginRate": "0.1"},
    ],
    "lastTransactionID": "2124",
}  # fmt: skip

SUMMARY = {"account": {"id": ACCOUNT, "currency": "USD", "balance": "100000.0000"},
           "lastTransactionID": "6369"}  # fmt: skip

# hootnot positions.py "_v3_accounts_accountID_openpositions" (trimmed).
OPEN_POSITIONS = {
    "positions": [
        {"instrument": "EUR_USD",
         "long": {"units": "0", "pl": "-0.6848", "resettablePL": "-0.6848",
                  "unrealizedPL": "0.0000"},
         "short": {"units": "-100", "averagePrice": "1.09322", "pl": "-0.1455",
                   "resettablePL": "-0.1455", "tradeIDs": ["2315"],
                   "unrealizedPL": "-0.0170"},
         "pl": "-0.8303", "resettablePL": "-0.8303", "unrealizedPL": "-0.0170"},
    ],
    "lastTransactionID": "2317",
}  # fmt: skip


def transactions_summary(first: int | None, last: int) -> dict[str, Any]:
    """spec (TransactionsResponse): ``pages`` are idrange URLs on OANDA's own host."""
    pages = (
        []
        if first is None
        else [
            f"https://api-fxtrade.oanda.com/v3/accounts/{ACCOUNT}/transactions/idrange"
            f"?from={first}&to={last}&type=ORDER_FILL"
        ]
    )
    return {"from": "2024-05-01T00:00:00.000000000Z", "to": "2024-05-03T00:00:00.000000000Z",
            "pageSize": 1000, "type": ["ORDER_FILL"], "count": len(pages), "pages": pages,
            "lastTransactionID": str(last)}  # fmt: skip


def fill(tx_id: int, order_id: int, units: str = "100", **changes: Any) -> dict[str, Any]:
    """An ORDER_FILL like MARKET_FILL, with its own ids."""
    body = copy.deepcopy(MARKET_FILL)
    body.update(id=str(tx_id), orderID=str(order_id), batchID=str(order_id), units=units)
    body["tradeOpened"]["units"] = units
    body.update(changes)
    return body


def other(tx_id: int, kind: str = "DAILY_FINANCING") -> dict[str, Any]:
    """A transaction that is not a fill (skipped by the fill listing)."""
    return {"id": str(tx_id), "type": kind, "accountID": ACCOUNT, "batchID": str(tx_id),
            "time": "2024-05-02T10:00:00.000000000Z"}  # fmt: skip


# hootnot trades.py (GET /trades?instrument=DE30_EUR,EUR_USD): two OPEN trades, newest first.
TRADES: dict[str, Any] = {
    "trades": [
        {"financing": "0.0000", "openTime": "2016-10-28T14:28:05.231759081Z",
         "price": "10678.3", "unrealizedPL": "25.0000", "realizedPL": "0.0000",
         "instrument": "DE30_EUR", "state": "OPEN", "initialUnits": "10",
         "currentUnits": "10", "id": "2315"},
        {"financing": "0.0000", "openTime": "2016-10-28T14:27:19.011002322Z",
         "price": "1.09448", "unrealizedPL": "-0.0933", "realizedPL": "0.0000",
         "instrument": "EUR_USD", "state": "OPEN", "initialUnits": "100",
         "currentUnits": "100", "id": "2313"},
    ],
    "lastTransactionID": "2315",
}  # fmt: skip
# spec (trade.Trade): trade 2313 above once FILL_CLOSE (2317) closed it.
CLOSED_TRADE: dict[str, Any] = {
    "financing": "0.0000", "openTime": "2016-10-28T14:27:19.011002322Z", "price": "1.09448",
    "realizedPL": "-0.1455", "instrument": "EUR_USD", "state": "CLOSED",
    "initialUnits": "100", "initialMarginRequired": "2.1890", "currentUnits": "0",
    "averageClosePrice": "1.09303", "closingTransactionIDs": ["2317"],
    "closeTime": "2016-10-28T15:11:58.023004583Z", "id": "2313",
}  # fmt: skip
