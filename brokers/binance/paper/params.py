"""Reading a request's parameters as Binance does: the query string and a form body
together, each name once (-1101), and every one sent read by the endpoint (-1104)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from brokers.binance.paper.errors import BinanceError

_SIGNING = ("recvWindow", "timestamp", "signature")
# What each endpoint reads (rest-api.md's parameter tables), by "METHOD path".
KNOWN: dict[str, frozenset[str]] = {
    key: frozenset(names)
    for key, names in {
        "GET /api/v3/ping": (),
        "GET /api/v3/time": (),
        "GET /api/v3/exchangeInfo": ("symbol", "symbols", "permissions", "showPermissionSets",
                                     "symbolStatus"),
        "POST /api/v3/order": ("symbol", "side", "type", "timeInForce", "quantity",
                               "quoteOrderQty", "price", "newClientOrderId", "strategyId",
                               "strategyType", "stopPrice", "trailingDelta", "icebergQty",
                               "newOrderRespType", "selfTradePreventionMode", "pegPriceType",
                               "pegOffsetValue", "pegOffsetType", *_SIGNING),
        "GET /api/v3/order": ("symbol", "orderId", "origClientOrderId", *_SIGNING),
        "DELETE /api/v3/order": ("symbol", "orderId", "origClientOrderId", "newClientOrderId",
                                 "cancelRestrictions", *_SIGNING),
        "GET /api/v3/openOrders": ("symbol", *_SIGNING),
        "GET /api/v3/allOrders": ("symbol", "orderId", "startTime", "endTime", "limit",
                                  *_SIGNING),
        "GET /api/v3/myTrades": ("symbol", "orderId", "startTime", "endTime", "fromId",
                                 "limit", *_SIGNING),
        "GET /api/v3/account": ("omitZeroBalances", *_SIGNING),
    }.items()
}  # fmt: skip
DUPLICATE = BinanceError(400, -1101, "Duplicate values for a parameter detected.")


def read_params(method: str, path: str, query: str, body: str) -> dict[str, str]:
    """The parameters, or Binance's refusal of a repeated or unread one."""
    pairs = [
        *parse_qsl(query, keep_blank_values=True),
        *parse_qsl(body, keep_blank_values=True),
    ]
    params = dict(pairs)
    if len(params) != len(pairs):
        raise DUPLICATE
    known = KNOWN.get(f"{method} {path}")
    if known is not None and not params.keys() <= known:
        read = len(params.keys() & known)
        raise BinanceError(
            400,
            -1104,
            f"Not all sent parameters were read; read '{read}' parameter(s) but was sent "
            f"'{len(params)}'.",
        )
    return params
