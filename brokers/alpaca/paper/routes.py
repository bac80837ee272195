"""The Alpaca Trading API v2 routes, behind one gate that does stats, faults, auth and limits."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from brokers.alpaca.paper import calendar
from brokers.alpaca.paper.assets import (
    ASSET_CLASSES,
    ASSET_STATUSES,
    ATTRIBUTES,
    EXCHANGES,
    AssetClass,
    asset_json,
    find_asset,
    list_assets,
)
from brokers.alpaca.paper.legs import OrderClassError
from brokers.alpaca.paper.queries import (
    list_activities,
    list_fees,
    list_fills,
    list_orders,
    to_us_date,
)
from brokers.alpaca.paper.replace import (
    InvalidChangeError,
    NotReplaceableError,
    OrderClassNotReplaceableError,
)
from brokers.alpaca.paper.schemas import ApiError, invalid, parse_order, parse_replace
from brokers.alpaca.paper.wire import (
    account_json,
    activity_json,
    clock_json,
    fee_activity_json,
    find_position_json,
    order_json,
    positions_json,
)
from brokers.paper import market_calendar
from brokers.paper.asgi import EXTRA_HEADERS, json_response
from brokers.paper.engine import (
    DuplicateClientOrderIdError,
    InsufficientBuyingPowerError,
    OrderClosedError,
    UnknownOrderError,
)
from brokers.paper.faults import Fault
from brokers.paper.model import (
    EASTERN,
    Fill,
    NotCancelableError,
    Order,
    Refusal,
    fmt_decimal,
    from_us,
    parse_time,
)
from brokers.paper.state import Sim

ORDER_NOT_FOUND = ApiError(404, 40410000, "order not found")
POSITION_NOT_FOUND = ApiError(404, 40410000, "position does not exist")
NO_BUYING_POWER = ApiError(403, 40310000, "insufficient buying power")
NOT_CANCELABLE = ApiError(422, 42210000, "order is not cancelable")
# Requests that create an order: a lost response leaves the order in place.
CREATES_ORDER = frozenset({("POST", "/v2/orders"), ("PATCH", "/v2/orders/{id}")})
CALENDAR_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(T.+)?")
CALENDAR_DATE_TYPES = ("TRADING", "SETTLEMENT")
ASSET_CLASS_OF: dict[str, AssetClass] = {name: name for name in ASSET_CLASSES}
# Alpaca's activity types (alpaca-py's ActivityType); only FILL and CFEE happen here.
ACTIVITY_TYPES = frozenset(
    {
        "FILL", "ACATC", "ACATS", "CFEE", "CIL", "CSD", "CSW", "DIV", "DIVCGL", "DIVCGS",
        "DIVNRA", "DIVROC", "DIVTXEX", "DIVWH", "EXTRD", "FEE", "FXTRD", "INT", "INTPNL",
        "JNLC", "JNLS", "MA", "MEM", "NC", "OCT", "OPASN", "OPCSH", "OPEXC", "OPEXP",
        "OPTRD", "PTC", "REORG", "SPIN", "SPLIT", "SWP", "VOF", "WH",
    }
)  # fmt: skip


def _time_param(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise invalid(f"{name}: not an RFC3339 timestamp: {value!r}") from exc


def _refused(name: str, value: str) -> ApiError:
    """Alpaca refuses a query value outside its vocabulary with 422/42210000."""
    return ApiError(422, 42210000, f"invalid {name}: {value!r}")


def _one_of(name: str, value: str | None, allowed: Iterable[str]) -> str | None:
    """The value if it is one Alpaca knows; absent or empty means no filter."""
    if not value:
        return None
    if value not in allowed:
        raise _refused(name, value)
    return value


def _calendar_date(name: str, value: str | None, default: date) -> date:
    """``YYYY-MM-DD``, or an RFC3339 timestamp taken as its New York date."""
    if not value:
        return default
    match = CALENDAR_DATE.fullmatch(value.strip())
    try:
        if match is None:
            raise ValueError(value)
        if match.group(2) is not None:
            return from_us(parse_time(value)).astimezone(EASTERN).date()
        return date.fromisoformat(match.group(1))
    except ValueError as exc:
        raise invalid(f"{name}: not a YYYY-MM-DD date: {value!r}") from exc


def _refusal(exc: Refusal) -> ApiError:
    """A crypto, fractional or notional order's terms refused, in Alpaca's answer."""
    return ApiError(exc.status, exc.code, exc.message, exc.extra)


def _activity_date(date: str | None) -> str | None:
    if date is not None:
        try:
            to_us_date(date)
        except ValueError as exc:
            raise invalid(f"date: not a YYYY-MM-DD date: {date!r}") from exc
    return date


def account_of(request: Request) -> str:
    """The account the gate authenticated for this request."""
    account: str = request.state.account
    return account


def build_v2_router(sim: Sim) -> APIRouter:
    async def gate(request: Request) -> None:
        """Runs before every /v2 handler, after routing, so the route template is known."""
        method, path = request.method, request.url.path
        template = getattr(request.scope.get("route"), "path", path)
        stats = sim.stats
        stats.total += 1
        stats.by_route[f"{method} {template}"] += 1
        if order_id := request.path_params.get("id"):
            stats.by_order[order_id] += 1
        # Read the body now: a client that gives up during a fault's wait must not stop a
        # request that reached the venue from being processed.
        await request.body()
        faults = sim.faults
        applies = faults.applies(method, path)
        if applies and (delay := faults.latency_s()) > 0:
            await sim.sleep(delay)

        headers: dict[str, str] = request.scope.setdefault(EXTRA_HEADERS, {})
        key_id = request.headers.get("apca-api-key-id", "")
        limit = faults.settings.rate_limit_per_min
        account = sim.authenticate(key_id, request.headers.get("apca-api-secret-key", ""))
        if account is None:
            headers.update(sim.limiter.peek(key_id, sim.now_s(), limit))
            raise ApiError(401, 40110000, "request is not authorized")
        request.state.account = account
        stats.by_account[account] += 1

        creates = (method, template) in CREATES_ORDER
        fault = faults.draw(creates_order=creates) if applies else None
        if fault is not None:
            stats.faulted += 1
        if fault is Fault.RATE_LIMIT:
            headers.update(sim.limiter.peek(key_id, sim.now_s(), limit))
            headers["X-Ratelimit-Remaining"] = "0"
            headers["X-Ratelimit-Reset"] = str(int(sim.now_s()) + 1)
            raise ApiError(429, 42910000, "rate limit exceeded")
        if fault is Fault.UNAVAILABLE:
            headers.update(sim.limiter.peek(key_id, sim.now_s(), limit))
            raise ApiError(503, 50300000, "service unavailable")
        if fault is Fault.TIMEOUT:
            await sim.sleep(faults.settings.timeout_s)

        allowed, rate_headers = sim.limiter.hit(key_id, sim.now_s(), limit)
        headers.update(rate_headers)
        if not allowed:
            stats.rate_limited += 1
            stats.rate_limited_by_account[account] += 1
            raise ApiError(429, 42910000, "rate limit exceeded")
        request.state.lose_response = fault is Fault.LOSE_RESPONSE

    router = APIRouter(prefix="/v2", dependencies=[Depends(gate)])
    engine = sim.engine

    def known(request: Request, order_id: str) -> Order:
        """The caller's order: another account's is as unknown as a missing one."""
        order = engine.get(order_id, account_of(request))
        if order is None:
            raise ORDER_NOT_FOUND
        return order

    async def created(request: Request, order: Order) -> Response:
        """Answer with a new order, unless the gate drew a lost response for this request."""
        sim.stats.by_order[order.id] += 1
        payload = order_json(order)
        if getattr(request.state, "lose_response", False):
            # The order exists; only the answer goes missing, as behind a dying proxy.
            await sim.sleep(sim.faults.settings.timeout_s)
            raise ApiError(504, 50400000, "gateway timeout")
        return json_response(payload)

    @router.post("/orders")
    async def place_order(request: Request) -> Response:
        order_request = parse_order(await request.body())
        try:
            order = engine.submit(
                order_request,
                account=account_of(request),
                reject=sim.faults.take_reject(),
                same_timestamp=sim.faults.take_same_timestamp(),
            )
        except DuplicateClientOrderIdError as exc:
            raise invalid("client_order_id must be unique") from exc
        except InsufficientBuyingPowerError as exc:
            raise NO_BUYING_POWER from exc
        except Refusal as exc:
            raise _refusal(exc) from exc
        except OrderClassError as exc:
            base = exc.base_price
            extra = None if base is None else {"base_price": fmt_decimal(base)}
            raise ApiError(422, 42210000, exc.message, extra) from exc
        return await created(request, order)

    @router.patch("/orders/{id}")
    async def replace_order(request: Request, id: str) -> Response:
        """Alpaca's replace: 200 with the new order; the old one is replaced a moment later,
        unless it fills or expires first (then the new one is rejected)."""
        changes = parse_replace(await request.body())
        try:
            order = engine.replace(id, account_of(request), changes)
        except UnknownOrderError as exc:
            raise ORDER_NOT_FOUND from exc
        except NotReplaceableError as exc:
            message = f"order is not replaceable: status is {exc.status.value}"
            raise ApiError(422, 42210000, message) from exc
        except OrderClassNotReplaceableError as exc:
            raise ApiError(422, 42210000, str(exc)) from exc
        except InvalidChangeError as exc:
            raise invalid(exc.reason) from exc
        except DuplicateClientOrderIdError as exc:
            raise invalid("client_order_id must be unique") from exc
        except InsufficientBuyingPowerError as exc:
            raise NO_BUYING_POWER from exc
        except Refusal as exc:
            raise _refusal(exc) from exc
        return await created(request, order)

    @router.get("/orders")
    async def get_orders(
        request: Request,
        status: Literal["open", "closed", "all"] = "open",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        after: str | None = None,
        until: str | None = None,
        direction: Literal["asc", "desc"] = "desc",
        symbols: str | None = None,
        side: Literal["buy", "sell"] | None = None,
        nested: bool | None = None,
    ) -> Response:
        found = list_orders(
            engine,
            account=account_of(request),
            status=status,
            after_us=_time_param("after", after),
            until_us=_time_param("until", until),
            direction=direction,
            limit=limit,
            symbols={s.strip() for s in (symbols or "").split(",") if s.strip()},
            side=side,
            nested=bool(nested),
        )
        return json_response([order_json(order, legs=bool(nested)) for order in found])

    @router.get("/orders:by_client_order_id")
    async def get_order_by_client_id(request: Request, client_order_id: str) -> Response:
        order = engine.get_by_client_id(client_order_id, account_of(request))
        if order is None:
            raise ORDER_NOT_FOUND
        sim.stats.by_order[order.id] += 1
        return json_response(order_json(order))

    @router.get("/orders/{id}")
    async def get_order(request: Request, id: str, nested: bool | None = None) -> Response:
        return json_response(order_json(known(request, id)))

    @router.delete("/orders/{id}")
    async def cancel_order(request: Request, id: str) -> Response:
        try:
            engine.cancel(id, account_of(request))
        except UnknownOrderError as exc:
            raise ORDER_NOT_FOUND from exc
        except (OrderClosedError, NotCancelableError) as exc:
            raise NOT_CANCELABLE from exc
        return Response(status_code=204)

    @router.delete("/orders")
    async def cancel_all_orders(request: Request) -> Response:
        """207, one entry per open order: 200 if now pending_cancel, 422 if being replaced."""
        result = engine.cancel_all(account_of(request))
        refusal = {"code": NOT_CANCELABLE.code, "message": NOT_CANCELABLE.message}
        answers: list[dict[str, object]] = [{"id": o.id, "status": 200} for o in result.canceled]
        answers += [{"id": o.id, "status": 422, "body": refusal} for o in result.refused]
        return json_response(answers, 207)

    @router.get("/account/activities/FILL")
    async def get_fill_activities(
        request: Request,
        date: str | None = None,
        after: str | None = None,
        until: str | None = None,
        direction: Literal["asc", "desc"] = "desc",
        page_size: Annotated[int, Query(ge=1, le=100)] = 100,
        page_token: str | None = None,
    ) -> Response:
        found = list_fills(
            engine,
            account=account_of(request),
            after_us=_time_param("after", after),
            until_us=_time_param("until", until),
            date=_activity_date(date),
            direction=direction,
            page_size=page_size,
            page_token=page_token,
        )
        return json_response([activity_json(fill) for fill in found])

    @router.get("/account/activities/CFEE")
    async def get_fee_activities(
        request: Request,
        date: str | None = None,
        after: str | None = None,
        until: str | None = None,
        direction: Literal["asc", "desc"] = "desc",
        page_size: Annotated[int, Query(ge=1, le=100)] = 100,
        page_token: str | None = None,
    ) -> Response:
        """Crypto fees, one per fill, each listed once posted (``cfee_delay_ms`` after it)."""
        found = list_fees(
            engine,
            account=account_of(request),
            after_us=_time_param("after", after),
            until_us=_time_param("until", until),
            date=_activity_date(date),
            direction=direction,
            page_size=page_size,
            page_token=page_token,
        )
        return json_response([fee_activity_json(fee) for fee in found])

    @router.get("/account/activities")
    async def get_activities(
        request: Request,
        activity_types: str | None = None,
        date: str | None = None,
        after: str | None = None,
        until: str | None = None,
        direction: Literal["asc", "desc"] = "desc",
        page_size: Annotated[int, Query(ge=1, le=100)] = 100,
        page_token: str | None = None,
    ) -> Response:
        """Every type (or ``activity_types``, comma separated) in one id order: FILL and CFEE
        are the only ones that happen here, the others Alpaca knows list nothing."""
        wanted = {t.strip() for t in (activity_types or "").split(",") if t.strip()}
        for activity_type in sorted(wanted):
            _one_of("activity_types", activity_type, ACTIVITY_TYPES)
        found = list_activities(
            engine,
            types=wanted or ACTIVITY_TYPES,
            account=account_of(request),
            after_us=_time_param("after", after),
            until_us=_time_param("until", until),
            date=_activity_date(date),
            direction=direction,
            page_size=page_size,
            page_token=page_token,
        )
        return json_response(
            [
                activity_json(item) if isinstance(item, Fill) else fee_activity_json(item)
                for item in found
            ]
        )

    @router.get("/positions")
    async def get_positions(request: Request) -> Response:
        engine.advance()
        owner = engine.account(account_of(request))
        return json_response(positions_json(owner, engine.price_of))

    @router.get("/positions/{symbol_or_asset_id:path}")
    async def get_position(request: Request, symbol_or_asset_id: str) -> Response:
        """By symbol or asset id; a crypto position as ``BTCUSD`` or ``BTC/USD`` (or ``%2F``)."""
        engine.advance()
        owner = engine.account(account_of(request))
        found = find_position_json(owner, engine.price_of, symbol_or_asset_id)
        if found is None:
            raise POSITION_NOT_FOUND
        return json_response(found)

    @router.get("/account")
    async def get_account(request: Request) -> Response:
        engine.advance()
        return json_response(account_json(engine.account(account_of(request)), engine.price_of))

    @router.get("/clock")
    async def get_clock() -> Response:
        engine.advance()
        return json_response(clock_json(engine))

    @router.get("/assets")
    async def get_assets(
        status: str | None = None,
        asset_class: str | None = None,
        exchange: str | None = None,
        attributes: str | None = None,
    ) -> Response:
        """The listed universe plus every symbol traded here; asset_class defaults to
        us_equity, as Alpaca's does."""
        chosen_status = _one_of("status", status, ASSET_STATUSES)
        chosen_class = ASSET_CLASS_OF.get(asset_class or "us_equity")
        if chosen_class is None:
            raise _refused("asset_class", str(asset_class))
        wanted = [a.strip() for a in (attributes or "").split(",") if a.strip()]
        for attribute in wanted:
            _one_of("attributes", attribute, ATTRIBUTES)
        if chosen_status == "inactive":  # every asset here is active
            return json_response([])
        found = list_assets(
            engine.books,
            asset_class=chosen_class,
            exchange=_one_of("exchange", exchange, EXCHANGES),
            attributes=wanted,
        )
        return json_response([asset_json(asset) for asset in found])

    @router.get("/assets/{symbol_or_asset_id:path}")
    async def get_asset(symbol_or_asset_id: str) -> Response:
        """By symbol or id; a crypto pair as ``BTC/USD`` (or ``%2F``) or ``BTCUSD``."""
        found = find_asset(symbol_or_asset_id, engine.books)
        if found is None:
            raise ApiError(404, 40410000, f"asset not found for {symbol_or_asset_id}")
        return json_response(asset_json(found))

    @router.get("/calendar")
    async def get_calendar(
        start: str | None = None, end: str | None = None, date_type: str | None = None
    ) -> Response:
        """The regular exchange schedule (not the simulated session the clock follows);
        without dates, Alpaca's whole span, 1970 to 2029."""
        first = _calendar_date("start", start, calendar.FIRST_DAY)
        last = _calendar_date("end", end, calendar.DEFAULT_LAST_DAY)
        by_settlement = _one_of("date_type", date_type, CALENDAR_DATE_TYPES) == "SETTLEMENT"
        since = max(first, calendar.FIRST_DAY)
        if by_settlement:  # a trade settles within a week: look that far back
            since = max(since - timedelta(days=7), calendar.FIRST_DAY)
        days = market_calendar.market_days(since, min(last, calendar.LAST_DAY))
        if by_settlement:
            days = [d for d in days if first <= d.settlement_date <= last]
        return json_response([calendar.day_json(day) for day in days])

    return router
