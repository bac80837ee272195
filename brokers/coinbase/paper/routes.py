"""Coinbase Advanced Trade's REST routes (/api/v3/brokerage) over the shared engine, behind
one gate that does stats, JWT authentication, the 30 requests/s per key limit and faults;
the public endpoints (``public.py``) take no JWT; any other path under the prefix answers
Coinbase's 404."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from fastapi import APIRouter, Depends, Request, Response

from brokers.coinbase.paper import errors as err
from brokers.coinbase.paper.auth import authenticate
from brokers.coinbase.paper.errors import CoinbaseError
from brokers.coinbase.paper.orders import (
    UNKNOWN,
    NewOrder,
    Refused,
    check_market,
    parse_create,
    read_body,
    refused_json,
)
from brokers.coinbase.paper.products import PRODUCTS, Product, currencies
from brokers.coinbase.paper.public import PREFIX, add_product_routes, build_public_router, route_key
from brokers.coinbase.paper.queries import Query, newest_first
from brokers.coinbase.paper.venue import CoinbaseAccount, CoinbaseOrder, engine_account
from brokers.coinbase.paper.wire import (
    account_json,
    fill_json,
    order_json,
    placed_json,
    summary_json,
)
from brokers.paper.asgi import EXTRA_HEADERS, json_response
from brokers.paper.faults import Fault
from brokers.paper.model import Order, OrderRequest
from brokers.paper.state import Sim
from core.enums import Side

ORDER_STATUSES = frozenset(
    {"PENDING", "OPEN", "FILLED", "CANCELLED", "EXPIRED", "FAILED", "UNKNOWN_ORDER_STATUS",
     "QUEUED", "CANCEL_QUEUED", "EDIT_QUEUED"}
)  # fmt: skip
MAX_CANCEL_IDS = 100  # [U]: Coinbase's batch limit is not documented
# Page sizes: accounts as documented (default 49, at most 250); orders and fills [U].
ACCOUNTS_PAGE, ACCOUNTS_MOST = 49, 250
LIST_PAGE, LIST_MOST = 100, 1000
# What closed orders answer to a cancel [U: Coinbase documents the reasons, not when each
# is given].
_CLOSED_CANCEL = {
    "FILLED": "ORDER_IS_FULLY_FILLED",
    "CANCELLED": "DUPLICATE_CANCEL_REQUEST",
    "EXPIRED": "NOT_ALLOWED_TO_CANCEL",
    "FAILED": "NOT_ALLOWED_TO_CANCEL",
}
INSUFFICIENT = Refused("INSUFFICIENT_FUND", "PREVIEW_INSUFFICIENT_FUND",
                       "Insufficient balance in source account")  # fmt: skip


def build_coinbase_router(sim: Sim) -> APIRouter:
    engine = sim.engine
    venue = sim.coinbase

    async def gate(request: Request) -> None:
        method, path = request.method, request.url.path
        stats = sim.stats
        stats.total += 1
        stats.by_route[route_key(request)] += 1
        faults = sim.faults
        applies = faults.applies(method, path)
        if applies and (delay := faults.latency_s()) > 0:
            await sim.sleep(delay)
        host = request.headers.get("host", "")
        key = authenticate(
            request.headers.get("authorization"), method, host, path, venue.keys, sim.now_s()
        )
        account_key = engine_account(key)
        stats.by_account[account_key] += 1
        headers: dict[str, str] = request.scope.setdefault(EXTRA_HEADERS, {})
        allowed, limit_headers = sim.coinbase_limits.hit(
            key, sim.now_s(), faults.settings.coinbase_requests_per_s
        )
        headers.update({name.lower(): value for name, value in limit_headers.items()})
        if not allowed:
            stats.rate_limited += 1
            stats.rate_limited_by_account[account_key] += 1
            raise CoinbaseError(429, "RESOURCE_EXHAUSTED", "Too many requests")
        creates = method == "POST" and path == f"{PREFIX}/orders"
        fault = faults.draw(creates_order=creates) if applies else None
        if fault is not None:
            stats.faulted += 1
        if fault is Fault.RATE_LIMIT:
            raise CoinbaseError(429, "RESOURCE_EXHAUSTED", "Too many requests")
        if fault is Fault.UNAVAILABLE:
            raise err.UNAVAILABLE
        if fault is Fault.TIMEOUT:
            await sim.sleep(faults.settings.timeout_s)
        request.state.lose_response = fault is Fault.LOSE_RESPONSE
        request.state.account = venue.account(key)
        engine.advance()
        venue.expire_due(engine.now_us)

    api = APIRouter(dependencies=[Depends(gate)])

    def account_of(request: Request) -> CoinbaseAccount:
        found: CoinbaseAccount = request.state.account
        return found

    def render(placed: CoinbaseOrder) -> dict[str, object]:
        key_name = placed.order.account.removeprefix("coinbase:")
        return order_json(placed, key_name, venue.hold_of(placed))

    @api.post("/orders")
    async def create_order(request: Request) -> Response:
        raw = await request.body()
        account = account_of(request)
        try:
            new = parse_create(raw)
            existing = account.by_client_id.get(new.client_order_id)
            if existing is not None and not existing.order.forgotten:
                return json_response(placed_json(existing))
            placed = submit(account, new)
        except Refused as refusal:
            return json_response(refused_json(refusal, read_body(raw).get("order_configuration")))
        if getattr(request.state, "lose_response", False):
            await sim.sleep(sim.faults.settings.timeout_s)
            raise err.ANSWER_LOST
        return json_response(placed_json(placed))

    def size_of(new: NewOrder, market: Decimal, taker_rate: Decimal) -> Decimal:
        """The base size: given, or what a quote size buys (its commission included) or
        sells at the market, down to the base increment."""
        if new.base_size is not None:
            return new.base_size
        assert new.quote_size is not None
        price = market * (1 + taker_rate) if new.side is Side.BUY else market
        step = new.product.base_increment
        return (new.quote_size / price / step).to_integral_value(ROUND_DOWN) * step

    def submit(account: CoinbaseAccount, new: NewOrder) -> CoinbaseOrder:
        product: Product = new.product
        market = venue.price_of(product)
        taker = check_market(new, market)
        fees = venue.fees()
        qty = size_of(new, market, fees.rate(maker=False))
        if qty < product.base_min_size:
            raise Refused(UNKNOWN, "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL")
        if new.side is Side.BUY:
            need = new.quote_size or qty * (new.limit_price or market) * (1 + fees.rate(False))
            currency = product.quote
        else:
            need, currency = qty, product.base
        if need > venue.available(account, currency):
            raise INSUFFICIENT
        request = OrderRequest(
            symbol=product.engine_symbol, qty=qty, side=new.side, type=new.form.type,
            time_in_force=new.form.engine_tif, limit_price=new.limit_price,
            stop_price=new.stop_price, client_order_id=new.client_order_id,
        )  # fmt: skip

        def build(order: Order) -> CoinbaseOrder:
            return CoinbaseOrder(
                new.client_order_id, product, order, new.config_key, new.config,
                new.form.tif, new.quote_size, maker=not taker, end_us=new.end_us,
            )  # fmt: skip

        placed = venue.place(
            build,
            lambda: engine.submit(
                request,
                account=engine_account(account.key_name),
                reject=sim.faults.take_reject(),
                acknowledged=True,
                check_buying_power=False,
            ),
        )
        engine.advance()  # fills due at once (no fill delay) are in what comes next
        return placed

    def find(account: CoinbaseAccount, order_id: str) -> CoinbaseOrder | None:
        placed = venue.by_order_id.get(order_id)
        if placed is None or placed.order.forgotten:
            return None
        if placed.order.account != engine_account(account.key_name):
            return None
        return placed

    @api.post("/orders/batch_cancel")
    async def batch_cancel(request: Request) -> Response:
        body = read_body(await request.body())
        ids = body.get("order_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise err.invalid("order_ids is required: a non-empty list of order ids")
        if len(ids) > MAX_CANCEL_IDS:
            raise err.invalid(f"order_ids: at most {MAX_CANCEL_IDS} per request")
        account = account_of(request)
        results = []
        for order_id in ids:
            reason = cancel_one(account, order_id)
            results.append(
                {
                    "success": reason is None,
                    "failure_reason": reason or "UNKNOWN_CANCEL_FAILURE_REASON",
                    "order_id": order_id,
                }
            )
        return json_response({"results": results})

    def cancel_one(account: CoinbaseAccount, order_id: str) -> str | None:
        placed = find(account, order_id)
        if placed is None:
            return "UNKNOWN_CANCEL_ORDER"
        if not placed.order.is_open:
            return _CLOSED_CANCEL.get(placed.status, "NOT_ALLOWED_TO_CANCEL")
        placed.canceled_by_client = True
        engine.cancel_at_once(placed.order_id)
        return None

    @api.get("/orders/historical/batch")
    async def list_orders(request: Request) -> Response:
        query = Query.parse(request.url.query)
        statuses = query.many("order_status")
        if statuses - ORDER_STATUSES:
            raise err.invalid(
                f"order_status: unknown status {sorted(statuses - ORDER_STATUSES)[0]}"
            )
        ids, products = query.many("order_ids"), query.many("product_ids")
        sides, types = query.many("order_side"), query.many("order_types")
        start, end = query.time_us("start_date"), query.time_us("end_date")
        limit, cursor = query.limit(LIST_PAGE, LIST_MOST), query.cursor()

        def wanted(placed: CoinbaseOrder) -> bool:
            created = placed.order.created_us
            return (
                (not ids or placed.order_id in ids)
                and (not products or placed.product.product_id in products)
                and (not statuses or placed.status in statuses)
                and (not sides or placed.order.side.value.upper() in sides)
                and (not types or placed.order.type.value.upper() in types)
                and (start is None or created >= start)
                and (end is None or created < end)
            )

        orders = [o for o in account_of(request).known() if wanted(o)]
        page = newest_first(orders, lambda o: o.order.seq, limit, cursor)
        return json_response(
            {
                "orders": [render(o) for o in page.items],
                "sequence": "0",
                "has_next": page.has_next,
                "cursor": page.cursor,
            }
        )

    @api.get("/orders/historical/fills")
    async def list_fills(request: Request) -> Response:
        query = Query.parse(request.url.query)
        sort_by = query.one("sort_by")
        if sort_by not in (None, "TRADE_TIME", "UNKNOWN_SORT_BY"):
            raise err.invalid(f"sort_by {sort_by} is not supported by the paper exchange")
        ids, trades = query.many("order_ids"), query.many("trade_ids")
        products = query.many("product_ids")
        start = query.time_us("start_sequence_timestamp")
        end = query.time_us("end_sequence_timestamp")
        limit, cursor = query.limit(LIST_PAGE, LIST_MOST), query.cursor()
        account = account_of(request)
        fills = [
            f
            for f in account.fills
            if not f.order.order.forgotten
            and (not ids or f.order.order_id in ids)
            and (not trades or f.trade_id in trades)
            and (not products or f.order.product.product_id in products)
            and (start is None or f.fill.time_us >= start)
            and (end is None or f.fill.time_us < end)
        ]
        page = newest_first(fills, lambda f: f.seq, limit, cursor)
        body = [fill_json(f, account.key_name) for f in page.items]
        return json_response({"fills": body, "cursor": page.cursor})

    @api.get("/orders/historical/{order_id}")
    async def get_order(request: Request, order_id: str) -> Response:
        placed = find(account_of(request), order_id)
        if placed is None:
            raise err.ORDER_NOT_FOUND
        return json_response({"order": render(placed)})

    @api.get("/accounts")
    async def list_accounts(request: Request) -> Response:
        query = Query.parse(request.url.query)
        limit, cursor = query.limit(ACCOUNTS_PAGE, ACCOUNTS_MOST), query.cursor()
        account = account_of(request)
        held = venue.hold(account)
        names = sorted(set(currencies()) | set(account.wallet))
        start = 0 if cursor is None else cursor + 1  # in currency order, the cursor an index
        page = names[start : start + limit]
        has_next = start + limit < len(names)
        wallets = [
            account_json(account, name, held.get(name, Decimal(0)), engine.now_us) for name in page
        ]
        return json_response(
            {"accounts": wallets, "has_next": has_next,
             "cursor": str(start + limit - 1) if has_next else "", "size": len(wallets)}
        )  # fmt: skip

    add_product_routes(api, "/products", venue)

    @api.get("/transaction_summary")
    async def transaction_summary(request: Request) -> Response:
        def usd_per(currency: str) -> Decimal:
            pair = PRODUCTS.get(f"{currency}-USD")
            return Decimal(1) if pair is None else venue.price_of(pair)

        account, fees = account_of(request), venue.fees()
        return json_response(summary_json(account, fees, engine.now_us, usd_per))

    unknown = APIRouter()

    @unknown.api_route(
        "/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    async def not_found(rest: str) -> Response:
        raise err.NOT_FOUND

    router = APIRouter(prefix=PREFIX)
    router.include_router(api)
    router.include_router(build_public_router(sim))
    router.include_router(unknown)
    return router
