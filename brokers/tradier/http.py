"""HTTP for the Tradier adapter: its calls, its bearer token, and what of the shared
request core (``brokers.http``) is Tradier's own: refusal bodies in three shapes and the
``X-Ratelimit-Allowed``/``-Used``/``-Available``/``-Expiry`` headers.

Every request asks for JSON (``Accept: application/json``): Tradier answers XML otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from brokers import http
from brokers.base import RateLimitInfo, RequestObserver
from brokers.errors import BrokerError
from brokers.tradier import parse

logger = logging.getLogger(__name__)

KIND = "tradier"
_HEADERS = ("X-Ratelimit-Allowed", "X-Ratelimit-Used", "X-Ratelimit-Available")
# X-Ratelimit-Expiry is epoch milliseconds in Tradier's old docs sample and seconds in some
# clients [U]: read by magnitude, and a small value as seconds from now.
_EPOCH_MS = 10**12
_EPOCH_S = 10**9


class BearerAuth(httpx.Auth):
    """Adds the access token and the JSON ``Accept``; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        request.headers["Accept"] = "application/json"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token=<hidden>)"


@dataclass(frozen=True, slots=True)
class Call:
    """One request and the ids it concerns, so every error names them."""

    method: str
    path: str
    endpoint: str  # the path with ids as placeholders: a bounded metrics label
    broker_order_id: str | None = None
    client_order_id: str | None = None

    def error(self, cls: type[BrokerError], message: str, status: int | None) -> BrokerError:
        return cls(
            f"{self.method} {self.path}: {message}",
            broker=KIND,
            broker_order_id=self.broker_order_id,
            client_order_id=self.client_order_id,
            status_code=status,
        )


def _int(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


def expiry(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """When the rate-limit window resets, from ``X-Ratelimit-Expiry``."""
    value = _int(headers, "X-Ratelimit-Expiry")
    if value is None or value < 0:
        return None
    try:
        if value >= _EPOCH_MS:
            return datetime.fromtimestamp(value / 1000, UTC)
        if value >= _EPOCH_S:
            return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return now + timedelta(seconds=value)


def retry_at(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """When a 429 may be retried: ``Retry-After`` (seconds or a date), else the expiry."""
    raw = headers.get("Retry-After")
    if raw is not None:
        try:
            return now + timedelta(seconds=max(0.0, float(raw)))
        except (ValueError, OverflowError):
            pass
        try:
            return parsedate_to_datetime(raw).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return expiry(headers, now)


def rate_limit_info(headers: Mapping[str, str], status: int, now: datetime) -> RateLimitInfo | None:
    """The answer's figures, for every answer that has any and for every 429 (even bare)."""
    if status != 429 and not any(name in headers for name in _HEADERS):
        return None
    at = expiry(headers, now)
    if at is None and status == 429:
        at = retry_at(headers, now)
    remaining = _int(headers, "X-Ratelimit-Available")
    allowed = _int(headers, "X-Ratelimit-Allowed")
    used = _int(headers, "X-Ratelimit-Used")
    if remaining is None and allowed is not None and used is not None:
        remaining = max(0, allowed - used)
    return RateLimitInfo(limit=allowed, remaining=remaining, reset_at=at, status_code=status)


class Transport(http.Transport[Call]):
    """Tradier's answers under the shared retry policy: 429 and 5xx retried."""

    def __init__(
        self, client: httpx.Client, auth: httpx.Auth, *, max_attempts: int,
        max_retry_wait_s: float, gate: Callable[[int], None] | None,
        observer: Callable[[RateLimitInfo], None] | None, on_request: RequestObserver | None,
        now: Callable[[], datetime], sleep: Callable[[float], None],
    ) -> None:  # fmt: skip
        super().__init__(
            KIND, logger, max_attempts=max_attempts, max_retry_wait_s=max_retry_wait_s,
            gate=gate, observer=observer, on_request=on_request, now=now, sleep=sleep,
        )  # fmt: skip
        self.client = client
        self._auth = auth

    def request(
        self,
        call: Call,
        *,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        placing: bool = False,
    ) -> httpx.Response:
        """One request under the retry policy; exhausted or unsafe failures become errors."""
        return self.send(
            call,
            lambda: self.client.request(
                call.method, call.path, params=params, data=form, auth=self._auth
            ),
            placing=placing,
        )

    def message(self, response: httpx.Response) -> str:
        return parse.message(response.content, response.status_code)

    def retry_at(self, response: httpx.Response) -> datetime | None:
        return retry_at(response.headers, self.now())

    def rate_limit(self, response: httpx.Response) -> RateLimitInfo | None:
        return rate_limit_info(response.headers, response.status_code, self.now())
