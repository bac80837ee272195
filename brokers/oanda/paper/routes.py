"""OANDA v20's REST routes (``/v3``) over the shared engine, behind one gate that does
stats, bearer token authentication (a token opens the accounts it is bound to), 100
requests/s per token (OANDA sends no rate limit headers) and faults; any other path under
``/v3`` answers OANDA's 404."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, Request, Response

from brokers.oanda.paper import errors as err
from brokers.oanda.paper.errors import OandaError
from brokers.oanda.paper.instruments import INSTRUMENTS
from brokers.oanda.paper.orders import Reject, parse_order, read_order
from brokers.oanda.paper.stream import add_stream_route
from brokers.oanda.paper.trading import cancel_order, duplicate, open_order, refuse
from brokers.oanda.paper.transactions import add_transaction_routes
from brokers.oanda.paper.venue import Json, OandaAccount, OandaOrder, engine_account
from brokers.oanda.paper.wire import (
    Stamp,
    order_json,
    position_json,
    stamp_for,
    summary_json,
    trade_json,
    transaction_json,
)
from brokers.paper.asgi import json_response
from brokers.paper.faults import Fault
from brokers.paper.state import Sim

PREFIX = "/v3"
ORDERS_PAGE, ORDERS_MOST = 50, 500
ORDER_STATES = ("PENDING", "FILLED", "TRIGGERED", "CANCELLED", "ALL")
TRADE_STATES = ("OPEN", "CLOSED", "CLOSE_WHEN_TRADEABLE", "ALL")


def _token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def build_oanda_router(sim: Sim) -> APIRouter:
    engine = sim.engine
    venue = sim.oanda

    def bound_to(token: str) -> tuple[str, ...] | None:
        """The accounts a configured token opens (compared in constant time), else None."""
        given = token.encode()
        return next((ids for known, ids in venue.tokens.items()
                     if hmac.compare_digest(known.encode(), given)), None)  # fmt: skip

    def opens(token: str, account_id: str | None) -> bool:
        """Whether the token is known and (given one) opens the account."""
        if venue.open_mode:
            return True
        bound = bound_to(token)
        return bound is not None and (account_id is None or account_id in bound)

    def refused(path: str, error: OandaError) -> OandaError:
        """The refusal, counted in the stream's figures when the stream was asked for."""
        if path.endswith("/transactions/stream"):
            sim.oanda_stream.stats.unauthorized += 1
        return error

    async def gate(request: Request) -> None:
        method, path = request.method, request.url.path
        stats = sim.stats
        stats.total += 1
        route = request.scope.get("route")  # its path is below the prefix
        template = getattr(route, "path", None)
        stats.by_route[f"{method} {path if template is None else PREFIX + template}"] += 1
        faults = sim.faults
        applies = faults.applies(method, path)
        if applies and (delay := faults.latency_s()) > 0:
            await sim.sleep(delay)
        token = _token(request.headers.get("authorization"))
        account_id = request.path_params.get("account_id")
        if token is None or not opens(token, None):
            raise refused(path, err.UNAUTHORIZED)
        if account_id is not None and not opens(token, account_id):
            raise refused(path, err.FORBIDDEN)
        stamp = stamp_for(request.headers.get("accept-datetime-format"))
        if stamp is None:
            raise err.bad_request("Invalid value specified for 'Accept-Datetime-Format'")
        request.state.stamp = stamp
        key = engine_account(account_id or "")
        stats.by_account[key] += 1
        allowed, _ = sim.oanda_limits.hit(token, sim.now_s(), faults.settings.oanda_requests_per_s)
        if not allowed:
            stats.rate_limited += 1
            stats.rate_limited_by_account[key] += 1
            raise err.RATE_LIMITED
        creates = (method == "POST" and path.endswith("/orders")) or (
            method == "PUT" and "/orders/" in path and not path.endswith("/cancel")
        )
        fault = faults.draw(creates_order=creates) if applies else None
        if fault is not None:
            stats.faulted += 1
        if fault is Fault.RATE_LIMIT:
            raise err.RATE_LIMITED
        if fault is Fault.UNAVAILABLE:
            raise err.UNAVAILABLE
        if fault is Fault.TIMEOUT:
            await sim.sleep(faults.settings.timeout_s)
        request.state.lose_response = fault is Fault.LOSE_RESPONSE
        engine.advance()

    api = APIRouter(dependencies=[Depends(gate)])

    def ctx(request: Request, account_id: str) -> tuple[OandaAccount, Stamp]:
        return venue.account(account_id), request.state.stamp

    def answer(account: OandaAccount, body: Json, status: int = 200) -> Response:
        return json_response({**body, "lastTransactionID": str(account.last_id)}, status)

    def find(account: OandaAccount, specifier: str) -> OandaOrder | None:
        if specifier.startswith("@"):
            found = account.by_client_id.get(specifier[1:])
            return None if found is None or found.forgotten else found
        return account.known(int(specifier)) if specifier.isdigit() else None

    @api.get("/accounts")
    async def list_accounts(request: Request) -> Response:
        token = _token(request.headers.get("authorization")) or ""
        ids = sorted(venue.accounts if venue.open_mode else bound_to(token) or ())
        return json_response({"accounts": [{"id": i, "tags": []} for i in ids]})

    @api.get("/accounts/{account_id}")
    async def get_account(request: Request, account_id: str) -> Response:
        account, stamp = ctx(request, account_id)
        body = summary_json(venue, account, stamp)
        body["orders"] = [
            order_json(o, stamp)
            for o in account.orders.values()
            if o.state == "PENDING" and not o.forgotten
        ]
        body["trades"] = [trade_json(venue, t, stamp) for t in account.trades]
        held = {t.instrument.name: t.instrument for t in account.trades}
        body["positions"] = [position_json(venue, account, i) for i in held.values()]
        return answer(account, {"account": body})

    @api.get("/accounts/{account_id}/summary")
    async def get_summary(request: Request, account_id: str) -> Response:
        account, stamp = ctx(request, account_id)
        return answer(account, {"account": summary_json(venue, account, stamp)})

    @api.get("/accounts/{account_id}/instruments")
    async def get_instruments(request: Request, account_id: str) -> Response:
        account, _ = ctx(request, account_id)
        names = request.query_params.get("instruments")
        wanted = list(INSTRUMENTS) if names is None else names.split(",")
        found = [INSTRUMENTS[n].info() for n in wanted if n in INSTRUMENTS]
        return answer(account, {"instruments": found})

    # -- orders -----------------------------------------------------------------------------

    async def create(request: Request, account_id: str, old: OandaOrder | None) -> Response:
        account, stamp = ctx(request, account_id)
        raw = read_order(await request.body())
        try:
            new = parse_order(raw)
            duplicate(account, new, but=old)
        except Reject as rejected:
            raise refuse(
                account, raw, rejected.reason, rejected.message, stamp, engine.now_us
            ) from None
        halted = sim.faults.take_reject()
        made = open_order(
            venue,
            account,
            new,
            halted=halted,
            replaces=old,
            reason="CLIENT_ORDER" if old is None else "REPLACEMENT",
        )
        if getattr(request.state, "lose_response", False):
            await sim.sleep(sim.faults.settings.timeout_s)
            raise err.ANSWER_LOST
        body: Json = {}
        for tx in made:
            kind = str(tx.body["type"])
            key = (
                "orderFillTransaction"
                if kind == "ORDER_FILL"
                else "orderCreateTransaction"
                if kind.endswith("_ORDER")
                else None
            )
            if kind == "ORDER_CANCEL":
                mine = old is not None and tx.body["orderID"] == str(old.id)
                key = (
                    "orderCancelTransaction"
                    if mine or old is None
                    else ("replacingOrderCancelTransaction")
                )
            if key is not None:
                body[key] = transaction_json(tx, stamp)
        body["relatedTransactionIDs"] = [str(tx.id) for tx in made]
        return answer(account, body, 201)

    @api.post("/accounts/{account_id}/orders")
    async def post_order(request: Request, account_id: str) -> Response:
        return await create(request, account_id, None)

    @api.get("/accounts/{account_id}/orders")
    async def list_orders(request: Request, account_id: str) -> Response:
        account, stamp = ctx(request, account_id)
        state, count, before, ids, instrument = _listing(request, ORDER_STATES, "PENDING")
        chosen = [
            o
            for o in sorted(account.orders.values(), key=lambda o: -o.id)
            if not o.forgotten
            and (state == "ALL" or o.state == state)
            and (before is None or o.id < int(before))
            and (ids is None or str(o.id) in ids)
            and (instrument is None or o.terms.instrument.name == instrument)
        ][:count]
        return answer(account, {"orders": [order_json(o, stamp) for o in chosen]})

    @api.get("/accounts/{account_id}/pendingOrders")
    async def pending_orders(request: Request, account_id: str) -> Response:
        account, stamp = ctx(request, account_id)
        chosen = [
            o
            for o in sorted(account.orders.values(), key=lambda o: -o.id)
            if o.state == "PENDING" and not o.forgotten
        ]
        return answer(account, {"orders": [order_json(o, stamp) for o in chosen]})

    @api.get("/accounts/{account_id}/orders/{specifier}")
    async def get_order(request: Request, account_id: str, specifier: str) -> Response:
        account, stamp = ctx(request, account_id)
        order = find(account, specifier)
        if order is None:
            raise err.ORDER_MISSING
        return answer(account, {"order": order_json(order, stamp)})

    @api.put("/accounts/{account_id}/orders/{specifier}/cancel")
    async def cancel(request: Request, account_id: str, specifier: str) -> Response:
        account, stamp = ctx(request, account_id)
        order = find(account, specifier)
        if order is None or order.state != "PENDING":
            made = account.add(
                engine.now_us,
                {
                    "type": "ORDER_CANCEL_REJECT",
                    **_named(specifier, order),
                    "rejectReason": "ORDER_DOESNT_EXIST",
                },
            )
            raise OandaError(
                404,
                "The order ID specified does not exist",
                "ORDER_DOESNT_EXIST",
                {
                    "orderCancelRejectTransaction": transaction_json(made, stamp),
                    "relatedTransactionIDs": [str(made.id)],
                    "lastTransactionID": str(account.last_id),
                },
            )
        made = cancel_order(venue, account, order)
        return answer(
            account,
            {
                "orderCancelTransaction": transaction_json(made, stamp),
                "relatedTransactionIDs": [str(made.id)],
            },
        )

    @api.put("/accounts/{account_id}/orders/{specifier}")
    async def replace(request: Request, account_id: str, specifier: str) -> Response:
        account, _ = ctx(request, account_id)
        old = find(account, specifier)
        if old is None or old.state != "PENDING":
            raise err.ORDER_MISSING
        return await create(request, account_id, old)

    # -- trades and positions -----------------------------------------------------------

    @api.get("/accounts/{account_id}/openTrades")
    async def open_trades(request: Request, account_id: str) -> Response:
        account, stamp = ctx(request, account_id)
        trades = sorted(account.trades, key=lambda t: -t.id)
        return answer(account, {"trades": [trade_json(venue, t, stamp) for t in trades]})

    @api.get("/accounts/{account_id}/trades")
    async def list_trades(request: Request, account_id: str) -> Response:
        """Newest first, ``count`` (default 50) at most, ``beforeID`` the highest id
        listed; ``state`` defaults to OPEN, ``ids`` names trades (still within state)."""
        account, stamp = ctx(request, account_id)
        state, count, before, ids, instrument = _listing(request, TRADE_STATES, "OPEN")
        if ids is not None and not all(i.isdigit() for i in ids):
            raise err.bad_request(f"Invalid value specified for 'ids': {','.join(sorted(ids))!r}")
        chosen = [
            t
            for t in sorted(account.trades + account.closed_trades, key=lambda t: -t.id)
            if (state == "ALL" or t.state == state)
            and (before is None or t.id <= int(before))
            and (ids is None or str(t.id) in ids)
            and (instrument is None or t.instrument.name == instrument)
        ][:count]
        return answer(account, {"trades": [trade_json(venue, t, stamp) for t in chosen]})

    @api.get("/accounts/{account_id}/trades/{specifier}")
    async def get_trade(request: Request, account_id: str, specifier: str) -> Response:
        """By id; ``@clientID`` names a trade's client extensions, which the paper never
        sets, so it finds none."""
        account, stamp = ctx(request, account_id)
        trade = next((t for t in account.trades + account.closed_trades
                      if specifier.isdigit() and t.id == int(specifier)), None)  # fmt: skip
        if trade is None:
            raise err.TRADE_MISSING
        return answer(account, {"trade": trade_json(venue, trade, stamp)})

    @api.get("/accounts/{account_id}/openPositions")
    async def open_positions(request: Request, account_id: str) -> Response:
        account, _ = ctx(request, account_id)
        held = {t.instrument.name: t.instrument for t in account.trades}
        return answer(
            account,
            {"positions": [position_json(venue, account, i) for _, i in sorted(held.items())]},
        )

    # Before /transactions/{id}, which would take "stream" for an id.
    add_stream_route(api, ctx, lambda: engine.now_us, sim.oanda_stream, sim.faults)
    add_transaction_routes(api, ctx)

    unknown = APIRouter()

    @unknown.api_route(
        "/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    async def not_found(rest: str) -> Response:
        raise OandaError(404, "The requested resource could not be found")  # [U: wording]

    router = APIRouter(prefix=PREFIX)
    router.include_router(api)
    router.include_router(unknown)
    return router


def _named(specifier: str, order: OandaOrder | None) -> dict[str, str]:
    """How a cancel reject names the order: its id and client id, as far as known."""
    if order is not None:
        named = {"orderID": str(order.id)}
        if order.terms.client_id is not None:
            named["clientOrderID"] = order.terms.client_id
        return named
    if specifier.startswith("@"):
        return {"clientOrderID": specifier[1:]}
    return {"orderID": specifier}


def _listing(
    request: Request, states: tuple[str, ...], default: str
) -> tuple[str, int, str | None, set[str] | None, str | None]:
    """A list request's ``state``, ``count``, ``beforeID``, ``ids`` and ``instrument``,
    each refused with OANDA's 400 when it cannot be read."""
    query = request.query_params
    state = query.get("state", default)
    if state not in states:
        raise err.bad_request(f"Invalid value specified for 'state': {state!r}")
    count = _count(query.get("count"))
    before = query.get("beforeID")
    if before is not None and not before.isdigit():
        raise err.bad_request(f"Invalid value specified for 'beforeID': {before!r}")
    ids = None if query.get("ids") is None else set(query["ids"].split(","))
    return state, count, before, ids, query.get("instrument")


def _count(raw: str | None) -> int:
    if raw is None:
        return ORDERS_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= ORDERS_MOST:
        raise err.bad_request(f"Invalid value specified for 'count': {raw!r}")
    return int(raw)
