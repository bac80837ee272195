"""Tradier Brokerage API adapter over a sync ``httpx.Client`` (``/v1/accounts/{account}``).

The account number goes in every path and the access token in a bearer header; bodies are
form-encoded and answers asked for as JSON. Reads and cancels are retried (bounded) on
transport errors, 5xx and 429; a placement only when Tradier certainly did not act on it
(could not connect, 429), anything else after sending is ``AnswerLost``.

Tradier has no lookup by client id and its ``tag`` is not unique, so our client order id
rides in the tag (``tags``) and ``get_order_by_client_id`` lists the current session's
orders, then the last ``CLIENT_ID_WINDOW``, and matches the tag. It has no fill listing
in real time (its history is nightly and names no order): ``lists_fills`` is False and the
worker derives fills from the cumulative ``exec_quantity`` and ``avg_fill_price``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import NoReturn, Self
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from brokers.base import BrokerAdapter, ListStatus, RateLimitInfo, RequestObserver
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    BrokerError,
    MalformedResponse,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
)
from brokers.tradier import build, paging, parse
from brokers.tradier.http import KIND, BearerAuth, Call, Transport
from brokers.tradier.tags import Untaggable, tag_for
from brokers.values import ParseError, as_object, excerpt, loads, parse_items
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

__all__ = ["CLIENT_ID_WINDOW", "TradierBroker"]

logger = logging.getLogger(__name__)

FETCH_LIMIT = 100  # orders per Tradier page we ask for (no maximum is documented)
TRADIER_DEFAULT_LIMIT = 25  # what a page holds when ``limit`` is not honoured
MAX_PAGES = 50  # Tradier pages one call reads: 5,000 orders
DEFAULT_PAGE = 100
MAX_PAGE = 1000
# A lost placement answer is looked up seconds or minutes after sending, within the
# current session's listing; the wider window catches a session boundary in between and
# a trading service's order handed over later, at the cost of a "filter=all" listing,
# which Tradier asks to use sparingly: it is read only when the session's misses.
CLIENT_ID_WINDOW = timedelta(days=3)
# "filter=all will return a maximum of 1 month of data" (get-account-orders-filtered docs).
MAX_WINDOW = timedelta(days=31)
# Tradier's list dates are calendar days, of New York's market day [U]: the start is taken
# in New York (never later than UTC's), an end in UTC (never earlier than New York's).
NEW_YORK = ZoneInfo("America/New_York")
_INCLUDE_TAGS = {"includeTags": "true"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} {value.isoformat()} is naive; pass a timezone-aware time")
    return value.astimezone(UTC)


def _page_size(requested: int | None) -> int:
    if requested is None:
        return DEFAULT_PAGE
    if not 1 <= requested <= MAX_PAGE:
        raise ValueError(f"page_size must be within 1..{MAX_PAGE}, got {requested}")
    return requested


def _has_status(raw: object, status: ListStatus) -> bool:
    """Whether a raw order belongs in a list of ``status``; one whose status cannot be read
    is kept, to be reported malformed rather than dropped."""
    raw_status = raw.get("status") if isinstance(raw, dict) else None
    if status == "all" or not isinstance(raw_status, str):
        return True
    return (raw_status in parse.CLOSED_STATUSES) == (status == "closed")


class TradierBroker(BrokerAdapter):
    """Tradier over a caller-owned client whose ``base_url`` is the API host."""

    kind = KIND
    lists_fills = False
    lists_fees = False
    lists_by_symbol = False
    # Tradier does not refuse a tag used before.
    refuses_reused_client_ids = False
    positions_by_asset = False

    def __init__(
        self,
        client: httpx.Client,
        *,
        account_number: str,
        access_token: str,
        max_attempts: int = 4,
        max_retry_wait_s: float = 10.0,
        gate: Callable[[int], None] | None = None,
        observer: Callable[[RateLimitInfo], None] | None = None,
        on_request: RequestObserver | None = None,
        now: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not account_number:
            raise ValueError("account_number must be a non-empty string (e.g. VA000000)")
        if not access_token:
            raise ValueError(f"account {account_number}: the access token is empty")
        self._client = client
        self._account = account_number
        self._base = f"/v1/accounts/{quote(account_number, safe='')}"
        self._now = now
        self._http = Transport(
            client, BearerAuth(access_token), max_attempts=max_attempts,
            max_retry_wait_s=max_retry_wait_s, gate=gate, observer=observer,
            on_request=on_request, now=now, sleep=sleep,
        )  # fmt: skip
        self._owns_client = False

    @classmethod
    def from_url(
        cls,
        base_url: str,
        *,
        account_number: str,
        access_token: str,
        timeout_s: float = 5.0,
        max_attempts: int = 4,
        max_retry_wait_s: float = 10.0,
        gate: Callable[[int], None] | None = None,
        observer: Callable[[RateLimitInfo], None] | None = None,
        on_request: RequestObserver | None = None,
    ) -> Self:
        """An adapter with its own client, closed by ``close()``. ``base_url`` is the host
        (``https://api.tradier.com``); Tradier's documented ``…/v1`` is taken too."""
        host = base_url.rstrip("/").removesuffix("/v1")
        broker = cls(
            httpx.Client(base_url=host, timeout=timeout_s),
            account_number=account_number, access_token=access_token,
            max_attempts=max_attempts, max_retry_wait_s=max_retry_wait_s, gate=gate,
            observer=observer, on_request=on_request,
        )  # fmt: skip
        broker._owns_client = True
        return broker

    def __repr__(self) -> str:
        return f"TradierBroker(base_url={str(self._client.base_url)!r}, account={self._account!r})"

    def close(self) -> None:
        """Close the client only if ``from_url`` made it."""
        if self._owns_client:
            self._client.close()

    # -- orders ---------------------------------------------------------------------------

    def _orders_call(self, client_order_id: str | None = None) -> Call:
        return Call("GET", f"{self._base}/orders", "GET /v1/accounts/{account}/orders",
                    client_order_id=client_order_id)  # fmt: skip

    def _order_call(self, method: str, broker_order_id: str) -> Call:
        if not broker_order_id:
            raise ValueError("broker_order_id must be a non-empty string")
        path = f"{self._base}/orders/{quote(broker_order_id, safe='')}"
        return Call(method, path, f"{method} /v1/accounts/{{account}}/orders/{{id}}",
                    broker_order_id=broker_order_id)  # fmt: skip

    def place(self, request: PlaceOrderRequest) -> OrderReport:
        """Submit once; the report is built from the request and the new order id (pending,
        nothing filled): the first monitor look brings Tradier's own view."""
        call = Call("POST", f"{self._base}/orders", "POST /v1/accounts/{account}/orders",
                    client_order_id=request.client_order_id)  # fmt: skip
        try:
            form = build.place_form(request)
        except (build.Unplaceable, Untaggable) as exc:
            raise call.error(OrderRejected, str(exc), None) from None
        response = self._http.request(call, form=form, placing=True)
        if not response.is_success:
            self._refused(call, response)
        try:
            ack = parse.acknowledgement(response.content)
        except ParseError as exc:
            # The order may exist: an unreadable answer to a placement is a lost answer.
            raise call.error(
                AnswerLost,
                f"{exc}; body: {excerpt(response.content)}; look it up by client order id",
                response.status_code,
            ) from None
        if ack.order_id is None:
            raise call.error(OrderRejected, ack.refusal or "refused", response.status_code)
        return self._placed_report(request, ack.order_id, form)

    def _placed_report(
        self, request: PlaceOrderRequest, order_id: str, form: Mapping[str, str]
    ) -> OrderReport:
        price, stop = form.get("price"), form.get("stop")
        return OrderReport(
            broker_order_id=order_id,
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            time_in_force=request.time_in_force,
            quantity=request.quantity,
            status=OrderStatus.PENDING_NEW,
            raw_status="ok",
            filled_quantity=Decimal(0),
            average_fill_price=None,
            created_at=self._now(),
            updated_at=None,
            limit_price=None if price is None else Decimal(price),
            stop_price=None if stop is None else Decimal(stop),
        )

    @staticmethod
    def _refused(call: Call, response: httpx.Response) -> NoReturn:
        """A 4xx to a placement: refused as asked (text, errors or fault), not resent."""
        status = response.status_code
        message = parse.message(response.content, status)
        if status in (401, 403):
            raise call.error(AuthenticationFailed, message, status)
        raise call.error(OrderRejected, message, status)

    def replace(self, broker_order_id: str, request: ReplaceOrderRequest) -> OrderReport:
        """Not supported: Tradier's ``PUT .../orders/{id}`` changes type, duration, price and
        stop of the same order (same id, same tag, never the quantity), while a replace here
        is a new order under a new client order id with the whole terms, quantity included."""
        raise OrderRejected(
            "Tradier modifies orders in place (not their quantity, not their tag); replace "
            "is not supported: cancel and place anew",
            broker=KIND,
            broker_order_id=broker_order_id,
            client_order_id=request.client_order_id,
        )

    def get_order(self, broker_order_id: str) -> OrderReport:
        """``GET .../orders/{id}?includeTags=true`` → ``{"order": {...}}``."""
        call = self._order_call("GET", broker_order_id)
        response = self._read(call, params=_INCLUDE_TAGS)
        try:
            return parse.parse_order_answer(response.content)
        except ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None

    def get_order_by_client_id(
        self, client_order_id: str, *, symbol: str | None = None
    ) -> OrderReport:
        """The order tagged with this client id: the current session's orders first, then
        those since ``CLIENT_ID_WINDOW`` ago; OrderNotFound when neither has it."""
        if not client_order_id:
            raise ValueError("client_order_id must be a non-empty string")
        call = self._orders_call(client_order_id)
        try:
            tag = tag_for(client_order_id)
        except Untaggable as exc:  # never sendable, so never placed
            raise call.error(OrderNotFound, str(exc), None) from None
        since = self._now() - CLIENT_ID_WINDOW
        for params in ({}, {"filter": "all", "start": _start_date(since).isoformat()}):
            tagged = [
                raw for raw in self._walk(call, params) if isinstance(raw, dict)
                and raw.get("tag") == tag
            ]  # fmt: skip
            if tagged:
                return self._first_tagged(call, tagged)
        raise call.error(
            OrderNotFound,
            f"no order tagged {tag} in the current session or since {_start_date(since)}",
            None,
        )

    def _first_tagged(self, call: Call, tagged: list[dict[str, object]]) -> OrderReport:
        """The first order made under the tag; more than one is logged (tags are not unique
        at Tradier): the others show up in listings as orders of their own."""
        tagged.sort(key=lambda raw: parse.created_key(raw) or (datetime.max.replace(tzinfo=UTC), 0))
        if len(tagged) > 1:
            ids = ", ".join(str(raw.get("id")) for raw in tagged)
            logger.warning("tradier: %d orders carry client order id %s: %s; reporting the "
                           "first", len(tagged), call.client_order_id, ids)  # fmt: skip
        try:
            return parse.parse_order(tagged[0])
        except ParseError as exc:
            raise call.error(
                MalformedResponse, f"{exc}; order: {excerpt(repr(tagged[0]))}", 200
            ) from None

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
        """Orders created in [after, until], oldest first (see ``paging``). Without
        ``after``, the current session's orders (Tradier's default listing); an open order
        of an earlier day it leaves out is looked up by id by the sweep. With ``after``, a
        ``filter=all`` listing from that day, at most a month back."""
        if status not in ("open", "closed", "all"):
            raise ValueError(f"status must be open, closed or all, got {status!r}")
        limit = _page_size(page_size)
        start: tuple[datetime, int] | None = None
        if page_token is not None:
            cursor = paging.decode(page_token)
            after, until, start = cursor.after, cursor.until, (cursor.at, cursor.order_id)
        after = None if after is None else _aware(after, "after")
        until = None if until is None else _aware(until, "until")
        call = self._orders_call()
        raw_items = [raw for raw in self._walk(call, self._window(after, until))
                     if _has_status(raw, status)]  # fmt: skip
        chosen = paging.select(raw_items, after=after, until=until, start=start, limit=limit)
        items, malformed = parse_items(chosen.chosen, parse.parse_order)
        unordered = tuple(
            MalformedItem("order without a readable create_date and id", raw)
            for raw in chosen.unordered
        )
        next_token = None
        if chosen.next_cursor is not None:
            at, number = chosen.next_cursor
            next_token = paging.encode(paging.Cursor(at, number, after, until))
        return Page(items=items, next_token=next_token, malformed=malformed + unordered)

    def _window(self, after: datetime | None, until: datetime | None) -> dict[str, str]:
        """The listing's query: the session's by default, else ``filter=all`` by dates."""
        if after is None:
            return {}
        now = self._now()
        if (until or now) - after > MAX_WINDOW:
            raise ValueError(
                f"Tradier lists at most a month of orders: {after.isoformat()} to "
                f"{(until or now).isoformat()} is longer; list a narrower window"
            )
        params = {"filter": "all", "start": _start_date(after).isoformat()}
        if until is not None and until < now - timedelta(days=1):
            params["end"] = until.astimezone(UTC).date().isoformat()
        return params

    def cancel(self, broker_order_id: str) -> None:
        """``DELETE .../orders/{id}``; the outcome arrives as a later report. Tradier answers
        400 with a text body for an order already final, and some refusals with 200 and
        ``errors``: both are OrderNotCancelable."""
        call = self._order_call("DELETE", broker_order_id)
        response = self._http.request(call)
        status = response.status_code
        if status == 400:
            raise call.error(OrderNotCancelable, parse.message(response.content, status), status)
        if not response.is_success:
            self._raise_for(call, response)
        try:
            ack = parse.acknowledgement(response.content)
        except ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None
        if ack.order_id is None:
            raise call.error(OrderNotCancelable, ack.refusal or "refused", status)

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
        """None: Tradier lists no executions in real time (``lists_fills`` is False)."""
        return Page(items=())

    def fill_cursor(self, fill: FillReport) -> str:
        return fill.broker_fill_id

    def list_positions(self) -> list[PositionReport]:
        """Every position (``"null"``, one object or a list); one unreadable position fails
        the call, since a partial set would look like a mismatch."""
        call = Call("GET", f"{self._base}/positions", "GET /v1/accounts/{account}/positions")
        response = self._read(call)
        try:
            return [
                parse.parse_position(raw)
                for raw in parse.listing(response.content, "positions", "position")
            ]
        except ParseError as exc:
            raise self._http.malformed(call, response, str(exc)) from None

    # -- HTTP -----------------------------------------------------------------------------

    def _walk(self, call: Call, params: Mapping[str, str]) -> list[object]:
        """Every order of a listing, page by page, at most ``MAX_PAGES`` pages.

        The last page is an empty one, one with nothing new (``page`` not honoured), or a
        short one, unless it is exactly Tradier's default page: ``limit`` is documented for
        the filtered listing only [U], and a listing that ignores it pages by 25."""
        found: list[object] = []
        seen: set[object] = set()
        for page in range(1, MAX_PAGES + 1):
            query = {**params, **_INCLUDE_TAGS, "page": str(page), "limit": str(FETCH_LIMIT)}
            response = self._read(call, params=query)
            try:
                items = parse.listing(response.content, "orders", "order")
            except ParseError as exc:
                raise self._http.malformed(call, response, str(exc)) from None
            ids = {raw.get("id") if isinstance(raw, dict) else None for raw in items}
            fresh = ids - seen or None in ids  # an order without an id: cannot tell, go on
            seen |= ids
            found.extend(items)
            short = len(items) < FETCH_LIMIT and len(items) != TRADIER_DEFAULT_LIMIT
            if not items or not fresh or short:
                return found
        raise call.error(
            BrokerError,
            f"more than {MAX_PAGES} pages of {FETCH_LIMIT} orders; list a narrower window",
            None,
        )

    def _read(self, call: Call, *, params: Mapping[str, str] | None = None) -> httpx.Response:
        """A request that may be repeated; refusals (any status, or 200 with ``errors``)
        become errors naming the call's ids."""
        response = self._http.request(call, params=params)
        if not response.is_success:
            self._raise_for(call, response)
        try:
            refusal = parse.errors(as_object(loads(response.content), "body"))
        except ParseError:
            return response  # the caller's parser reports it as malformed
        if refusal is not None:
            raise call.error(BrokerError, "; ".join(refusal), response.status_code)
        return response

    @staticmethod
    def _raise_for(call: Call, response: httpx.Response) -> NoReturn:
        status = response.status_code
        message = parse.message(response.content, status)
        if status in (401, 403):
            raise call.error(AuthenticationFailed, message, status)
        if status == 404 and (call.broker_order_id or call.client_order_id):
            raise call.error(OrderNotFound, message, status)
        raise call.error(BrokerError, message, status)


def _start_date(at: datetime) -> date:
    """A listing's ``start``: the New York day of ``at`` (no later than its UTC day)."""
    return at.astimezone(NEW_YORK).date()
