"""OANDA v20 (REST, ``/v3/accounts/{accountID}``) adapter over a sync ``httpx.Client``.

Our client order id travels as the order's ``clientExtensions.id`` and is looked up with
``GET /orders/@{id}``: a lost placement answer is settled by that lookup. Reads and cancels
are retried (bounded) on transport errors, 5xx and 429; a placement only when OANDA
certainly did not act on it. Fills are the account's ORDER_FILL transactions, read forward
from a transaction id (``sinceid``); the page token is the last transaction id read.
Parsing lives in ``parse``, the terms OANDA takes in ``rules``, requests in ``http``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NoReturn, Self
from urllib.parse import quote

import httpx

from brokers.base import BrokerAdapter, ListStatus, RateLimitInfo, RequestObserver
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    BrokerError,
    DuplicateClientOrderId,
    OrderNotCancelable,
    OrderRejected,
)
from brokers.oanda import parse, rules, trades
from brokers.oanda.http import KIND, Call, Transport
from brokers.values import ParseError, decimal_str, excerpt, parse_items, rfc3339, to_datetime
from core.enums import OrderType, Side
from core.reports import (
    BrokerTradeReport,
    FillReport,
    MalformedItem,
    OrderReport,
    Page,
    PlaceOrderRequest,
    PositionReport,
    ReplaceOrderRequest,
)

__all__ = ["OandaBroker"]

ORDERS_PER_REQUEST = 500  # GET /orders ``count`` maximum (OANDA's HTML docs [U])
MAX_ORDER_REQUESTS = 20  # one list_orders call reads at most 10,000 orders
DEFAULT_PAGE = 500
MAX_PAGE = 1000
TRANSACTIONS_PAGE = 1000  # GET /transactions ``pageSize`` maximum [C]
# GET /trades answers ``count`` trades at most (default 50, maximum 500 [U: HTML docs]),
# whatever ``ids`` names: a request names no more ids than its count.
TRADES_PER_REQUEST = 50
INSTRUMENT_TTL = timedelta(minutes=10)
_REJECT_DUPLICATE = "CLIENT_ORDER_ID_ALREADY_EXISTS"
_CANCEL_MISSING = "ORDER_DOESNT_EXIST"
_REPLACEABLE = ("LIMIT", "STOP", "MARKET_IF_TOUCHED")  # a market order never rests


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _order_path(specifier: str) -> str:
    return f"/orders/{quote(specifier, safe='@')}"


def _page_size(requested: int | None, default: int) -> int:
    size = default if requested is None else requested
    if not 1 <= size <= MAX_PAGE:
        raise ValueError(f"page_size must be within 1..{MAX_PAGE}, got {requested}")
    return size


def _token(page_token: str) -> int:
    if not page_token.isdigit():
        raise ValueError(f"page_token {excerpt(page_token)!r} is not an OANDA transaction id")
    return int(page_token)


def _created(raw: object) -> datetime | None:
    try:
        return to_datetime(raw.get("createTime") if isinstance(raw, dict) else None, "createTime")
    except ParseError:
        return None


def _time(raw: object) -> datetime | None:
    try:
        return to_datetime(raw.get("time") if isinstance(raw, dict) else None, "time")
    except ParseError:
        return None


class OandaBroker(BrokerAdapter):
    """OANDA v20 for one account, over a caller-owned client whose ``base_url`` is the API
    host (``https://api-fxpractice.oanda.com`` or ``https://api-fxtrade.oanda.com``)."""

    kind = KIND
    lists_fills = True
    lists_fees = False
    # CLIENT_ORDER_ID_ALREADY_EXISTS guards the ids of pending orders: a filled order's id
    # is taken again (as OANDA words it; not confirmed live), so a resend is looked up first.
    refuses_reused_client_ids = False
    reports_trades = True

    def __init__(
        self,
        client: httpx.Client,
        *,
        account_id: str,
        token: str,
        max_attempts: int = 4,
        max_retry_wait_s: float = 10.0,
        gate: Callable[[int], None] | None = None,
        observer: Callable[[RateLimitInfo], None] | None = None,
        on_request: RequestObserver | None = None,
        now: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._account_id = account_id
        self._now = now
        self._http = Transport(
            client, account_id, token, max_attempts=max_attempts,
            max_retry_wait_s=max_retry_wait_s, gate=gate, observer=observer,
            on_request=on_request, now=now, sleep=sleep,
        )  # fmt: skip
        self._home: str | None = None
        self._instruments: dict[str, tuple[rules.Instrument | None, datetime]] = {}
        self._owns_client = False

    @classmethod
    def from_url(
        cls,
        base_url: str,
        *,
        account_id: str,
        token: str,
        timeout_s: float = 5.0,
        max_attempts: int = 4,
        max_retry_wait_s: float = 10.0,
        gate: Callable[[int], None] | None = None,
        observer: Callable[[RateLimitInfo], None] | None = None,
        on_request: RequestObserver | None = None,
    ) -> Self:
        """An adapter with its own client, closed by ``close()``."""
        broker = cls(
            httpx.Client(base_url=base_url, timeout=timeout_s), account_id=account_id,
            token=token, max_attempts=max_attempts, max_retry_wait_s=max_retry_wait_s,
            gate=gate, observer=observer, on_request=on_request,
        )  # fmt: skip
        broker._owns_client = True
        return broker

    def __repr__(self) -> str:
        return (f"OandaBroker(base_url={str(self._client.base_url)!r}, "
                f"account_id={self._account_id!r})")  # fmt: skip

    def close(self) -> None:
        """Close the client only if ``from_url`` made it."""
        if self._owns_client:
            self._client.close()

    # -- account --------------------------------------------------------------------------

    def home_currency(self) -> str:
        """The account's home currency (``GET /summary``), read once: OANDA states fees,
        financing and realized P&L in it, whatever the instrument's quote currency."""
        if self._home is None:
            call = Call("GET", "/summary", "GET /summary")
            response = self._http.read(call)
            try:
                self._home = parse.home_currency(response.content)
            except ParseError as exc:
                raise self._http.malformed(call, response, str(exc)) from None
        return self._home

    def last_transaction_id(self) -> int:
        """The account's last transaction id now (``GET /summary``, which also tells the home
        currency): where a transaction stream opened before this reads on from."""
        call = Call("GET", "/summary", "GET /summary")
        response = self._http.read(call)
        try:
            self._home, last = parse.account_summary(response.content)
        except ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None
        return last

    def _instrument(self, call: Call, symbol: str) -> rules.Instrument | None:
        """An instrument's units rules for this account, cached for ten minutes."""
        cached = self._instruments.get(symbol)
        if cached is not None and self._now() - cached[1] < INSTRUMENT_TTL:
            return cached[0]
        look = Call("GET", "/instruments", "GET /instruments",
                    client_order_id=call.client_order_id)  # fmt: skip
        response = self._http.read(look, params={"instruments": symbol})
        try:
            instrument = parse.parse_instrument(response.content, symbol)
        except ParseError as exc:
            raise self._http.malformed(look, response, str(exc)) from None
        self._instruments[symbol] = (instrument, self._now())
        return instrument

    # -- orders ---------------------------------------------------------------------------

    def place(self, request: PlaceOrderRequest) -> OrderReport:
        """Check the terms and the instrument's units, then submit once. A market order's
        fill or cancel comes back in the answer, and with it the report's status."""
        call = Call("POST", "/orders", "POST /orders", client_order_id=request.client_order_id)
        problem = rules.terms_problem(
            request.symbol, request.order_type, request.time_in_force, request.order_class,
            quantity=request.quantity, notional=request.notional,
        )  # fmt: skip
        if problem is not None or request.quantity is None:
            raise call.error(OrderRejected, problem or "OANDA orders name units", None)
        price = {OrderType.LIMIT: request.limit_price, OrderType.STOP: request.stop_price}
        body = self._order_body(
            call, request.symbol, request.quantity if request.side is Side.BUY
            else -request.quantity, rules.ORDER_TYPES[request.order_type],
            rules.oanda_time_in_force(request.order_type, request.time_in_force),
            price.get(request.order_type), request.client_order_id,
        )  # fmt: skip
        home = self.home_currency()  # before sending: the answer must not wait on it
        response = self._http.request(call, body=body, placing=True)
        return self._created(call, response, home)

    def _order_body(self, call: Call, symbol: str, units: Decimal, kind: str, tif: str,
                    price: Decimal | None, client_order_id: str) -> dict[str, object]:  # fmt: skip
        """``{"order": ...}``, refused here (nothing sent) when OANDA would refuse the units."""
        instrument = self._instrument(call, symbol)
        if instrument is None:
            raise call.error(OrderRejected, f"{symbol} is not tradeable in this account", None)
        problem = rules.units_problem(instrument, abs(units))
        if problem is not None:
            raise call.error(OrderRejected, problem, None)
        order: dict[str, object] = {
            "type": kind, "instrument": symbol, "units": decimal_str(units),
            "timeInForce": tif, "positionFill": "DEFAULT",
            "clientExtensions": {"id": client_order_id},
        }  # fmt: skip
        if kind != "MARKET":
            if price is None:
                raise call.error(OrderRejected, f"a {kind} order needs a price", None)
            order["price"] = decimal_str(price)
        return {"order": order}

    def _created(self, call: Call, response: httpx.Response, home: str) -> OrderReport:
        """The report from a 201, or the error for a refusal. An unreadable 201 may be an
        order made: a lost answer, to look up by client order id."""
        if not response.is_success:
            self._refused(call, response)
        try:
            return parse.parse_created(response.content, home)
        except ParseError as exc:
            raise call.error(
                AnswerLost,
                f"{exc}; body: {excerpt(response.content)}; look it up by client order id",
                response.status_code,
            ) from None

    @staticmethod
    def _refused(call: Call, response: httpx.Response) -> NoReturn:
        """A 4xx to a request that creates an order: refused as asked, not resent. The
        reason is the reject transaction's ``rejectReason`` (or the ``errorCode``)."""
        status = response.status_code
        message = parse.error_message(response.content, status)
        if status == 401:
            raise call.error(AuthenticationFailed, message, status)
        if status == 403 and parse.reject_reason(response.content) is None:
            raise call.error(AuthenticationFailed, message, status)
        if parse.reject_reason(response.content) == _REJECT_DUPLICATE:
            raise call.error(DuplicateClientOrderId, message, status)
        raise call.error(OrderRejected, message, status)

    def replace(self, broker_order_id: str, request: ReplaceOrderRequest) -> OrderReport:
        """``PUT /orders/{id}``: OANDA cancels the order and makes a new one (a new id, with
        ``replacesOrderID``), as Alpaca's replace does. Only resting orders (limit, stop,
        market-if-touched) can be; sent once, as a placement is."""
        old = self.get_order(broker_order_id)
        raw_type = str(old.raw.get("type"))
        call = Call(
            "PUT",
            _order_path(broker_order_id),
            "PUT /orders/{id}",
            broker_order_id=broker_order_id,
            client_order_id=request.client_order_id,
        )
        if raw_type not in _REPLACEABLE or old.order_type not in rules.ORDER_TYPES:
            raise call.error(OrderRejected, f"a {raw_type} order cannot be replaced", None)
        if request.time_in_force not in rules.TIMES_IN_FORCE:
            raise call.error(OrderRejected, f"OANDA has no time in force "
                             f"{request.time_in_force.value}", None)  # fmt: skip
        price = request.limit_price if old.order_type is OrderType.LIMIT else request.stop_price
        units = request.quantity if old.side is Side.BUY else -request.quantity
        body = self._order_body(call, old.symbol, units, raw_type,
                                rules.TIMES_IN_FORCE[request.time_in_force], price,
                                request.client_order_id)  # fmt: skip
        home = self.home_currency()
        response = self._http.request(call, body=body, placing=True)
        return self._created(call, response, home)

    def get_order(self, broker_order_id: str) -> OrderReport:
        """``GET /orders/{id}``, with the transaction that filled or cancelled it."""
        if not broker_order_id or broker_order_id.startswith("@"):
            raise ValueError(f"broker_order_id {broker_order_id!r} is not an OANDA order id")
        call = Call("GET", _order_path(broker_order_id), "GET /orders/{id}",
                    broker_order_id=broker_order_id)  # fmt: skip
        return self._order(call)

    def get_order_by_client_id(
        self, client_order_id: str, *, symbol: str | None = None
    ) -> OrderReport:
        """``GET /orders/@{clientID}``: the order whose ``clientExtensions.id`` this is."""
        if not client_order_id:
            raise ValueError("client_order_id must be a non-empty string")
        call = Call("GET", _order_path("@" + client_order_id), "GET /orders/@{clientID}",
                    client_order_id=client_order_id)  # fmt: skip
        return self._order(call)

    def _order(self, call: Call) -> OrderReport:
        """One order as OANDA shows it, decided by its fill or cancel transaction (read
        too, one request each): exact fill figures and fee, and a cancel's reason."""
        response = self._http.read(call)
        try:
            raw = parse.parse_order_answer(response.content)
        except ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None
        fill = self._transaction(call, raw.get("fillingTransactionID"))
        cancel = self._transaction(call, raw.get("cancellingTransactionID"))
        home = self.home_currency() if fill is not None else None
        try:
            return parse.parse_order(raw, parse.Outcome(fill, cancel), home)
        except ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None

    def _transaction(self, call: Call, transaction_id: object) -> dict[str, object] | None:
        if not isinstance(transaction_id, str) or not transaction_id.isdigit():
            return None
        look = Call("GET", f"/transactions/{transaction_id}", "GET /transactions/{id}",
                    broker_order_id=call.broker_order_id,
                    client_order_id=call.client_order_id)  # fmt: skip
        response = self._http.read(look)
        try:
            return parse.transaction(response.content)
        except ParseError as exc:
            raise self._http.malformed(look, response, str(exc)) from None

    def cancel(self, broker_order_id: str) -> None:
        """``PUT /orders/{id}/cancel``; the outcome arrives as a later report."""
        if not broker_order_id:
            raise ValueError("broker_order_id must be a non-empty string")
        call = Call("PUT", _order_path(broker_order_id) + "/cancel", "PUT /orders/{id}/cancel",
                    broker_order_id=broker_order_id)  # fmt: skip
        response = self._http.request(call)
        if response.is_success:
            return
        status = response.status_code
        reason = parse.reject_reason(response.content)
        if status in (401, 403) or reason in (None, _CANCEL_MISSING) or status >= 500:
            raise self._http.refusal(call, response)
        # An orderCancelRejectTransaction for an order that exists: it is done or busy.
        raise call.error(OrderNotCancelable, parse.error_message(response.content, status), status)

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
        """Orders created in (after, until), oldest first. OANDA lists newest first by id
        (``beforeID``) with no time filter, so each call walks down from the newest to the
        window's start (or the token, the last id returned) and returns the oldest part."""
        if status not in ("open", "closed", "all"):
            raise ValueError(f"status must be open, closed or all, got {status!r}")
        size = _page_size(page_size, DEFAULT_PAGE)
        floor = None if page_token is None else _token(page_token)
        found, malformed = self._walk_orders(status, after, until, floor)
        found.sort(key=lambda pair: pair[0])
        chosen = found[:size]
        items, unreadable = parse_items([raw for _, raw in chosen], parse.parse_order)
        next_token = str(chosen[-1][0]) if len(found) > size else None
        return Page(items=items, next_token=next_token, malformed=malformed + unreadable)

    def _walk_orders(
        self, status: ListStatus, after: datetime | None, until: datetime | None,
        floor: int | None,
    ) -> tuple[list[tuple[int, object]], tuple[MalformedItem, ...]]:  # fmt: skip
        """(id, raw order) of the window above ``floor``; orders without an id, once."""
        call = Call("GET", "/orders", "GET /orders")
        params = {"state": "PENDING" if status == "open" else "ALL",
                  "count": str(ORDERS_PER_REQUEST)}  # fmt: skip
        found: list[tuple[int, object]] = []
        malformed: list[MalformedItem] = []
        for _ in range(MAX_ORDER_REQUESTS):
            response = self._http.read(call, params=params)
            try:
                raw_orders = parse.orders(response.content)
            except ParseError as exc:
                raise self._http.malformed(call, response, str(exc)) from None
            ids: list[int] = []
            for raw in raw_orders:
                order_id = parse.transaction_id(raw)
                if order_id is None:
                    if floor is None:
                        malformed.append(MalformedItem("order without a readable id", raw))
                    continue
                ids.append(order_id)
                created = _created(raw)
                if (floor is not None and order_id <= floor) or (
                    created is not None and after is not None and created <= after
                ):
                    return found, tuple(malformed)  # newest first: the rest is older
                if _wanted(raw, status, created, until):
                    found.append((order_id, raw))
            if len(raw_orders) < ORDERS_PER_REQUEST or not ids:
                return found, tuple(malformed)
            params["beforeID"] = str(min(ids))
        raise call.error(
            BrokerError,
            f"more than {MAX_ORDER_REQUESTS * ORDERS_PER_REQUEST} orders in the window; "
            "list a shorter window",
            None,
        )

    # -- fills and positions --------------------------------------------------------------

    def list_fills(
        self,
        *,
        after: datetime | None = None,
        until: datetime | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        symbols: Sequence[str] = (),
    ) -> Page[FillReport]:
        """ORDER_FILL transactions after the token (a transaction id) or from ``after``,
        up to ``until``, oldest first; other transaction types are skipped. Without a token
        the window's first transaction id comes from ``GET /transactions?from=``."""
        size = _page_size(page_size, MAX_PAGE)
        if page_token is not None:
            since = _token(page_token)
        else:
            start, last = self._first_fill(after, until)
            if start is None:  # no fill in the window: a cursor at the account's last id
                return Page(items=(), next_token=str(last) if until is None else None)
            since = start - 1
        call = Call("GET", "/transactions/sinceid", "GET /transactions/sinceid")
        response = self._http.read(call, params={"id": str(since)})
        try:
            raw, last = parse.transactions(response.content)
        except ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None
        fills, malformed, covered, done = _fills_after(raw, since, until, size)
        home = self.home_currency() if fills else None
        items, unreadable = parse_items(fills, lambda item: parse.parse_fill(item, home))
        more = not done and covered < last
        return Page(items=items, next_token=str(covered) if more else None,
                    malformed=malformed + unreadable)  # fmt: skip

    def _first_fill(self, after: datetime | None, until: datetime | None) -> tuple[int | None, int]:
        call = Call("GET", "/transactions", "GET /transactions")
        params = {"type": "ORDER_FILL", "pageSize": str(TRANSACTIONS_PAGE)}
        if after is not None:
            params["from"] = rfc3339(after)
        if until is not None:
            params["to"] = rfc3339(until)
        response = self._http.read(call, params=params)
        try:
            return parse.first_page_start(response.content)
        except ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None

    def fill_cursor(self, fill: FillReport) -> str:
        """The fill's transaction id: ``sinceid`` reads on after it."""
        return fill.broker_fill_id

    def list_positions(self) -> list[PositionReport]:
        """``/openPositions``, one signed quantity per instrument; one unreadable position
        fails the call, since a partial set would look like a mismatch."""
        call = Call("GET", "/openPositions", "GET /openPositions")
        response = self._http.read(call)
        try:
            return parse.parse_positions(response.content)
        except ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None

    def get_trades(self, trade_ids: Sequence[str]) -> Page[BrokerTradeReport]:
        """``GET /trades?ids=&state=ALL``, a request per 50 ids: OANDA's own trades (a trade's
        id is its opening fill's transaction id), open or closed, oldest first; unknown ids are
        left out."""
        if not all(i.isdigit() for i in trade_ids):
            raise ValueError(f"trade ids must be OANDA transaction ids, got {list(trade_ids)!r}")
        wanted = sorted(set(trade_ids), key=int)
        items: list[BrokerTradeReport] = []
        malformed: list[MalformedItem] = []
        call = Call("GET", "/trades", "GET /trades")
        home = self.home_currency() if wanted else ""
        for start in range(0, len(wanted), TRADES_PER_REQUEST):
            chunk = wanted[start : start + TRADES_PER_REQUEST]
            response = self._http.read(call, params={"ids": ",".join(chunk), "state": "ALL",
                                                     "count": str(len(chunk))})  # fmt: skip
            try:
                raw = trades.trades(response.content)
            except ParseError as exc:
                raise self._http.malformed(call, response, str(exc)) from None
            found, unreadable = parse_items(raw, lambda item: trades.parse_trade(item, home))
            items.extend(t for t in found if t.trade_id in chunk)
            malformed.extend(unreadable)
        items.sort(key=lambda t: int(t.trade_id))
        return Page(items=tuple(items), malformed=tuple(malformed))


def _wanted(raw: object, status: ListStatus, created: datetime | None,
            until: datetime | None) -> bool:  # fmt: skip
    """Whether a raw order of the walk belongs on the list. A trade's exit orders (take
    profit, stop loss) have no units and are never ordersync's: left out, not malformed."""
    if not isinstance(raw, dict):
        return True  # reported malformed by the parser
    if raw.get("type") in parse.TRADE_EXIT_TYPES:
        return False
    if created is not None and until is not None and created >= until:
        return False
    return status != "closed" or raw.get("state") not in ("PENDING", "TRIGGERED")


def _fills_after(
    raw: list[object], since: int, until: datetime | None, size: int
) -> tuple[list[object], tuple[MalformedItem, ...], int, bool]:
    """The fills after ``since`` (at most ``size``), the unreadable ones, the last id read,
    and whether reading is done (past ``until``, or the answer held less than a page)."""
    fills: list[object] = []
    malformed: list[MalformedItem] = []
    covered = since
    ordered = sorted(raw, key=lambda item: parse.transaction_id(item) or 0)
    for item in ordered:
        item_id = parse.transaction_id(item)
        if item_id is None:
            if not isinstance(item, dict) or item.get("type") == "ORDER_FILL":
                malformed.append(MalformedItem("transaction without a readable id", item))
            continue
        if item_id <= since:
            continue
        at = _time(item)
        if until is not None and at is not None and at > until:
            return fills, tuple(malformed), covered, True
        covered = item_id
        if parse.is_fill(item):
            fills.append(item)
            if len(fills) == size:
                return fills, tuple(malformed), covered, False
    return fills, tuple(malformed), covered, False
