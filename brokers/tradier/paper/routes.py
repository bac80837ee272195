"""Tradier's account routes (/v1/accounts/{account_id}/...) over the shared engine, behind
one gate that does stats, the bearer token (bound to its account number), the per-token
rate-limit buckets and faults. Equity orders only."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request, Response

from brokers.paper.asgi import EXTRA_HEADERS
from brokers.paper.engine import InsufficientBuyingPowerError
from brokers.paper.faults import Fault
from brokers.paper.model import OrderRequest
from brokers.paper.state import Sim
from brokers.tradier.paper import errors as err
from brokers.tradier.paper.events import EVENTS_SESSION, build_session_router
from brokers.tradier.paper.orders import DURATIONS, TYPES, check_side, parse_order, read_form
from brokers.tradier.paper.venue import (
    AccountRefused,
    TokenRefused,
    TradierAccount,
    TradierOrder,
    engine_account,
)
from brokers.tradier.paper.wire import answer, one_or_many, order_json, position_json
from core.enums import Side

PREFIX = "/v1/accounts"
NEW_YORK = ZoneInfo("America/New_York")  # Tradier's list dates are market days [U]
DEFAULT_LIMIT = 25
ALL_DAYS = 31  # filter=all: "a maximum of 1 month of data"


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _day(at_us: int) -> date:
    return datetime.fromtimestamp(at_us / 1_000_000, NEW_YORK).date()


def _date_param(query: dict[str, str], name: str) -> date | None:
    text = query.get(name)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise err.invalid(f"{name} {text!r} is not a date (yyyy-mm-dd)") from None


def _positive(query: dict[str, str], name: str, default: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise err.invalid(f"{name} {text!r} must be a positive whole number")
    return int(text)


def build_tradier_router(sim: Sim) -> APIRouter:
    engine = sim.engine
    venue = sim.tradier

    async def admit(request: Request, template: str) -> tuple[str, bool]:
        """Stats, latency, the bearer token known and its bucket counted: (token, whether
        the bucket allows the request)."""
        method, path = request.method, request.url.path
        stats = sim.stats
        stats.total += 1
        stats.by_route[f"{method} {PREFIX}{template}"] += 1
        faults = sim.faults
        if faults.applies(method, path) and (delay := faults.latency_s()) > 0:
            await sim.sleep(delay)
        token = _bearer(request.headers.get("authorization"))
        if token is None or not venue.known_token(token):
            raise err.INVALID_TOKEN
        ordering = method != "GET" and "/orders" in path
        settings = faults.settings
        bucket, limit = (
            ("orders", settings.tradier_orders_per_min)
            if ordering
            else ("standard", settings.tradier_reads_per_min)
        )
        allowed, headers = sim.tradier_limits.hit(token, bucket, sim.now_s(), limit)
        request.scope.setdefault(EXTRA_HEADERS, {}).update(headers)
        return token, allowed

    async def proceed(request: Request, allowed: bool, key: str | None) -> None:
        """The bucket's verdict, then the request faults; the engine brought up to now."""
        stats, faults = sim.stats, sim.faults
        if not allowed:
            stats.rate_limited += 1
            if key is not None:
                stats.rate_limited_by_account[key] += 1
            raise err.RATE_LIMITED
        applies = faults.applies(request.method, request.url.path)
        fault = faults.draw(creates_order=request.method == "POST") if applies else None
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

    async def gate(request: Request, account_id: str) -> None:
        template = getattr(request.scope.get("route"), "path", "")  # below the prefix
        token, allowed = await admit(request, template)
        try:
            account = venue.authorize(token, account_id)
        except TokenRefused:
            raise err.INVALID_TOKEN from None
        except AccountRefused:
            raise err.account_refused(account_id) from None
        key = engine_account(account.number)
        sim.stats.by_account[key] += 1
        request.state.account = account
        await proceed(request, allowed, key)

    async def session_gate(request: Request) -> str:
        """The account events session's: the token alone (it names no account)."""
        token, allowed = await admit(request, EVENTS_SESSION.removeprefix(PREFIX))
        await proceed(request, allowed, None)
        return token

    api = APIRouter(prefix="/{account_id}", dependencies=[Depends(gate)])

    def account_of(request: Request) -> TradierAccount:
        found: TradierAccount = request.state.account
        return found

    def reply(request: Request, body: dict[str, object]) -> Response:
        return answer(body, request.headers.get("accept"))

    @api.post("/orders")
    async def place(request: Request) -> Response:
        account = account_of(request)
        form = read_form(await request.body())
        new = parse_order(form, _day(engine.now_us))
        owner = engine.account(engine_account(account.number))
        position = owner.ledger.positions.get(new.symbol)
        mine = [o for o in owner.open.values() if o.symbol == new.symbol]
        selling, buying = (sum((o.leaves_qty for o in mine if o.side is side), Decimal(0))
                           for side in (Side.SELL, Side.BUY))  # fmt: skip
        check_side(new, Decimal(0) if position is None else position.qty, selling, buying)
        order_id = venue.next_id()
        order_request = OrderRequest(
            symbol=new.symbol, qty=new.quantity, side=new.engine_side, type=TYPES[new.type],
            time_in_force=DURATIONS[new.duration], limit_price=new.price,
            stop_price=new.stop, client_order_id=str(order_id),
        )  # fmt: skip
        try:
            order = engine.submit(order_request, account=owner.key, reject=sim.faults.take_reject())
        except InsufficientBuyingPowerError:
            raise err.invalid("There is not enough buying power for this order") from None
        placed = TradierOrder(order_id, account.number, new.side, new.duration, new.tag, order,
                              new.underlying)  # fmt: skip
        venue.keep(placed)
        sim.tradier_stream.publish(placed)  # "pending", as Tradier streams an order received
        if getattr(request.state, "lose_response", False):
            await sim.sleep(sim.faults.settings.timeout_s)
            raise err.ANSWER_LOST
        partner = f"paper-{order_id}"
        return reply(request, {"order": {"id": order_id, "status": "ok", "partner_id": partner}})

    @api.get("/orders")
    async def list_orders(request: Request) -> Response:
        query = dict(request.query_params)
        tags = query.get("includeTags", "false").lower() == "true"
        page, limit = _positive(query, "page", 1), _positive(query, "limit", DEFAULT_LIMIT)
        which = query.get("filter", "intraday")
        if which not in ("intraday", "all"):
            raise err.invalid(f"filter {which!r} is not intraday or all")
        today = _day(engine.now_us)
        if which == "intraday":
            start_us = session_start_us()
            chosen = [p for p in account_of(request).known() if p.order.created_us >= start_us]
        else:
            start = _date_param(query, "start") or date.fromordinal(today.toordinal() - ALL_DAYS)
            end = _date_param(query, "end") or today
            chosen = [
                p for p in account_of(request).known()
                if start <= _day(p.order.created_us) <= end
            ]  # fmt: skip
        page_items = chosen[(page - 1) * limit : page * limit]
        rendered = [order_json(p, include_tag=tags) for p in page_items]
        return reply(request, one_or_many(rendered, "orders", "order"))

    def session_start_us() -> int:
        """The current session's open (the last one's while the market is closed)."""
        session = engine.session
        if session.is_open:
            return session.since_us
        return session.since_us - round(engine.config.session_s * 1_000_000)

    def found(request: Request, order_id: str) -> TradierOrder:
        placed = venue.find(account_of(request), order_id)
        if placed is None:
            raise err.TradierError(404, messages=(f"Order {order_id} not found",))  # [U]
        return placed

    @api.get("/orders/{order_id}")
    async def get_order(request: Request, order_id: str) -> Response:
        tags = request.query_params.get("includeTags", "false").lower() == "true"
        return reply(request, {"order": order_json(found(request, order_id), include_tag=tags)})

    @api.delete("/orders/{order_id}")
    async def cancel(request: Request, order_id: str) -> Response:
        placed = found(request, order_id)
        if not placed.order.is_open:
            # Tradier's words, as clients match them (lumiwealth-tradier: "400 - order
            # already in finalized state"); anything after them is [U].
            raise err.TradierError(400, text="order already in finalized state")
        engine.cancel_at_once(placed.order.id)
        return reply(request, {"order": {"id": placed.id, "status": "ok"}})

    @api.get("/positions")
    async def positions(request: Request) -> Response:
        owner = engine.account(engine_account(account_of(request).number))
        opened = account_of(request).opened_us()
        rendered = [
            position_json(symbol, position, opened.get(symbol, engine.now_us), index + 1)
            for index, (symbol, position) in enumerate(sorted(owner.ledger.positions.items()))
        ]
        return reply(request, one_or_many(rendered, "positions", "position"))

    @api.get("/balances")
    async def balances(request: Request) -> Response:
        number = account_of(request).number
        owner = engine.account(engine_account(number))
        long_value, short_value = owner.market_values(engine.price_of)
        cash = owner.ledger.cash
        return reply(request, {"balances": {
            "account_number": number, "account_type": "margin",
            "total_cash": cash, "total_equity": cash + long_value + short_value,
            "market_value": long_value + short_value, "long_market_value": long_value,
            "short_market_value": short_value, "pending_orders_count": len(owner.open),
            "margin": {"stock_buying_power": owner.buying_power(engine.price_of)},
        }})  # fmt: skip

    @api.put("/orders/{order_id}")
    async def modify(order_id: str) -> Response:
        raise err.invalid(f"order {order_id}: modifying an order is not served by the paper "
                          "exchange; cancel it and place anew")  # fmt: skip

    @api.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def not_served(request: Request, rest: str) -> Response:
        """[U] Tradier's answer to an unknown resource; its errors shape, naming the path."""
        raise err.TradierError(404, messages=(f"{request.method} {request.url.path}: not found",))

    router = APIRouter(prefix=PREFIX)
    # Before the account routes, whose ``/{account_id}/{rest}`` would take it.
    router.include_router(build_session_router(sim, session_gate))
    router.include_router(api)
    return router
