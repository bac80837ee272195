"""HTTP for the Coinbase adapter: its calls, and what of the shared request core
(``brokers.http``) is Coinbase's own: its error bodies, rate-limit headers and Retry-After.

Reads and cancels are retried (bounded) on transport errors, 5xx and 429; a placement only
when Coinbase certainly did not act on it (could not connect, 429).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import httpx

from brokers import http
from brokers.base import RateLimitInfo, RequestObserver
from brokers.coinbase import parse
from brokers.coinbase.ratelimit import rate_limit_info, retry_at
from brokers.errors import AuthenticationFailed, BrokerError, OrderNotFound

logger = logging.getLogger(__name__)

KIND = "coinbase"
PREFIX = "/api/v3/brokerage"
REQUEST_COST = 1  # every private REST call counts once against 30 requests/s [3P]
Params = Mapping[str, str | list[str]]


@dataclass(frozen=True, slots=True)
class Call:
    """One request and the ids it concerns, so every error names them."""

    method: str
    path: str  # below PREFIX
    endpoint: str  # the path with ids as placeholders: a bounded metrics label
    broker_order_id: str | None = None
    client_order_id: str | None = None

    def error(self, cls: type[BrokerError], message: str, status: int | None) -> BrokerError:
        return cls(
            f"{self.method} {self.path}: {message}",
            broker=KIND,
            status_code=status,
            broker_order_id=self.broker_order_id,
            client_order_id=self.client_order_id,
        )


class Transport(http.Transport[Call]):
    """Sends one call under the shared retry policy; its repr shows no credentials."""

    def __init__(
        self,
        client: httpx.Client,
        auth: httpx.Auth,
        *,
        max_attempts: int,
        max_retry_wait_s: float,
        gate: Callable[[int], None] | None,
        observer: Callable[[RateLimitInfo], None] | None,
        on_request: RequestObserver | None,
        now: Callable[[], datetime],
        sleep: Callable[[float], None],
    ) -> None:
        super().__init__(
            KIND, logger, max_attempts=max_attempts, max_retry_wait_s=max_retry_wait_s,
            gate=gate, observer=observer, on_request=on_request, now=now, sleep=sleep,
        )  # fmt: skip
        self.client = client  # the caller's, or the adapter's own (from_url)
        self._auth = auth

    def read(
        self,
        call: Call,
        *,
        params: Params | None = None,
        body: Mapping[str, object] | None = None,
    ) -> httpx.Response:
        """A request that may be repeated, with 401/403/404 and other 4xx as errors."""
        response = self.request(call, params=params, body=body)
        if response.is_success:
            return response
        status = response.status_code
        message = parse.error_message(response.content, status)
        if status in (401, 403):
            raise call.error(AuthenticationFailed, message, status)
        if status == 404 and (call.broker_order_id or call.client_order_id):
            raise call.error(OrderNotFound, message, status)
        raise call.error(BrokerError, message, status)

    def request(
        self,
        call: Call,
        *,
        params: Params | None = None,
        body: Mapping[str, object] | None = None,
        placing: bool = False,
    ) -> httpx.Response:
        """One request under the retry policy; exhausted or unsafe failures become errors."""
        return self.send(
            call,
            lambda: self.client.request(
                call.method, PREFIX + call.path, params=params, json=body, auth=self._auth
            ),
            placing=placing,
            weight=REQUEST_COST,
        )

    def message(self, response: httpx.Response) -> str:
        return parse.error_message(response.content, response.status_code)

    def retry_at(self, response: httpx.Response) -> datetime | None:
        return retry_at(response.headers, self.now())

    def rate_limit(self, response: httpx.Response) -> RateLimitInfo | None:
        return rate_limit_info(response.headers, response.status_code, self.now())
