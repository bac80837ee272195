"""Coinbase Advanced Trade (REST, ``/api/v3/brokerage``) adapter over a sync ``httpx.Client``.

Reads and cancels are retried (bounded, with tenacity) on transport errors, 5xx and 429. A
placement is retried only when Coinbase certainly did not act on it (could not connect,
429); any other failure after sending is ``AnswerLost``: look the client order id up first.
Coinbase answers a reused client_order_id with the order already made under it (its docs:
"the order fails to be created and the order corresponding to that ID is returned"), so a
resubmission never doubles an order and ``DuplicateClientOrderId`` is never raised.
Parsing lives in ``parse``/``values``, request bodies in ``build``, list order in ``paging``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NoReturn, Self, TypeVar
from urllib.parse import quote

import httpx

from brokers.base import BrokerAdapter, ListStatus, RateLimitInfo, RequestObserver
from brokers.coinbase import build, paging, parse
from brokers.coinbase.auth import JwtAuth
from brokers.coinbase.http import KIND, Call, Params, Transport
from brokers.coinbase.values import ParseError, excerpt, rfc3339
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    BrokerError,
    MalformedResponse,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
)
from brokers.values import parse_items
from core.enums import OrderStatus
from core.reports import (
    FillReport,
    MalformedItem,
    OrderReport,
    Page,
    PlaceOrderRequest,
    PositionReport,
    ReplaceOrderRequest,
)

__all__ = ["CLIENT_ID_WINDOW", "CoinbaseBroker"]

FETCH_LIMIT = 250  # items per Coinbase page we ask for (its maximum is not documented [U])
MAX_PAGES = 40  # Coinbase pages one call reads: 10,000 items
DEFAULT_PAGE = 100
MAX_PAGE = 1000
# A lost placement answer is looked up within the placement's deadline, seconds or a few
# minutes after sending; 10 minutes covers that with room for a slow worker and clock skew
# while keeping the lookup to a page or two. An older order is still found by the deep
# reconciliation's list over its lookback window.
CLIENT_ID_WINDOW = timedelta(minutes=10)
CLIENT_ID_MAX_PAGES = 10
# list_orders' status filter is applied here, not with Coinbase's order_status parameter:
# which of its values may be combined in one query is not documented [U], and a refused
# query would stop every sweep. The cost is reading the window's closed orders too. Open is
# every status not closed (PENDING, QUEUED, OPEN, EDIT_QUEUED, CANCEL_QUEUED, and any status
# Coinbase adds, which then shows as a MalformedItem rather than vanishing).
CLOSED_STATUSES = frozenset({"FILLED", "CANCELLED", "EXPIRED", "FAILED"})
# batch_cancel failure_reason → what it means here. DUPLICATE_CANCEL_REQUEST: a cancel is
# already on its way, which is what was asked. Others (INVALID_CANCEL_REQUEST,
# INVALID_CANCEL_PRODUCT_ID, INVALID_CANCEL_FCM_TRADING_SESSION,
# UNKNOWN_CANCEL_FAILURE_REASON) are plain BrokerErrors.
_CANCEL_FAILURES: dict[str, type[BrokerError] | None] = {
    "DUPLICATE_CANCEL_REQUEST": None,
    "UNKNOWN_CANCEL_ORDER": OrderNotFound,
    "ORDER_IS_FULLY_FILLED": OrderNotCancelable,
    "ORDER_IS_BEING_REPLACED": OrderNotCancelable,
    "NOT_ALLOWED_TO_CANCEL": OrderNotCancelable,
    "COMMANDER_REJECTED_CANCEL_ORDER": OrderNotCancelable,
}
R = TypeVar("R")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _order_call(broker_order_id: str) -> Call:
    if not broker_order_id:
        raise ValueError("broker_order_id must be a non-empty string")
    path = f"/orders/historical/{quote(broker_order_id, safe='')}"
    return Call("GET", path, "GET /orders/historical/{id}", broker_order_id=broker_order_id)


def _page_size(requested: int | None) -> int:
    if requested is None:
        return DEFAULT_PAGE
    if not 1 <= requested <= MAX_PAGE:
        raise ValueError(f"page_size must be within 1..{MAX_PAGE}, got {requested}")
    return requested


class CoinbaseBroker(BrokerAdapter):
    """Coinbase Advanced Trade over a caller-owned client whose ``base_url`` is the API host."""

    kind = KIND
    lists_fills = True
    lists_fees = False
    positions_by_asset = True
    lists_by_symbol = False

    def __init__(
        self,
        client: httpx.Client,
        *,
        key_name: str,
        private_key_pem: str,
        max_attempts: int = 4,
        max_retry_wait_s: float = 10.0,
        gate: Callable[[int], None] | None = None,
        observer: Callable[[RateLimitInfo], None] | None = None,
        on_request: RequestObserver | None = None,
        now: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._key_name = key_name
        self._now = now
        auth = JwtAuth(key_name, private_key_pem, lambda: int(now().timestamp()))
        self._http = Transport(
            client,
            auth,
            max_attempts=max_attempts,
            max_retry_wait_s=max_retry_wait_s,
            gate=gate,
            observer=observer,
            on_request=on_request,
            now=now,
            sleep=sleep,
        )
        self._owns_client = False

    @classmethod
    def from_url(
        cls,
        base_url: str,
        *,
        key_name: str,
        private_key_pem: str,
        timeout_s: float = 5.0,
        max_attempts: int = 4,
        max_retry_wait_s: float = 10.0,
        gate: Callable[[int], None] | None = None,
        observer: Callable[[RateLimitInfo], None] | None = None,
        on_request: RequestObserver | None = None,
    ) -> Self:
        """An adapter with its own client, closed by ``close()``."""
        broker = cls(
            httpx.Client(base_url=base_url, timeout=timeout_s),
            key_name=key_name,
            private_key_pem=private_key_pem,
            max_attempts=max_attempts,
            max_retry_wait_s=max_retry_wait_s,
            gate=gate,
            observer=observer,
            on_request=on_request,
        )
        broker._owns_client = True
        return broker

    def __repr__(self) -> str:
        return (
            f"CoinbaseBroker(base_url={str(self._client.base_url)!r}, key_name={self._key_name!r})"
        )

    def close(self) -> None:
        """Close the client only if ``from_url`` made it."""
        if self._owns_client:
            self._client.close()

    # -- orders ---------------------------------------------------------------------------

    def place(self, request: PlaceOrderRequest) -> OrderReport:
        """Submit once. The report is built from the request and the new order id (status
        PENDING_NEW, nothing filled) rather than fetched: a GET right after would spend a
        second request of the budget, and the first monitor look brings the real state."""
        call = Call("POST", "/orders", "POST /orders", client_order_id=request.client_order_id)
        try:
            body = build.place_body(request)
        except build.Unplaceable as exc:
            raise call.error(OrderRejected, str(exc), None) from None
        response = self._http.request(call, body=body, placing=True)
        if not response.is_success:
            self._refused(call, response)
        try:
            placed = parse.parse_placed(response.content)
        except ParseError as exc:
            # The order may exist: an unreadable answer to a placement is a lost answer.
            raise call.error(
                AnswerLost,
                f"{exc}; body: {excerpt(response.content)}; look it up by client order id",
                response.status_code,
            ) from None
        if placed.order_id is None:
            raise call.error(OrderRejected, placed.reason, response.status_code)
        return self._placed_report(request, placed.order_id, body)

    def _placed_report(
        self, request: PlaceOrderRequest, order_id: str, body: Mapping[str, object]
    ) -> OrderReport:
        terms = parse.terms(body["order_configuration"])
        return OrderReport(
            broker_order_id=order_id,
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            order_type=terms.order_type,
            time_in_force=terms.time_in_force,
            quantity=terms.quantity,
            status=OrderStatus.PENDING_NEW,
            raw_status="PENDING",
            filled_quantity=Decimal(0),
            average_fill_price=None,
            created_at=self._now(),
            updated_at=None,
            limit_price=terms.limit_price,
            stop_price=terms.stop_price,
            notional=terms.notional,
        )

    @staticmethod
    def _refused(call: Call, response: httpx.Response) -> NoReturn:
        """A 4xx to a placement: refused as asked, not resent."""
        status = response.status_code
        message = parse.error_message(response.content, status)
        if status in (401, 403):
            raise call.error(AuthenticationFailed, message, status)
        raise call.error(OrderRejected, message, status)

    def replace(self, broker_order_id: str, request: ReplaceOrderRequest) -> OrderReport:
        """Not supported: Coinbase's ``POST /orders/edit`` changes a GTC limit order in place
        and keeps its order id, while a replace here makes a new order with a new client id."""
        raise OrderRejected(
            "Coinbase edits orders in place; replace is not supported",
            broker=KIND,
            broker_order_id=broker_order_id,
            client_order_id=request.client_order_id,
        )

    def get_order(self, broker_order_id: str) -> OrderReport:
        """``GET /orders/historical/{id}`` → ``{"order": {...}}``."""
        call = _order_call(broker_order_id)
        response = self._http.read(call)
        try:
            return parse.parse_order_answer(response.content)
        except ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None

    def get_order_by_client_id(
        self, client_order_id: str, *, symbol: str | None = None
    ) -> OrderReport:
        """Coinbase has no lookup by client id (only a deprecated query parameter), so list
        the orders of the last ``CLIENT_ID_WINDOW`` newest first (of ``symbol`` when given)
        and match; OrderNotFound when it is not there."""
        if not client_order_id:
            raise ValueError("client_order_id must be a non-empty string")
        call = Call(
            "GET",
            "/orders/historical/batch",
            "GET /orders/historical/batch",
            client_order_id=client_order_id,
        )
        params: dict[str, str | list[str]] = {
            "start_date": rfc3339(self._now() - CLIENT_ID_WINDOW),
            "limit": str(FETCH_LIMIT),
        }
        if symbol:
            params["product_ids"] = [symbol]
        cursor: str | None = None
        for _ in range(CLIENT_ID_MAX_PAGES):
            items, cursor = self._list_page(call, params, cursor, "orders")
            for raw in items:
                if isinstance(raw, dict) and raw.get("client_order_id") == client_order_id:
                    try:
                        return parse.parse_order(raw)
                    except ParseError as exc:
                        raise call.error(
                            MalformedResponse, f"{exc}; order: {excerpt(str(raw))}", 200
                        ) from None
            if cursor is None:
                raise call.error(
                    OrderNotFound,
                    f"no order with this client id since {params['start_date']}",
                    None,
                )
        # Not every order of the window was read: that proves nothing either way.
        raise call.error(
            BrokerError,
            f"more than {CLIENT_ID_MAX_PAGES} pages of orders since "
            f"{params['start_date']}; the client id was not among the newest",
            None,
        )

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
        """Orders created in (after, until), oldest first (see ``paging``); an order created
        exactly at ``after`` may come again rather than be lost."""
        if status not in ("open", "closed", "all"):
            raise ValueError(f"status must be open, closed or all, got {status!r}")
        params: dict[str, str | list[str]] = {"limit": str(FETCH_LIMIT)}
        call = Call("GET", "/orders/historical/batch", "GET /orders/historical/batch")
        return self._oldest_first(
            call,
            params,
            ("start_date", "end_date"),
            "orders",
            ("created_time", "order_id"),
            parse.parse_order,
            after,
            until,
            page_size,
            page_token,
            keep=lambda raw: _has_status(raw, status),
        )

    def cancel(self, broker_order_id: str) -> None:
        """``POST /orders/batch_cancel`` for one id; the outcome arrives as a later report."""
        if not broker_order_id:
            raise ValueError("broker_order_id must be a non-empty string")
        call = Call(
            "POST",
            "/orders/batch_cancel",
            "POST /orders/batch_cancel",
            broker_order_id=broker_order_id,
        )
        response = self._http.read(call, body={"order_ids": [broker_order_id]})
        try:
            reason = parse.parse_cancel(response.content, broker_order_id)
        except ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None
        if reason is None:
            return
        error = _CANCEL_FAILURES.get(reason, BrokerError)
        if error is not None:
            raise call.error(error, f"cancel refused: {reason}", response.status_code)

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
        """Fills in (after, until), oldest first by trade time then entry id (see ``paging``).

        Coinbase filters fills by sequence time, at or after the trade time [U]: a fill
        sequenced long after it traded, behind a cursor, is found by the deep
        reconciliation's wider list, not by a cursor walk."""
        call = Call("GET", "/orders/historical/fills", "GET /orders/historical/fills")
        return self._oldest_first(
            call,
            {"limit": str(FETCH_LIMIT)},
            ("start_sequence_timestamp", "end_sequence_timestamp"),
            "fills",
            ("trade_time", "entry_id"),
            parse.parse_fill,
            after,
            until,
            page_size,
            page_token,
        )

    def fill_cursor(self, fill: FillReport) -> str:
        """A token whose page starts with the fill after this one in (trade time, entry id)."""
        return paging.encode(paging.Position(fill.filled_at, fill.broker_fill_id))

    def holding_of(self, symbol: str) -> str:
        """A product's holding is its base currency's balance (BTC-USD -> BTC)."""
        return symbol.split("-", 1)[0]

    def quoted_in(self, symbol: str) -> str | None:
        """A product pays with its quote currency (BTC-USD -> USD)."""
        _, dash, quote = symbol.partition("-")
        return quote if dash else None

    def list_positions(self) -> list[PositionReport]:
        """Every account with a non-zero balance (available + hold), by currency; one
        unreadable account fails the call, since a partial set would look like a mismatch."""
        call = Call("GET", "/accounts", "GET /accounts")
        params: dict[str, str | list[str]] = {"limit": str(FETCH_LIMIT)}
        raw_accounts = self._walk(call, params, "accounts")
        positions: list[PositionReport] = []
        for raw in raw_accounts:
            try:
                position = parse.parse_position(raw)
            except ParseError as exc:
                raise call.error(
                    MalformedResponse, f"{exc}; account: {excerpt(str(raw))}", 200
                ) from None
            if position is not None:
                positions.append(position)
        return positions

    # -- lists ----------------------------------------------------------------------------

    def _oldest_first(
        self,
        call: Call,
        params: dict[str, str | list[str]],
        window: tuple[str, str],
        key: str,
        order_by: tuple[str, str],
        parser: Callable[[object], R],
        after: datetime | None,
        until: datetime | None,
        page_size: int | None,
        page_token: str | None,
        keep: Callable[[object], bool] = lambda _raw: True,
    ) -> Page[R]:
        """One oldest-first page of a newest-first Coinbase list over (after, until), of the
        items ``keep`` accepts."""
        limit = _page_size(page_size)
        start: paging.Position | None = None
        if page_token is not None:
            start = paging.decode(page_token)
            until = start.until if until is None else until
        elif after is not None:
            start = paging.Position(after, "")
        if start is not None:
            params[window[0]] = rfc3339(start.at - paging.BOUNDARY_MARGIN)
        if until is not None:
            params[window[1]] = rfc3339(until)
        raw_items = [raw for raw in self._walk(call, params, key) if keep(raw)]
        keyed, loose = paging.key_items(raw_items, *order_by)
        chosen, after_page = paging.oldest_first(keyed, start, limit, until)
        items, malformed = parse_items([k.raw for k in chosen], parser)
        unordered = tuple(
            MalformedItem(f"{key[:-1]} without a readable {order_by[0]} and {order_by[1]}", raw)
            for raw in loose
        )
        return Page(
            items=items,
            malformed=malformed + unordered,
            next_token=None if after_page is None else paging.encode(after_page),
        )

    def _walk(self, call: Call, params: dict[str, str | list[str]], key: str) -> list[object]:
        try:
            return paging.walk(
                lambda cursor: self._list_page(call, params, cursor, key),
                MAX_PAGES,
                f"{call.method} {call.path}",
            )
        except paging.WindowTooLarge as exc:
            raise call.error(BrokerError, str(exc), None) from None

    def _list_page(
        self, call: Call, params: Params, cursor: str | None, key: str
    ) -> tuple[list[object], str | None]:
        query = dict(params) if cursor is None else {**params, "cursor": cursor}
        response = self._http.read(call, params=query)
        try:
            return parse.listing(response.content, key)
        except ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None

    # -- HTTP -----------------------------------------------------------------------------


def _has_status(raw: object, status: ListStatus) -> bool:
    """Whether a raw order belongs in a list of ``status``; one whose status cannot be read
    is kept, to be reported malformed rather than dropped."""
    raw_status = raw.get("status") if isinstance(raw, dict) else None
    if status == "all" or not isinstance(raw_status, str):
        return True
    if status == "open":
        return raw_status not in CLOSED_STATUSES
    return raw_status in CLOSED_STATUSES
