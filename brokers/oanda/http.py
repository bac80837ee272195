"""HTTP for the OANDA adapter: its calls, its bearer token, and what of the shared request
core (``brokers.http``) is OANDA's own: ``errorMessage``/``errorCode`` bodies, and 429s
without rate-limit headers (OANDA sends none; a 429 still tells the shared budget).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import httpx

from brokers import http
from brokers.base import RateLimitInfo, RequestObserver
from brokers.errors import AuthenticationFailed, BrokerError, OrderNotFound
from brokers.oanda import parse

logger = logging.getLogger(__name__)

KIND = "oanda"


@dataclass(frozen=True, slots=True)
class Call:
    """One request and the ids it concerns, so every error names them."""

    method: str
    path: str  # below /v3/accounts/{accountID}
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


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>``; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token=<hidden>)"


# Times as RFC 3339 strings (OANDA's other choice, UNIX, would be a float to read).
_HEADERS = {"Accept-Datetime-Format": "RFC3339"}


class Transport(http.Transport[Call]):
    """Sends one call below ``/v3/accounts/{accountID}`` under the shared retry policy."""

    def __init__(
        self,
        client: httpx.Client,
        account_id: str,
        token: str,
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
        self.client = client
        if not account_id:
            raise ValueError("the OANDA account id (the _KEY_ID slot) must be non-empty")
        self._prefix = f"/v3/accounts/{quote(account_id, safe='')}"
        self._auth = BearerAuth(token)

    def read(self, call: Call, *, params: Mapping[str, str] | None = None) -> httpx.Response:
        """A request that may be repeated, with 401/403, 404 and other 4xx as errors."""
        response = self.request(call, params=params)
        if not response.is_success:
            raise self.refusal(call, response)
        return response

    def refusal(self, call: Call, response: httpx.Response) -> BrokerError:
        """The error for a 4xx to a read or a cancel."""
        status = response.status_code
        message = parse.error_message(response.content, status)
        if status in (401, 403):
            return call.error(AuthenticationFailed, message, status)
        if status == 404 and (call.broker_order_id or call.client_order_id):
            return call.error(OrderNotFound, message, status)
        return call.error(BrokerError, message, status)

    def request(
        self,
        call: Call,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, object] | None = None,
        placing: bool = False,
    ) -> httpx.Response:
        """One request under the retry policy; exhausted or unsafe failures become errors."""
        return self.send(
            call,
            lambda: self.client.request(
                call.method,
                self._prefix + call.path,
                params=params,
                json=body,
                headers=_HEADERS,
                auth=self._auth,
            ),
            placing=placing,
        )

    def message(self, response: httpx.Response) -> str:
        return parse.error_message(response.content, response.status_code)

    def retry_at(self, response: httpx.Response) -> datetime | None:
        return http.retry_after(response.headers, self.now())

    def rate_limit(self, response: httpx.Response) -> RateLimitInfo | None:
        """OANDA states no limits in headers: only a 429 tells the shared budget anything."""
        if response.status_code != 429:
            return None
        return RateLimitInfo(
            limit=None,
            remaining=None,
            reset_at=self.retry_at(response),
            status_code=429,
        )
