"""Query helpers of the /api/v3 routes: request weights, integer parameters, Binance's
paging of allOrders and myTrades (cursor id, 24 h windows, limit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from brokers.binance.paper import errors as err

Params = dict[str, str]
DAY_MS = 86_400_000
T = TypeVar("T")


def weight_of(method: str, path: str, params: Params) -> int:
    """Request weights from rest-api.md."""
    if path == "/api/v3/exchangeInfo" or path == "/api/v3/account":
        return 20
    if path == "/api/v3/allOrders":
        return 20
    if path == "/api/v3/myTrades":
        return 5 if params.get("orderId") else 20
    if path == "/api/v3/openOrders":
        return 6 if params.get("symbol") else 80
    if path == "/api/v3/order" and method == "GET":
        return 4
    return 1


def int_param(params: Params, name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise err.bad_value(name) from exc


def _limit(params: Params, default: int = 500, most: int = 1000) -> int:
    limit = int_param(params, "limit")
    if limit is None:
        return default
    if not 0 < limit <= most:
        raise err.BAD_LIMIT
    return limit


def _window(params: Params) -> tuple[int | None, int | None]:
    start, end = int_param(params, "startTime"), int_param(params, "endTime")
    if start is not None and end is not None and end - start > DAY_MS:
        raise err.INTERVAL_TOO_BIG
    return start, end


def select(
    items: list[T],
    params: Params,
    cursor: str,
    id_of: Callable[[T], int],
    time_of: Callable[[T], int],
) -> list[T]:
    """Binance's paging: from the cursor id or the start time, oldest first, ``limit`` of
    them (default 500, at most 1000); with neither, the newest ``limit``."""
    limit = _limit(params)
    start, end = _window(params)
    from_id = int_param(params, cursor)
    found = [
        item
        for item in items
        if (from_id is None or id_of(item) >= from_id)
        and (start is None or time_of(item) >= start)
        and (end is None or time_of(item) <= end)
    ]
    return found[:limit] if from_id is not None or start is not None else found[-limit:]
