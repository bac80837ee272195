"""Binance Spot's REST routes (/api/v3) over the shared engine, behind one gate that does
stats, weights and limits, faults and SIGNED endpoint security."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Depends, Request, Response

from brokers.binance.paper import errors as err
from brokers.binance.paper.auth import check_key, check_signed
from brokers.binance.paper.errors import BinanceError
from brokers.binance.paper.limits import Limits, limits_of
from brokers.binance.paper.orders import (
    NewOrder,
    generated_client_id,
    pair_param,
    parse_new_order,
)
from brokers.binance.paper.params import read_params
from brokers.binance.paper.queries import Params, int_param, select, weight_of
from brokers.binance.paper.symbols import PAIRS
from brokers.binance.paper.venue import (
    BinanceAccount,
    BinanceOrder,
    engine_account,
    quote_to_qty,
)
from brokers.binance.paper.wire import (
    account_json,
    ack_json,
    canceled_json,
    order_json,
    result_json,
    trade_json,
)
from brokers.paper.asgi import EXTRA_HEADERS, json_response
from brokers.paper.engine import OrderClosedError
from brokers.paper.faults import Fault
from brokers.paper.model import Order, OrderRequest
from brokers.paper.state import Sim
from core.enums import TimeInForce

SIGNED = frozenset(
    {"/api/v3/order", "/api/v3/openOrders", "/api/v3/allOrders", "/api/v3/myTrades",
     "/api/v3/account", "/api/v3/order/cancelReplace"}
)  # fmt: skip
ORDER_LIST_PATHS = ("/api/v3/orderList/oco", "/api/v3/orderList")
CREATES_ORDER = ("/api/v3/order", "/api/v3/order/cancelReplace")
REPLACE_MODES = ("STOP_ON_FAILURE", "ALLOW_FAILURE")


def build_binance_router(sim: Sim) -> APIRouter:
    engine = sim.engine
    venue = sim.binance

    def current_limits() -> Limits:
        return limits_of(sim.faults.settings)

    async def gate(request: Request) -> None:
        method, path = request.method, request.url.path
        template = getattr(request.scope.get("route"), "path", path)
        stats = sim.stats
        stats.total += 1
        stats.by_route[f"{method} {template}"] += 1
        query = request.url.query
        body = (await request.body()).decode("latin-1")
        problem: BinanceError | None = None
        try:
            params = read_params(method, path, query, body)
        except BinanceError as exc:  # refused once the weight is counted
            params, problem = {}, exc
        request.state.params = params
        faults = sim.faults
        applies = faults.applies(method, path)
        if applies and (delay := faults.latency_s()) > 0:
            await sim.sleep(delay)
        headers: dict[str, str] = request.scope.setdefault(EXTRA_HEADERS, {})
        ip = request.client.host if request.client else "-"
        try:
            headers.update(
                sim.binance_limits.charge(
                    ip, weight_of(method, path, params), sim.now_s(), current_limits()
                )
            )
        except BinanceError as exc:
            headers.update(exc.headers)
            exc.headers = {}
            stats.rate_limited += 1
            raise
        if problem is not None:
            raise problem
        if path in SIGNED:
            api_key = request.headers.get("x-mbx-apikey", "")
            secret = check_key(api_key, venue.secret_of(api_key))
            check_signed(params, query, body, secret, int(sim.now_s() * 1000))
            request.state.account = venue.account(api_key)
            stats.by_account[engine_account(api_key)] += 1
        creates = method == "POST" and path in CREATES_ORDER
        fault = faults.draw(creates_order=creates) if applies else None
        if fault is not None:
            stats.faulted += 1
        if fault is Fault.RATE_LIMIT:
            headers["Retry-After"] = "1"
            raise BinanceError(
                429,
                -1003,
                "Too much request weight used; current limit is "
                f"{current_limits().weight_per_min} request weight per 1 MINUTE. Please use "
                "WebSocket Streams for live updates to avoid polling the API.",
            )
        if fault is Fault.UNAVAILABLE:
            raise err.OVERLOADED
        if fault is Fault.TIMEOUT:
            await sim.sleep(faults.settings.timeout_s)
        request.state.lose_response = fault is Fault.LOSE_RESPONSE

    router = APIRouter(prefix="/api/v3", dependencies=[Depends(gate)])

    def params_of(request: Request) -> Params:
        found: Params = request.state.params
        return found

    def account_of(request: Request) -> BinanceAccount:
        found: BinanceAccount = request.state.account
        return found

    @router.get("/ping")
    async def ping() -> Response:
        return json_response({})

    @router.get("/time")
    async def server_time() -> Response:
        return json_response({"serverTime": int(sim.now_s() * 1000)})

    @router.get("/exchangeInfo")
    async def exchange_info(request: Request) -> Response:
        params = params_of(request)
        names: list[str] = list(PAIRS)
        if params.get("symbol"):
            names = [pair_param(params).symbol]
        elif params.get("symbols"):
            raw = params["symbols"].strip("[]").replace('"', "").split(",")
            names = [name.strip() for name in raw if name.strip()]
            if any(name not in PAIRS for name in names):
                raise err.BAD_SYMBOL
        s = current_limits()
        return json_response(
            {
                "timezone": "UTC",
                "serverTime": int(sim.now_s() * 1000),
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                     "limit": s.weight_per_min},
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                     "limit": s.orders_per_10s},
                    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                     "limit": s.orders_per_day},
                    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
                     "limit": 61000},
                ],
                "exchangeFilters": [],
                "symbols": [PAIRS[name].info() for name in names],
                "sors": [],
            }
        )  # fmt: skip

    def count_order(request: Request, account: BinanceAccount) -> None:
        """One new order against the key's order count (its headers on every answer)."""
        headers: dict[str, str] = request.scope[EXTRA_HEADERS]
        try:
            headers.update(
                sim.binance_limits.count_order(account.api_key, sim.now_s(), current_limits())
            )
        except BinanceError as exc:
            headers.update(exc.headers)
            exc.headers = {}
            raise

    def answer_of(placed: BinanceOrder, new: NewOrder) -> dict[str, object]:
        if new.resp_type == "ACK":
            return ack_json(placed)
        return result_json(placed, full=new.resp_type == "FULL")

    @router.post("/order")
    async def place(request: Request) -> Response:
        params = params_of(request)
        account = account_of(request)
        new = parse_new_order(params)
        count_order(request, account)
        placed = submit(account, new)
        if getattr(request.state, "lose_response", False):
            await sim.sleep(sim.faults.settings.timeout_s)
            raise err.ANSWER_LOST
        return json_response(answer_of(placed, new))

    @router.post("/order/cancelReplace")
    async def cancel_replace(request: Request) -> Response:
        """Cancel an order and place a new one in one request, as Binance does: with
        STOP_ON_FAILURE a failed cancel places nothing (-2022); a new order refused after
        the cancel is -2021; each half's answer or error is in ``data``."""
        params = params_of(request)
        account = account_of(request)
        mode = params.get("cancelReplaceMode")
        if mode not in REPLACE_MODES:
            raise err.mandatory("cancelReplaceMode")
        new = parse_new_order(params)
        count_order(request, account)
        cancel_answer: dict[str, object]
        try:
            old = find_cancel_target(params, account)
            cancel_id = params.get("cancelNewClientOrderId") or generated_client_id()
            cancel_answer = cancel_now(old, cancel_id)
            canceled = True
        except BinanceError as exc:
            cancel_answer, canceled = {"code": exc.code, "msg": exc.msg}, False
        if not canceled and mode == "STOP_ON_FAILURE":
            raise err.cancel_replace_failed(cancel_answer)
        try:
            placed = submit(account, new)
        except BinanceError as exc:
            refused = {"code": exc.code, "msg": exc.msg}
            raise err.cancel_replace_partly(canceled, cancel_answer, refused) from None
        if getattr(request.state, "lose_response", False):
            await sim.sleep(sim.faults.settings.timeout_s)
            raise err.ANSWER_LOST
        if not canceled:  # ALLOW_FAILURE: the new order stands without the cancel
            raise err.cancel_replace_partly(canceled, cancel_answer, answer_of(placed, new))
        return json_response({"cancelResult": "SUCCESS", "newOrderResult": "SUCCESS",
                              "cancelResponse": cancel_answer,
                              "newOrderResponse": answer_of(placed, new)})  # fmt: skip

    def find_cancel_target(params: Params, account: BinanceAccount) -> BinanceOrder:
        """The order a cancel-replace cancels: ``cancelOrderId`` or ``cancelOrigClientOrderId``."""
        pair = pair_param(params)
        order_id = int_param(params, "cancelOrderId")
        cid = params.get("cancelOrigClientOrderId")
        if order_id is None and not cid:
            raise err.mandatory("cancelOrderId")
        engine.advance()
        for placed in account.known(pair.symbol):
            named = order_id is None or placed.order_id == order_id
            if named and (not cid or placed.client_order_id == cid) and not placed.order.forgotten:
                return placed
        raise err.UNKNOWN_ORDER

    def submit(account: BinanceAccount, new: NewOrder) -> BinanceOrder:
        pair = new.pair
        engine.advance()
        market = engine.price_of(pair.engine_symbol)
        qty = new.qty
        if qty is None:
            assert new.quote_qty is not None
            qty = quote_to_qty(new.quote_qty, market, pair.step)
        pair.check(new.type, qty, new.price, market)
        if any(o.client_order_id == new.client_order_id for o in account.open.values()):
            raise err.DUPLICATE_ORDER
        # Takes liquidity now: a market order, or a limit price at or through the market.
        taker = new.type != "LIMIT" and new.type != "LIMIT_MAKER"
        if new.price is not None and not taker:
            taker = new.price >= market if new.side.value == "buy" else new.price <= market
        if new.type == "LIMIT_MAKER" and taker:
            raise err.WOULD_TAKE
        if new.side.value == "buy":
            spend = new.quote_qty or qty * (new.price or market)
            asset = pair.quote
        else:
            spend, asset = qty, pair.base
        if spend > account.free(asset, venue.price_of):
            raise err.INSUFFICIENT_BALANCE
        request = OrderRequest(
            symbol=pair.engine_symbol,
            qty=qty,
            side=new.side,
            type=new.engine_type,
            time_in_force=TimeInForce((new.time_in_force or "GTC").lower()),
            limit_price=new.price,
            stop_price=new.stop_price,
        )
        created_ms = int(sim.now_s() * 1000)

        def build(order: Order) -> BinanceOrder:
            return BinanceOrder(
                venue.next_order_id(pair.symbol),
                new.client_order_id,
                pair,
                order,
                new.type,
                new.time_in_force if new.type != "MARKET" else "GTC",
                new.quote_qty,
                created_ms,
                maker=not taker,
            )

        placed = venue.place(
            build,
            lambda: engine.submit(
                request,
                account=engine_account(account.api_key),
                reject=sim.faults.take_reject(),
                acknowledged=True,
                check_buying_power=False,
            ),
        )
        engine.advance()  # fills due at once (no fill delay) are in the answer
        return placed

    def find(request: Request, account: BinanceAccount, missing: BinanceError) -> BinanceOrder:
        params = params_of(request)
        pair = pair_param(params)
        order_id = int_param(params, "orderId")
        cid = params.get("origClientOrderId")
        if order_id is None and not cid:
            raise err.mandatory("orderId")  # Binance: "orderId or origClientOrderId"
        engine.advance()
        if order_id is not None:
            for placed in account.known(pair.symbol):
                if placed.order_id == order_id:
                    if cid and placed.client_order_id != cid:
                        raise missing
                    return placed
            raise missing
        found = account.by_client_id.get((pair.symbol, cid or ""))
        if found is None or found.order.forgotten:
            raise missing
        return found

    @router.get("/order")
    async def get_order(request: Request) -> Response:
        placed = find(request, account_of(request), err.NO_SUCH_ORDER)
        return json_response(order_json(placed))

    @router.delete("/order")
    async def cancel(request: Request) -> Response:
        account = account_of(request)
        placed = find(request, account, err.UNKNOWN_ORDER)
        cancel_id = params_of(request).get("newClientOrderId") or generated_client_id()
        return json_response(cancel_now(placed, cancel_id))

    def cancel_now(placed: BinanceOrder, cancel_id: str) -> dict[str, object]:
        if not placed.order.is_open:
            raise err.UNKNOWN_ORDER
        # Known before the engine's CANCELED event, which the user data stream reports.
        placed.canceled_by_client, placed.cancel_id = True, cancel_id
        try:
            engine.cancel_at_once(placed.order.id)
        except OrderClosedError as exc:  # a fill due since find() finished it
            placed.canceled_by_client, placed.cancel_id = False, None
            raise err.UNKNOWN_ORDER from exc
        return canceled_json(placed, cancel_id)

    @router.get("/openOrders")
    async def open_orders(request: Request) -> Response:
        params = params_of(request)
        account = account_of(request)
        engine.advance()
        symbol = pair_param(params).symbol if params.get("symbol") else None
        found = sorted(
            (
                o
                for o in account.open.values()
                if (symbol is None or o.pair.symbol == symbol) and not o.order.forgotten
            ),
            key=lambda o: (o.pair.symbol, o.order_id),
        )
        return json_response([order_json(o) for o in found])

    @router.get("/allOrders")
    async def all_orders(request: Request) -> Response:
        params = params_of(request)
        orders = account_of(request).known(pair_param(params).symbol)
        engine.advance()
        found = select(orders, params, "orderId", lambda o: o.order_id, lambda o: o.created_ms)
        return json_response([order_json(o) for o in found])

    @router.get("/myTrades")
    async def my_trades(request: Request) -> Response:
        params = params_of(request)
        trades = account_of(request).trades.get(pair_param(params).symbol, [])
        if "fromId" in params and ("startTime" in params or "endTime" in params):
            raise err.BAD_COMBINATION
        order_id = int_param(params, "orderId")
        if order_id is not None:
            trades = [t for t in trades if t.order.order_id == order_id]
        engine.advance()
        found = select(trades, params, "fromId", lambda t: t.id, lambda t: t.fill.time_us // 1000)
        return json_response([trade_json(t) for t in found])

    @router.get("/account")
    async def account_info(request: Request) -> Response:
        engine.advance()
        omit = params_of(request).get("omitZeroBalances") == "true"
        rate = venue.fee_bps() / Decimal(10_000)
        account = account_of(request)
        locked = account.locked(venue.price_of)
        return json_response(account_json(account, locked, rate, omit))

    for path in ORDER_LIST_PATHS:

        @router.api_route(path.removeprefix("/api/v3"), methods=["GET", "POST", "DELETE"])
        async def unsupported() -> Response:
            raise err.UNSUPPORTED

    return router
