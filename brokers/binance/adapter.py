"""Binance Spot REST adapter over a sync ``httpx.Client``.

Reads are retried on transport errors and 5xx. A placement is sent once: only failures
that prove it never left (could not connect) are retried, anything else unknown is
``AnswerLost``. A 429 or 418 is never retried here (repeating one earns an IP ban): it is
``RateLimited`` for the shared budget to wait out. JSON lives in ``brokers.binance.parse``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar
from urllib.parse import urlencode

import httpx

from brokers.base import BrokerAdapter, ListStatus, RateLimitInfo, RequestObserver
from brokers.binance import filters, paging, parse, rules
from brokers.binance.refusals import KIND, TIMESTAMP_OUTSIDE_WINDOW, Call, refusal
from brokers.binance.signing import API_KEY_HEADER, ClockOffset, Signer, epoch_ms
from brokers.errors import AnswerLost, BrokerError, MalformedResponse, OrderRejected
from brokers.http import Transport
from core.enums import OrderClass, OrderType
from core.reports import (
    FillReport,
    OrderReport,
    Page,
    PlaceOrderRequest,
    PositionReport,
    ReplaceOrderRequest,
)

__all__ = ["BASE_URL", "BinanceBroker"]

logger = logging.getLogger(__name__)

BASE_URL = "https://api.binance.com"
MAX_PAGE = 1000
DEFAULT_PAGE = 500
RULES_TTL = timedelta(minutes=10)
R = TypeVar("R")
_CLIENT_ID = re.compile(r"^[a-zA-Z0-9_-]{1,36}$")
_TYPES = rules.ORDER_TYPES
_TIFS = rules.TIMES_IN_FORCE
# Request weights (rest-api.md); openOrders is 6 with a symbol, as it is always sent here.
_TIME = Call("GET", "/api/v3/time", 1, signed=False)
_EXCHANGE_INFO = Call("GET", "/api/v3/exchangeInfo", 20, signed=False)
_ACCOUNT = Call("GET", "/api/v3/account", 20)
_OPEN_ORDERS = Call("GET", "/api/v3/openOrders", 6)
_ALL_ORDERS = Call("GET", "/api/v3/allOrders", 20)
_MY_TRADES = Call("GET", "/api/v3/myTrades", 20)
# Each history endpoint's "from this id on" parameter.
_CURSOR_PARAMS = {_ALL_ORDERS.path: "orderId", _MY_TRADES.path: "fromId"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


TOO_MANY_ORDERS = -1015


class _ClockSkew(Exception):
    """-1021: the timestamp fell outside recvWindow; refused, so safe to resend once."""


class _BinanceTransport(Transport[Call]):
    """Binance's answers: only a 5xx is retried; a 429 or 418 is RateLimited at once and a
    -1021 goes back to the adapter to resync its clock; weight used against the limit."""

    weight_limit = filters.DEFAULT_WEIGHT_LIMIT  # learned from exchangeInfo

    def retried(self, response: httpx.Response) -> bool:
        return response.status_code >= 500

    def screen(self, call: Call, response: httpx.Response) -> None:
        status = response.status_code
        if status in (418, 429):
            code, message = parse.error_body(response.content)
            banned = " (IP banned)" if status == 418 else ""
            raise self.rate_limited(
                call, response, f"Binance {code}: {message}", f"rate limited{banned}"
            )
        if (
            400 <= status < 500
            and parse.error_body(response.content)[0] == TIMESTAMP_OUTSIDE_WINDOW
        ):
            raise _ClockSkew()

    def exhausted(self, call: Call, response: httpx.Response, placing: bool) -> BrokerError:
        code, message = parse.error_body(response.content)
        status = response.status_code
        if placing:
            return call.error(AnswerLost, f"HTTP {status} ({message}); look it up by "
                              "client order id before resending", status)  # fmt: skip
        return refusal(call, status, code, message)

    def retry_at(self, response: httpx.Response) -> datetime | None:
        """``Retry-After``; a -1015 carries none (Binance's docs say so): its 10 s window's end."""
        value = response.headers.get("Retry-After", "")
        if value.isdigit():
            return self.now() + timedelta(seconds=int(value))
        if _too_many_orders(response):
            now = self.now()
            return now.replace(microsecond=0) + timedelta(seconds=10 - now.second % 10)
        return None

    def rate_limit(self, response: httpx.Response) -> RateLimitInfo | None:
        """The weight used this minute (and every 429/418 of it), against the exchange's
        limit. A -1015 is the account's order count, not the weight: only new orders wait
        for it, so it does not stop the account's other requests."""
        used = response.headers.get("X-MBX-USED-WEIGHT-1M", "")
        limited = response.status_code in (418, 429) and not _too_many_orders(response)
        if not (used.isdigit() or limited):
            return None
        reset_at = self.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
        if limited:
            reset_at = self.retry_at(response) or reset_at
        return RateLimitInfo(
            limit=self.weight_limit,
            remaining=self.weight_limit - int(used) if used.isdigit() else None,
            reset_at=reset_at,
            status_code=response.status_code if limited else 200,
        )


def _too_many_orders(response: httpx.Response) -> bool:
    """A 429 for the account's new-order count (-1015), not the address's request weight."""
    return response.status_code == 429 and parse.error_body(response.content)[0] == TOO_MANY_ORDERS


class BinanceBroker(BrokerAdapter):
    """Binance Spot over a caller-owned ``httpx.Client`` whose ``base_url`` is set."""

    kind = KIND
    lists_by_symbol = True
    # A newClientOrderId is unique among open orders only: a filled order's may be reused.
    refuses_reused_client_ids = False
    lists_fills = True
    lists_fees = False
    positions_by_asset = True

    def __init__(
        self,
        client: httpx.Client,
        *,
        api_key: str,
        secret_key: str,
        recv_window_ms: int = 5000,
        max_attempts: int = 4,
        max_retry_wait_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        gate: Callable[[int], None] | None = None,
        observer: Callable[[RateLimitInfo], None] | None = None,
        on_request: RequestObserver | None = None,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not 0 < recv_window_ms <= 60000:
            raise ValueError(f"recv_window_ms must be in 1..60000, got {recv_window_ms}")
        self._http = _BinanceTransport(
            KIND, logger, max_attempts=max_attempts, max_retry_wait_s=max_retry_wait_s,
            gate=gate, observer=observer, on_request=on_request, now=now, sleep=sleep,
        )  # fmt: skip
        self._client = client
        self._signer = Signer(api_key, secret_key)
        self._recv_window_ms = recv_window_ms
        self._now = now
        self._clock = ClockOffset()
        self._rules: dict[str, tuple[filters.SymbolRules, datetime]] = {}
        self._owns_client = False

    @classmethod
    def from_url(
        cls,
        base_url: str,
        *,
        api_key: str,
        secret_key: str,
        timeout_s: float = 5.0,
        **kw: Any,
    ) -> Self:
        """An adapter with its own client, closed by ``close()``."""
        client = httpx.Client(base_url=base_url, timeout=timeout_s)
        broker = cls(client, api_key=api_key, secret_key=secret_key, **kw)
        broker._owns_client = True
        return broker

    def __repr__(self) -> str:
        base_url = str(self._client.base_url)
        return f"BinanceBroker(base_url={base_url!r}, api_key={self._signer.api_key!r})"

    def close(self) -> None:
        """Close the client only if ``from_url`` made it; a caller's client is the caller's."""
        if self._owns_client:
            self._client.close()

    # -- orders ---------------------------------------------------------------------------

    def place(self, request: PlaceOrderRequest) -> OrderReport:
        """Check the symbol's filters, then submit once with inline fills (FULL)."""
        _check_client_id(request.client_order_id)
        call = Call("POST", "/api/v3/order", 1, placing=True,
                    client_order_id=request.client_order_id)  # fmt: skip
        params = self._order_params(call, request)
        problem = filters.check_order(self._symbol_rules(request.symbol), request)
        if problem is not None:
            raise call.error(OrderRejected, problem, None)
        return self._order(call, params)

    def _order_params(self, call: Call, request: PlaceOrderRequest) -> dict[str, str]:
        if request.order_class is not OrderClass.SIMPLE:
            raise call.error(
                OrderRejected, f"order class {request.order_class} is not supported", None
            )
        kind = _TYPES.get(request.order_type)
        if kind is None:
            raise call.error(
                OrderRejected, f"order type {request.order_type} is not supported", None
            )
        params = {
            "symbol": request.symbol,
            "side": request.side.value.upper(),
            "type": kind,
            "newClientOrderId": request.client_order_id,
            "newOrderRespType": "FULL",
        }
        if request.order_type is OrderType.MARKET and request.notional is not None:
            params["quoteOrderQty"] = parse.decimal_str(request.notional)
        elif request.quantity is not None:
            params["quantity"] = parse.decimal_str(request.quantity)
        else:
            raise ValueError(f"order {request.client_order_id} has no quantity")
        if request.order_type in rules.LIMIT_TYPES:
            tif = _TIFS.get(request.time_in_force)
            if tif is None:
                raise call.error(OrderRejected,
                                 f"time in force {request.time_in_force} is not a Binance one "
                                 "(gtc, ioc, fok)", None)  # fmt: skip
            params["timeInForce"] = tif
            if request.limit_price is None:
                raise ValueError(f"order {request.client_order_id} needs a limit price")
            params["price"] = parse.decimal_str(request.limit_price)
        if request.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
            if request.stop_price is None:
                raise ValueError(f"order {request.client_order_id} needs a stop price")
            params["stopPrice"] = parse.decimal_str(request.stop_price)
        return params

    def replace(self, broker_order_id: str, request: ReplaceOrderRequest) -> OrderReport:
        """``POST /api/v3/order/cancelReplace`` with STOP_ON_FAILURE: the old order's side
        and type, the request's terms. Sent once, as a placement is (it creates an order)."""
        symbol, order_id = parse.split_id(broker_order_id)
        _check_client_id(request.client_order_id)
        call = Call("POST", "/api/v3/order/cancelReplace", 1, placing=True,
                    broker_order_id=broker_order_id,
                    client_order_id=request.client_order_id)  # fmt: skip
        old = self.get_order(broker_order_id)
        if old.raw.get("type") not in _TYPES.values():
            raise call.error(OrderRejected, f"cannot replace a {old.raw.get('type')} order", None)
        new = PlaceOrderRequest(
            client_order_id=request.client_order_id, symbol=symbol, side=old.side,
            quantity=request.quantity, order_type=old.order_type,
            time_in_force=request.time_in_force, limit_price=request.limit_price,
            stop_price=request.stop_price,
        )  # fmt: skip
        params = self._order_params(call, new)
        params |= {"cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": str(order_id)}
        problem = filters.check_order(self._symbol_rules(symbol), new)
        if problem is not None:
            raise call.error(OrderRejected, problem, None)
        body = self._request(call, params)
        try:
            answer = parse.as_dict(body, "cancelReplace answer")
            report = parse.parse_order(answer.get("newOrderResponse"))
        except parse.ParseError as exc:
            raise call.error(MalformedResponse, str(exc), 200) from None
        return replace(report, replaces=broker_order_id)

    def get_order(self, broker_order_id: str) -> OrderReport:
        symbol, order_id = parse.split_id(broker_order_id)
        call = Call("GET", "/api/v3/order", 4, broker_order_id=broker_order_id)
        return self._order(call, {"symbol": symbol, "orderId": str(order_id)})

    def get_order_by_client_id(
        self, client_order_id: str, *, symbol: str | None = None
    ) -> OrderReport:
        """Binance looks client ids up within a symbol, so ``symbol`` is required."""
        if symbol is None:
            raise ValueError(f"Binance needs the symbol to look up {client_order_id!r}")
        if not client_order_id:
            raise ValueError("client_order_id must be a non-empty string")
        call = Call("GET", "/api/v3/order", 4, client_order_id=client_order_id)
        return self._order(call, {"symbol": symbol, "origClientOrderId": client_order_id})

    def cancel(self, broker_order_id: str) -> None:
        """Ask for a cancel; later reports say whether it won the race with fills."""
        symbol, order_id = parse.split_id(broker_order_id)
        call = Call("DELETE", "/api/v3/order", 1, broker_order_id=broker_order_id)
        self._request(call, {"symbol": symbol, "orderId": str(order_id)})

    def list_orders(
        self,
        *,
        status: ListStatus = "all",
        after: datetime | None = None,
        until: datetime | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        symbols: Sequence[str] = (),
    ) -> Page[OrderReport]:
        """One symbol's open orders, or one page of one 24 h window of allOrders."""
        if status == "open":
            return self._open_orders(after, until, page_token, symbols)
        if status not in ("all", "closed"):
            raise ValueError(f"status must be open, closed or all, got {status!r}")
        page = self._windowed(_ALL_ORDERS, "orderId", parse.parse_order, after, until,
                              page_size, page_token, symbols)  # fmt: skip
        if status == "closed":
            page = replace(page, items=tuple(o for o in page.items if o.status.is_terminal))
        return page

    def _open_orders(
        self, after: datetime | None, until: datetime | None, page_token: str | None,
        symbols: Sequence[str],
    ) -> Page[OrderReport]:  # fmt: skip
        """One symbol per page: openOrders has no paging of its own."""
        if not symbols:
            return Page(items=())
        index = 0 if page_token is None else _symbol_index(paging.decode(page_token), symbols)
        raw_items = self._many(_OPEN_ORDERS, {"symbol": symbols[index]})
        items, malformed = parse.parse_items(raw_items, parse.parse_order)
        items = tuple(
            o
            for o in items
            if (after is None or o.created_at > after) and (until is None or o.created_at < until)
        )
        next_token = None
        if index + 1 < len(symbols):
            next_token = paging.encode(paging.Cursor(symbols[index + 1], None, None, 0))
        return Page(items=items, next_token=next_token, malformed=malformed)

    # -- account --------------------------------------------------------------------------

    def list_fills(
        self,
        *,
        after: datetime | None = None,
        until: datetime | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        symbols: Sequence[str] = (),
    ) -> Page[FillReport]:
        """One page of one symbol's trades in one 24 h window, oldest first."""
        page = self._windowed(_MY_TRADES, "id", parse.parse_trade, after, until, page_size,
                              page_token, symbols)  # fmt: skip
        return replace(page, items=tuple(self._sorted_fee(fill) for fill in page.items))

    def _sorted_fee(self, fill: FillReport) -> FillReport:
        return parse.sort_fee(fill, *self.symbol_assets(fill.symbol))

    def fill_cursor(self, fill: FillReport) -> str:
        """Continue in the fill's symbol from its millisecond, past its trade id."""
        symbol, trade_id = parse.split_id(fill.broker_fill_id)
        at = epoch_ms(fill.filled_at)
        return paging.encode(paging.Cursor(symbol, None, None, at, trade_id))

    def list_positions(self) -> list[PositionReport]:
        """Every asset held (free + locked) as a position in that asset."""
        body = self._request(_ACCOUNT, {})
        try:
            return parse.parse_balances(body)
        except parse.ParseError as exc:
            raise _ACCOUNT.error(MalformedResponse, str(exc), 200) from None

    def holding_of(self, symbol: str) -> str:
        """A symbol's holding is its base asset's balance (BTCUSDT -> BTC)."""
        return self.symbol_assets(symbol)[0]

    def quoted_in(self, symbol: str) -> str:
        return self.symbol_assets(symbol)[1]

    def symbol_assets(self, symbol: str) -> tuple[str, str]:
        """(baseAsset, quoteAsset) of a symbol, so assets held can be mapped to symbols."""
        rules = self._symbol_rules(symbol)
        return rules.base_asset, rules.quote_asset

    # -- paging ---------------------------------------------------------------------------

    def _windowed(
        self, call: Call, id_key: str, parser: Callable[[object], R], after: datetime | None,
        until: datetime | None, page_size: int | None, page_token: str | None,
        symbols: Sequence[str],
    ) -> Page[R]:  # fmt: skip
        """One request: a symbol's items in one window, by time or past the cursor's id; the
        token says what comes next (more of this window, the next window, the next symbol)."""
        if not symbols:
            return Page(items=())
        limit = DEFAULT_PAGE if page_size is None else page_size
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"page_size must be in 1..{MAX_PAGE}, got {page_size}")
        end_ms = epoch_ms(until if until is not None else self._now())
        start_ms = epoch_ms(after) if after is not None else end_ms - paging.WINDOW_MS + 1
        # A listing without an end reads up to each call's now, and so do its tokens: a
        # stored one (a forward sync's) still reaches what happens after it was made.
        open_end = until is None
        if page_token is None:
            index, cursor = 0, paging.Cursor(symbols[0], start_ms, end_ms, start_ms)
        else:
            cursor = paging.decode(page_token)
            index = _symbol_index(cursor, symbols)
            open_end = cursor.end_ms is None
            start_ms = cursor.start_ms if cursor.start_ms is not None else cursor.window_ms
            end_ms = cursor.end_ms if cursor.end_ms is not None else end_ms
            cursor = replace(cursor, start_ms=start_ms, end_ms=end_ms)
        window_end = cursor.window_end(end_ms)
        params = {"symbol": cursor.symbol, "limit": str(limit)}
        if cursor.last_id is None:
            params |= {"startTime": str(cursor.window_ms), "endTime": str(window_end)}
        else:
            params[_CURSOR_PARAMS[call.path]] = str(cursor.last_id + 1)
        raw_items = self._many(call, params)
        keys = [_item_key(raw, id_key) for raw in raw_items]
        # Past the window: left for the next one. Unreadable items stay, to be reported.
        kept = [raw for raw, key in zip(raw_items, keys, strict=True) if key[0] <= window_end]
        items, malformed = parse.parse_items(kept, parser)
        readable = [key[1] for key in keys if key[0] >= 0]
        following: paging.Cursor | None = None
        if len(raw_items) >= limit and all(key[0] <= window_end for key in keys):
            if not readable:
                raise call.error(MalformedResponse, "no item on a full page has a time and id", 200)
            following = replace(cursor, last_id=max(readable))
        else:
            following = cursor.next_window(end_ms)
            if following is None and index + 1 < len(symbols):
                following = paging.Cursor(symbols[index + 1], start_ms, end_ms, start_ms)
        if following is not None and open_end:
            following = replace(following, end_ms=None)
        next_token = None if following is None else paging.encode(following)
        return Page(items=items, next_token=next_token, malformed=malformed)

    # -- exchange info --------------------------------------------------------------------

    def _symbol_rules(self, symbol: str) -> filters.SymbolRules:
        """A symbol's filters and assets, cached for ten minutes."""
        cached = self._rules.get(symbol)
        if cached is not None and self._now() - cached[1] < RULES_TTL:
            return cached[0]
        body = self._request(_EXCHANGE_INFO, {"symbol": symbol})
        try:
            rules = filters.parse_symbol_rules(body, symbol)
            limit = filters.weight_limit(body)
        except parse.ParseError as exc:
            raise _EXCHANGE_INFO.error(MalformedResponse, str(exc), 200) from None
        if limit is not None:
            self._http.weight_limit = limit
        self._rules[symbol] = (rules, self._now())
        return rules

    def _sync_clock(self) -> None:
        """Learn the server's clock offset from ``GET /api/v3/time``."""
        sent = self._now()
        body = self._request(_TIME, {})
        try:
            server_ms = parse.integer(parse.as_dict(body, "time"), "serverTime")
        except parse.ParseError as exc:
            raise _TIME.error(MalformedResponse, str(exc), 200) from None
        self._clock.learn(server_ms, sent, self._now())

    # -- HTTP -----------------------------------------------------------------------------

    def _order(self, call: Call, params: dict[str, str]) -> OrderReport:
        body = self._request(call, params)
        try:
            report = parse.parse_order(body)
        except parse.ParseError as exc:
            raise call.error(MalformedResponse, str(exc), 200) from None
        if not report.fills:
            return report
        return replace(report, fills=tuple(self._sorted_fee(fill) for fill in report.fills))

    def _many(self, call: Call, params: dict[str, str]) -> list[object]:
        body = self._request(call, params)
        try:
            return parse.as_list(body, "body")
        except parse.ParseError as exc:
            raise call.error(MalformedResponse, str(exc), 200) from None

    def _request(self, call: Call, params: dict[str, str]) -> object:
        """The parsed body of a successful answer; every other outcome is a BrokerError.

        A -1021 (clock skew) was refused before anything happened: resync, resend once."""
        if call.signed and self._clock.offset_ms is None:
            self._sync_clock()
        try:
            response = self._send(call, params)
        except _ClockSkew:
            self._sync_clock()
            try:
                response = self._send(call, params)
            except _ClockSkew:
                raise call.error(
                    BrokerError, "timestamp outside recvWindow after resync", 400
                ) from None
        if not response.is_success:
            code, message = parse.error_body(response.content)
            raise refusal(call, response.status_code, code, message)
        try:
            return parse.loads(response.content)
        except parse.ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None

    def _send(self, call: Call, params: dict[str, str]) -> httpx.Response:
        """One request under the shared retry policy (``brokers.http``), signed anew for
        each attempt so its timestamp is fresh."""
        return self._http.send(
            call, lambda: self._signed(call, params), placing=call.placing, weight=call.weight
        )

    def _signed(self, call: Call, params: dict[str, str]) -> httpx.Response:
        headers = {API_KEY_HEADER: self._signer.api_key}
        if call.signed:
            stamp = self._clock.timestamp_ms(self._now())
            query = self._signer.signed_query(params, stamp, self._recv_window_ms)
        else:
            query = urlencode(params)
        url = f"{call.path}?{query}" if query else call.path
        return self._client.request(call.method, url, headers=headers)


def _check_client_id(cid: str) -> None:
    if not _CLIENT_ID.match(cid):
        raise ValueError(f"Binance takes client ids of 1-36 letters, digits, - or _: {cid!r}")


def _symbol_index(cursor: paging.Cursor, symbols: Sequence[str]) -> int:
    if cursor.symbol not in symbols:
        raise ValueError(f"page token's symbol {cursor.symbol!r} is not among {list(symbols)}")
    return list(symbols).index(cursor.symbol)


def _item_key(raw: object, id_key: str) -> tuple[int, int]:
    """(time ms, id) of a raw item; (-1, -1) when unreadable (kept, to be reported)."""
    if isinstance(raw, dict):
        at, item_id = raw.get("time"), raw.get(id_key)
        if isinstance(at, int) and isinstance(item_id, int):
            return at, item_id
    return -1, -1
