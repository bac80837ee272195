"""Alpaca Trading API v2 adapter over a sync ``httpx.Client``.

Reads (get, list, cancel, fills, positions) are retried on transport errors, 5xx and 429.
A placement is never blindly resubmitted: only failures that prove the request was not
processed (could not connect, 429) are retried; anything else raises ``AnswerLost`` so the
caller looks the order up by client order id first. JSON parsing lives in ``brokers.alpaca.parse``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, Self, TypeVar
from urllib.parse import quote

import httpx

from brokers.alpaca import parse
from brokers.base import BrokerAdapter, ListStatus, RateLimitInfo, RequestObserver
from brokers.errors import (
    AuthenticationFailed,
    BrokerError,
    DuplicateClientOrderId,
    MalformedResponse,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
)
from brokers.http import Transport
from core.enums import OrderClass
from core.reports import (
    FeeReport,
    FillReport,
    OrderReport,
    Page,
    PlaceOrderRequest,
    PositionReport,
    ReplaceOrderRequest,
)

__all__ = ["MAX_FILL_PAGE", "MAX_ORDER_PAGE", "AlpacaBroker", "RateLimitInfo"]

logger = logging.getLogger(__name__)

KIND = "alpaca"
MAX_ORDER_PAGE = 500
MAX_FILL_PAGE = 100
R = TypeVar("R")
_LIST_STATUSES = frozenset({"open", "closed", "all"})
_RATE_LIMIT_HEADERS = ("X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset")
_DUPLICATE_CLIENT_ID = re.compile(r"client[ _]?order[ _]?id.*unique", re.IGNORECASE)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _KeyAuth(httpx.Auth):
    """Adds the key headers to each request; its repr never shows the secret."""

    def __init__(self, key_id: str, secret_key: str) -> None:
        self._key_id = key_id
        self._secret_key = secret_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["APCA-API-KEY-ID"] = self._key_id
        request.headers["APCA-API-SECRET-KEY"] = self._secret_key
        yield request

    def __repr__(self) -> str:
        return f"_KeyAuth(key_id={self._key_id!r})"


@dataclass(frozen=True, slots=True)
class _Call:
    """One request and the ids it concerns, so every error names them."""

    method: str
    path: str
    broker_order_id: str | None = None
    client_order_id: str | None = None

    @property
    def endpoint(self) -> str:
        """Method and path with the order id as a placeholder: a bounded metrics label."""
        path = self.path
        if self.broker_order_id and path.startswith("/v2/orders/"):
            path = "/v2/orders/{id}"
        return f"{self.method} {path}"

    def error(self, cls: type[BrokerError], message: str, status: int | None) -> BrokerError:
        return cls(
            f"{self.method} {self.path}: {message}",
            broker=KIND,
            broker_order_id=self.broker_order_id,
            client_order_id=self.client_order_id,
            status_code=status,
        )


class _AlpacaTransport(Transport[_Call]):
    """Alpaca's answers: ``message`` bodies, ``X-Ratelimit-*`` headers, 429s and 5xx retried."""

    def message(self, response: httpx.Response) -> str:
        return parse.broker_message(response.content, response.status_code)

    def retry_at(self, response: httpx.Response) -> datetime | None:
        return parse.retry_at(response.headers, self.now())

    def rate_limit(self, response: httpx.Response) -> RateLimitInfo | None:
        """The rate-limit headers, and every 429 even bare."""
        limited = response.status_code == 429
        if not (limited or any(name in response.headers for name in _RATE_LIMIT_HEADERS)):
            return None
        reset = parse.header_int(response.headers, "X-Ratelimit-Reset")
        reset_at = None if reset is None else parse.epoch(reset)
        if reset_at is None and limited:
            reset_at = self.retry_at(response)  # Retry-After
        return RateLimitInfo(
            limit=parse.header_int(response.headers, "X-Ratelimit-Limit"),
            remaining=parse.header_int(response.headers, "X-Ratelimit-Remaining"),
            reset_at=reset_at,
            status_code=response.status_code,
        )


_NESTED = {"nested": "true"}  # an order's legs under it, as its own orders are listed


def _legs_body(request: PlaceOrderRequest) -> dict[str, object]:
    """``order_class`` with its ``take_profit``/``stop_loss``; nothing for a simple order."""
    if request.order_class is OrderClass.SIMPLE:
        return {}
    body: dict[str, object] = {"order_class": request.order_class.value}
    if request.take_profit_limit_price is not None:
        body["take_profit"] = {"limit_price": parse.decimal_str(request.take_profit_limit_price)}
    if request.stop_loss_stop_price is not None:
        stop_loss = {"stop_price": parse.decimal_str(request.stop_loss_stop_price)}
        if request.stop_loss_limit_price is not None:
            stop_loss["limit_price"] = parse.decimal_str(request.stop_loss_limit_price)
        body["stop_loss"] = stop_loss
    return body


def _order_path(broker_order_id: str) -> str:
    if not broker_order_id:
        raise ValueError("broker_order_id must be a non-empty string")
    return f"/v2/orders/{quote(broker_order_id, safe='')}"


class AlpacaBroker(BrokerAdapter):
    """Alpaca v2 over a caller-owned ``httpx.Client`` whose ``base_url`` and timeout are set."""

    kind = KIND
    lists_fees = True  # crypto fees: CFEE activities

    def __init__(
        self,
        client: httpx.Client,
        *,
        key_id: str,
        secret_key: str,
        max_attempts: int = 4,
        max_retry_wait_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        observer: Callable[[RateLimitInfo], None] | None = None,
        now: Callable[[], datetime] = _utc_now,
        gate: Callable[[int], None] | None = None,
        on_request: RequestObserver | None = None,
    ) -> None:
        self._http = _AlpacaTransport(
            KIND, logger, max_attempts=max_attempts, max_retry_wait_s=max_retry_wait_s,
            gate=gate, observer=observer, on_request=on_request, now=now, sleep=sleep,
        )  # fmt: skip
        self._client = client
        self._key_id = key_id
        self._auth = _KeyAuth(key_id, secret_key)
        self._owns_client = False

    @classmethod
    def from_url(
        cls,
        base_url: str,
        *,
        key_id: str,
        secret_key: str,
        timeout_s: float = 5.0,
        **kw: Any,
    ) -> Self:
        """An adapter with its own client, closed by ``close()``."""
        broker = cls(
            httpx.Client(base_url=base_url, timeout=timeout_s),
            key_id=key_id,
            secret_key=secret_key,
            **kw,
        )
        broker._owns_client = True
        return broker

    def __repr__(self) -> str:
        return f"AlpacaBroker(base_url={str(self._client.base_url)!r}, key_id={self._key_id!r})"

    def close(self) -> None:
        """Close the client only if ``from_url`` made it; a caller's client is the caller's."""
        if self._owns_client:
            self._client.close()

    # -- orders ---------------------------------------------------------------------------

    def place(self, request: PlaceOrderRequest) -> OrderReport:
        """Submit once; an unknown outcome is ``AnswerLost``, never a second submission."""
        body: dict[str, str] = {
            "client_order_id": request.client_order_id,
            "symbol": request.symbol,
            "side": request.side.value,
            "type": request.order_type.value,
            "time_in_force": request.time_in_force.value,
        }
        # A notional order sends the amount of money and no qty: Alpaca sizes it.
        if request.notional is not None:
            body["notional"] = parse.decimal_str(request.notional)
        elif request.quantity is not None:
            body["qty"] = parse.decimal_str(request.quantity)
        if request.limit_price is not None:
            body["limit_price"] = parse.decimal_str(request.limit_price)
        if request.stop_price is not None:
            body["stop_price"] = parse.decimal_str(request.stop_price)
        call = _Call("POST", "/v2/orders", client_order_id=request.client_order_id)
        response = self._send(call, body={**body, **_legs_body(request)}, placing=True)
        if not response.is_success:
            self._refused(call, response)
        return self._order(call, response)

    @staticmethod
    def _refused(call: _Call, response: httpx.Response) -> NoReturn:
        """A 4xx answer to a request that creates an order: refused as asked, not resent."""
        status = response.status_code
        message = parse.broker_message(response.content, status)
        if status == 401:
            raise call.error(AuthenticationFailed, message, status)
        if status == 422 and _DUPLICATE_CLIENT_ID.search(message):
            raise call.error(DuplicateClientOrderId, message, status)
        # 403 (e.g. buying power), 422 and other 4xx: refused as asked; do not resend.
        raise call.error(OrderRejected, message, status)

    def replace(self, broker_order_id: str, request: ReplaceOrderRequest) -> OrderReport:
        """``PATCH /v2/orders/{id}``: sent once, as a placement is (it creates an order)."""
        body: dict[str, str] = {
            "client_order_id": request.client_order_id,
            "qty": parse.decimal_str(request.quantity),
            "time_in_force": request.time_in_force.value,
        }
        if request.limit_price is not None:
            body["limit_price"] = parse.decimal_str(request.limit_price)
        if request.stop_price is not None:
            body["stop_price"] = parse.decimal_str(request.stop_price)
        call = _Call("PATCH", _order_path(broker_order_id), broker_order_id=broker_order_id,
                     client_order_id=request.client_order_id)  # fmt: skip
        response = self._send(call, body=body, placing=True)
        if not response.is_success:
            self._refused(call, response)
        return self._order(call, response)

    def get_order(self, broker_order_id: str) -> OrderReport:
        """The broker's current view of one order, by its id, with its legs."""
        call = _Call("GET", _order_path(broker_order_id), broker_order_id=broker_order_id)
        return self._order(call, self._idempotent(call, params=_NESTED))

    def get_order_by_client_id(
        self, client_order_id: str, *, symbol: str | None = None
    ) -> OrderReport:
        """The order submitted with this client id (Alpaca's are unique per account)."""
        if not client_order_id:
            raise ValueError("client_order_id must be a non-empty string")
        call = _Call("GET", "/v2/orders:by_client_order_id", client_order_id=client_order_id)
        response = self._idempotent(call, params={"client_order_id": client_order_id, **_NESTED})
        return self._order(call, response)

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
        """One page, oldest first; the token re-reads ties at the boundary and drops those seen.

        Alpaca has no cursor, so the token holds the last ``submitted_at`` and the ids at it
        (and, for sub-microsecond stamps, in the microsecond before it).
        """
        if status not in _LIST_STATUSES:
            raise ValueError(f"status must be one of {sorted(_LIST_STATUSES)}, got {status!r}")
        limit = parse.page_size(page_size, MAX_ORDER_PAGE)
        seen: frozenset[str] = frozenset()
        previous_at: datetime | None = None
        if page_token is not None:
            previous_at, seen = parse.decode_order_token(page_token)
            after = parse.after_for_token(previous_at)
        params = {"status": status, "direction": "asc", "limit": str(limit)}
        if after is not None:
            params["after"] = parse.rfc3339(after)
        if until is not None:
            params["until"] = parse.rfc3339(until)
        call = _Call("GET", "/v2/orders")
        raw_items = self._many(call, self._idempotent(call, params=params))
        fresh = [raw for raw in raw_items if parse.item_id(raw) not in seen]
        items, malformed = parse.parse_items(fresh, parse.parse_order)
        next_token = None
        if len(raw_items) >= limit:
            next_token = self._next_order_token(call, raw_items, previous_at, seen, limit)
        return Page(items=items, next_token=next_token, malformed=malformed)

    def _next_order_token(
        self,
        call: _Call,
        raw_items: list[object],
        previous_at: datetime | None,
        seen: frozenset[str],
        limit: int,
    ) -> str:
        """The cursor after a full page: its latest submission time and the ids to drop."""
        try:
            last_at, tied = parse.order_cursor(raw_items)
        except parse.ParseError as exc:
            raise call.error(MalformedResponse, str(exc), 200) from None
        if last_at == previous_at and seen.issuperset(tied):
            # A whole page of orders submitted within a microsecond: paging cannot advance.
            raise call.error(
                BrokerError,
                f"{limit} or more orders share submitted_at {parse.rfc3339(last_at)} "
                "(to the microsecond); list again with a larger page_size",
                None,
            )
        return parse.encode_order_token(last_at, tied)

    def cancel(self, broker_order_id: str) -> None:
        """Ask for a cancel; the order's later reports say whether it won the race with fills."""
        call = _Call("DELETE", _order_path(broker_order_id), broker_order_id=broker_order_id)
        response = self._idempotent(call, cancelling=True)
        if response.status_code not in (200, 204):
            raise call.error(
                BrokerError,
                parse.broker_message(response.content, response.status_code),
                response.status_code,
            )

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
        """One page of FILL activities, oldest first; the token is the last activity id."""
        return self._activities("FILL", parse.parse_fill, after, until, page_size, page_token)

    def list_fees(
        self,
        *,
        after: datetime | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> Page[FeeReport]:
        """One page of CFEE activities (crypto fees, posted after the fills), oldest first.

        Their ids are a date and a random uuid, so one posted later the same day may sort
        before a page token: callers re-list from ``after`` and skip the ids they have."""
        return self._activities("CFEE", parse.parse_fee, after, None, page_size, page_token)

    def _activities(
        self, kind: str, parser: Callable[[object], R], after: datetime | None,
        until: datetime | None, page_size: int | None, page_token: str | None,
    ) -> Page[R]:  # fmt: skip
        """One page of an activity type in (after, until), oldest first. The next page's
        token is the last id of a full page: an unreadable trailing item is re-read on the
        next page rather than skipped."""
        size = parse.page_size(page_size, MAX_FILL_PAGE)
        params = {"direction": "asc", "page_size": str(size)}
        if after is not None:
            params["after"] = parse.rfc3339(after)
        if until is not None:
            params["until"] = parse.rfc3339(until)
        if page_token is not None:
            if not page_token:
                raise ValueError("page_token must be None or a token from the previous page")
            params["page_token"] = page_token
        call = _Call("GET", f"/v2/account/activities/{kind}")
        raw_items = self._many(call, self._idempotent(call, params=params))
        items, malformed = parse.parse_items(raw_items, parser)
        next_token = None
        if len(raw_items) >= size:
            ids = [oid for oid in map(parse.item_id, raw_items) if oid is not None]
            if not ids:
                raise call.error(
                    MalformedResponse, "cannot page on: no activity on a full page has an id", 200
                )
            next_token = ids[-1]
        return Page(items=items, next_token=next_token, malformed=malformed)

    def fill_cursor(self, fill: FillReport) -> str:
        """Alpaca pages activities by id: the next page starts after this activity."""
        return fill.broker_fill_id

    def list_positions(self) -> list[PositionReport]:
        """Every open position; one unreadable position fails the call, since a partial
        set would look like a position mismatch."""
        call = _Call("GET", "/v2/positions")
        response = self._idempotent(call)
        positions: list[PositionReport] = []
        for raw in self._many(call, response):
            try:
                positions.append(parse.parse_position(raw))
            except parse.ParseError as exc:
                raise self._http.malformed(call, response, str(exc)) from None
        return positions

    # -- HTTP -----------------------------------------------------------------------------

    def _idempotent(
        self, call: _Call, *, params: dict[str, str] | None = None, cancelling: bool = False
    ) -> httpx.Response:
        """An idempotent request, with 401/403/404 (and 422 for a cancel) turned into errors."""
        response = self._send(call, params=params)
        status = response.status_code
        if response.is_success:
            return response
        message = parse.broker_message(response.content, response.status_code)
        if status in (401, 403):
            raise call.error(AuthenticationFailed, message, status)
        if status == 404 and (call.broker_order_id or call.client_order_id):
            raise call.error(OrderNotFound, message, status)
        if status == 422 and cancelling:
            raise call.error(OrderNotCancelable, message, status)
        raise call.error(BrokerError, message, status)

    def _send(
        self,
        call: _Call,
        *,
        params: dict[str, str] | None = None,
        body: Mapping[str, object] | None = None,
        placing: bool = False,
    ) -> httpx.Response:
        """One request under the shared retry policy (``brokers.http``)."""
        return self._http.send(
            call,
            lambda: self._client.request(
                call.method, call.path, params=params, json=body, auth=self._auth
            ),
            placing=placing,
        )

    # -- bodies ---------------------------------------------------------------------------

    def _order(self, call: _Call, response: httpx.Response) -> OrderReport:
        """A single-order answer: anything unreadable is a MalformedResponse naming the ids."""
        try:
            return parse.parse_order(parse.loads(response.content))
        except parse.ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None

    def _many(self, call: _Call, response: httpx.Response) -> list[object]:
        """A list answer's items, still raw: each is parsed on its own."""
        try:
            return parse.as_list(parse.loads(response.content), "body")
        except parse.ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None
