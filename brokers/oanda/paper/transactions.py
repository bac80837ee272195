"""OANDA's transaction history: ``/transactions`` (a time window's count and its pages as
``idrange`` URLs), ``/idrange``, ``/sinceid`` and ``/transactions/{id}``. Ids are one
account-wide counter, so id order is time order."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from fastapi import APIRouter, Request, Response

from brokers.oanda.paper import errors as err
from brokers.oanda.paper.errors import OandaError
from brokers.oanda.paper.venue import OandaAccount, Transaction
from brokers.oanda.paper.wire import Stamp, transaction_json
from brokers.paper.asgi import json_response
from brokers.paper.model import parse_time

Ctx = Callable[[Request, str], tuple[OandaAccount, Stamp]]
PAGE, PAGE_MOST = 100, 1000
SINCE_MOST = 1000  # [U]: how many sinceid and idrange answer at most


def _time_us(raw: str, name: str) -> int:
    """An RFC3339 time, or UNIX seconds (the other Accept-Datetime-Format)."""
    try:
        return int(Decimal(raw) * 1_000_000)
    except InvalidOperation:
        pass
    try:
        return parse_time(raw)
    except ValueError:
        raise err.bad_request(f"Invalid value specified for '{name}': {raw!r}") from None


def _id(raw: str | None, name: str) -> int:
    if raw is None:
        raise err.bad_request(f"Missing required parameter '{name}'")
    if not raw.isdigit():
        raise err.bad_request(f"Invalid value specified for '{name}': {raw!r}")
    return int(raw)


def _types(request: Request) -> set[str] | None:
    raw = request.query_params.get("type")
    return None if not raw else set(raw.split(","))


def _of(tx: Transaction, types: set[str] | None) -> bool:
    return types is None or str(tx.body["type"]) in types


def add_transaction_routes(api: APIRouter, ctx: Ctx) -> None:
    def listing(account: OandaAccount, stamp: Stamp, chosen: list[Transaction]) -> Response:
        return json_response(
            {
                "transactions": [transaction_json(t, stamp) for t in chosen],
                "lastTransactionID": str(account.last_id),
            }
        )

    @api.get("/accounts/{account_id}/transactions")
    async def summary(request: Request, account_id: str) -> Response:
        account, stamp = ctx(request, account_id)
        query = request.query_params
        start = account.created_us if "from" not in query else _time_us(query["from"], "from")
        end = (
            request.app.state.sim.engine.now_us
            if "to" not in query
            else _time_us(query["to"], "to")
        )
        size = query.get("pageSize", str(PAGE))
        if not size.isdigit() or not 1 <= int(size) <= PAGE_MOST:
            raise err.bad_request(f"Invalid value specified for 'pageSize': {size!r}")
        types = _types(request)
        ids = [t.id for t in account.transactions if start <= t.time_us <= end and _of(t, types)]
        base = f"{request.base_url}v3/accounts/{account_id}/transactions/idrange"
        kind = "" if types is None else "&type=" + ",".join(sorted(types))
        step = int(size)
        pages = [
            f"{base}?from={chunk[0]}&to={chunk[-1]}{kind}"
            for chunk in (ids[i : i + step] for i in range(0, len(ids), step))
        ]
        body: dict[str, object] = {
            "from": stamp(start),
            "to": stamp(end),
            "pageSize": step,
            "count": len(ids),
            "pages": pages,
            "lastTransactionID": str(account.last_id),
        }
        if types is not None:
            body["type"] = sorted(types)
        return json_response(body)

    @api.get("/accounts/{account_id}/transactions/idrange")
    async def idrange(request: Request, account_id: str) -> Response:
        account, stamp = ctx(request, account_id)
        low = _id(request.query_params.get("from"), "from")
        high = _id(request.query_params.get("to"), "to")
        types = _types(request)
        chosen = [t for t in account.transactions if low <= t.id <= high and _of(t, types)]
        return listing(account, stamp, chosen[:SINCE_MOST])

    @api.get("/accounts/{account_id}/transactions/sinceid")
    async def since(request: Request, account_id: str) -> Response:
        account, stamp = ctx(request, account_id)
        after = _id(request.query_params.get("id"), "id")
        types = _types(request)
        chosen = [t for t in account.transactions if t.id > after and _of(t, types)]
        return listing(account, stamp, chosen[:SINCE_MOST])

    @api.get("/accounts/{account_id}/transactions/{transaction_id}")
    async def one(request: Request, account_id: str, transaction_id: str) -> Response:
        account, stamp = ctx(request, account_id)
        found = next((t for t in account.transactions if str(t.id) == transaction_id), None)
        if found is None:
            raise OandaError(
                404, "The transaction ID specified does not exist", "NO_SUCH_TRANSACTION"
            )  # [U: code and wording]
        return json_response(
            {
                "transaction": transaction_json(found, stamp),
                "lastTransactionID": str(account.last_id),
            }
        )
