"""The request core every venue's adapter sends through: bounded retries with jittered
backoff, which failures prove a request never left, the rate-limit gate, observer and
request hooks with their guards, retry logs, and the errors for what is out of attempts.

A request that may be repeated (a read, a cancel) is retried on any transport failure and
on the answers the venue retries. One that creates an order (``placing``) is resent only
when the venue certainly did not act on it: it could not connect, or it was told 429 before
anything happened; a failure after it left is ``AnswerLost``, to be looked up first.

A venue subclasses ``Transport`` for what is its own: which answers are retried, what one
it refuses raises, how its rate-limit headers read, what its error bodies say.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Generic, Protocol, TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential, wait_random

from brokers.base import RateLimitInfo, RequestObserver
from brokers.errors import (
    AnswerLost,
    BrokerError,
    BrokerUnavailable,
    MalformedResponse,
    RateLimited,
)
from brokers.values import excerpt

# Failures that prove a request never reached the venue, so even a placement may be resent.
# (A read timeout does not: the request may have been acted on and only the answer lost.)
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# 0.1 s, 0.2 s, 0.4 s ... capped at 2 s, plus up to 0.1 s of jitter so workers spread out.
# (Composed rather than wait_exponential_jitter, whose arguments differ across tenacity 8/9.)
BACKOFF = wait_exponential(multiplier=0.1, max=2.0) + wait_random(0, 0.1)


def retry_after(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """When an answer's ``Retry-After`` (seconds or an HTTP date) says to come back, if it
    says so readably: for venues whose 429s carry nothing else."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            return parsedate_to_datetime(raw).astimezone(UTC)
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    try:
        return now + timedelta(seconds=seconds)
    except OverflowError:
        return None


class Call(Protocol):
    """What the core needs of a venue's call: what to log and count, the ids to name."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def endpoint(self) -> str:
        """Method and path with ids as placeholders: a bounded metrics label."""
        ...

    @property
    def broker_order_id(self) -> str | None: ...
    @property
    def client_order_id(self) -> str | None: ...
    def error(self, cls: type[BrokerError], message: str, status: int | None) -> BrokerError: ...


C = TypeVar("C", bound=Call)


class Retryable(Exception):
    """An answer the venue retries (a 5xx, and for most a 429), raised inside an attempt so
    the retry policy can decide."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"HTTP {response.status_code}")


def never_left(exc: httpx.HTTPError) -> bool:
    """Whether a transport failure proves the request was never sent (nothing was changed)."""
    return isinstance(exc, (*NOT_SENT, httpx.UnsupportedProtocol))


def _retry_read(exc: BaseException) -> bool:
    """A request that may be repeated: any transport failure or retried answer."""
    return isinstance(exc, httpx.TransportError | Retryable)


def _retry_placement(exc: BaseException) -> bool:
    """A placement is repeated only when the venue certainly did not act on it."""
    if isinstance(exc, Retryable):
        return exc.response.status_code == 429
    return isinstance(exc, NOT_SENT)


class Transport(Generic[C]):
    """Sends one venue's calls under the retry policy. It holds no credentials: a venue
    signs the request it hands over, and errors and logs here name only method and path."""

    def __init__(
        self,
        venue: str,
        logger: logging.Logger,
        *,
        max_attempts: int,
        max_retry_wait_s: float,
        gate: Callable[[int], None] | None,
        observer: Callable[[RateLimitInfo], None] | None,
        on_request: RequestObserver | None,
        now: Callable[[], datetime],
        sleep: Callable[[float], None],
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if max_retry_wait_s < 0:
            raise ValueError(f"max_retry_wait_s must be >= 0, got {max_retry_wait_s}")
        self.venue = venue
        self.max_attempts = max_attempts
        self.max_retry_wait_s = max_retry_wait_s
        self.now = now
        self._logger = logger
        self._gate = gate
        self._observer = observer
        self._on_request = on_request
        self._sleep = sleep

    # -- what a venue may change ----------------------------------------------------------

    def retried(self, response: httpx.Response) -> bool:
        """Whether an answer goes to the retry policy: a 429 or 5xx by default."""
        return response.status_code == 429 or response.status_code >= 500

    def screen(self, call: C, response: httpx.Response) -> None:
        """Raise for an answer the venue's own rules settle before the retry policy does."""

    def rate_limit(self, response: httpx.Response) -> RateLimitInfo | None:
        """What an answer says of the rate limit, for the observer; None when nothing."""
        return None

    def retry_at(self, response: httpx.Response) -> datetime | None:
        """When a 429 says to come back, if it says."""
        return None

    def message(self, response: httpx.Response) -> str:
        """What an error answer says, for an error message."""
        return excerpt(response.content) or f"HTTP {response.status_code}"

    def exhausted(self, call: C, response: httpx.Response, placing: bool) -> BrokerError:
        """The error for a retried answer that is out of attempts (or, placing, unsafe)."""
        status = response.status_code
        message = self.message(response)
        if status == 429:
            return self.rate_limited(call, response, message)
        if placing:
            # A 5xx may come after the order was created; only a lookup can tell.
            return call.error(
                AnswerLost, f"{message}; look it up by client order id before resending", status
            )
        return call.error(
            BrokerUnavailable, f"{message} after {self.max_attempts} attempts", status
        )

    # -- the core -------------------------------------------------------------------------

    def send(
        self,
        call: C,
        request: Callable[[], httpx.Response],
        *,
        placing: bool = False,
        weight: int = 1,
    ) -> httpx.Response:
        """``request`` (made anew for each attempt: a venue signs with the time) under the
        retry policy; exhausted or unsafe failures become errors naming the call's ids."""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(_retry_placement if placing else _retry_read),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(call, state),
            reraise=True,
        )
        try:
            return retrying(self._attempt, call, request, weight)
        except Retryable as exc:
            raise self.exhausted(call, exc.response, placing) from None
        except httpx.HTTPError as exc:
            if placing and not never_left(exc):
                raise call.error(
                    AnswerLost,
                    f"sent, but no answer ({type(exc).__name__}); look it up by client order id",
                    None,
                ) from exc
            raise call.error(
                BrokerUnavailable, f"{type(exc).__name__}: {exc}; nothing was changed", None
            ) from exc

    def _attempt(
        self, call: C, request: Callable[[], httpx.Response], weight: int
    ) -> httpx.Response:
        if self._gate is not None:
            self._gate(weight)  # may wait, or raise a BrokerError (not retried): nothing sent
        started = time.monotonic()
        try:
            response = request()
        except httpx.HTTPError:
            self._count(call, None, started)
            raise
        self._count(call, response.status_code, started)
        self._observe(response)
        self.screen(call, response)
        if self.retried(response):
            raise Retryable(response)
        return response

    def _wait(self, state: RetryCallState) -> float:
        """Until a 429's stated reset (capped), else jittered backoff (capped).

        With a gate, a 429 is not waited out here: the gate's shared budget has learned the
        reset from the answer and waits (or gives up) within its caller's bounds."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, Retryable) and exc.response.status_code == 429:
            if self._gate is not None:
                return 0.0
            at = self.retry_at(exc.response)
            if at is not None and (seconds := (at - self.now()).total_seconds()) > 0:
                return min(seconds, self.max_retry_wait_s)
        return min(float(BACKOFF(state)), self.max_retry_wait_s)

    def _count(self, call: C, status: int | None, started: float) -> None:
        if self._on_request is not None:
            try:
                self._on_request(call.endpoint, status, time.monotonic() - started)
            except Exception:  # counting must never fail a request
                self._logger.exception(
                    "%s request observer failed on %s", self.venue, call.endpoint
                )

    def _observe(self, response: httpx.Response) -> None:
        if self._observer is None:
            return
        info = self.rate_limit(response)
        if info is None:
            return
        try:
            self._observer(info)
        except Exception:  # an observer bug must not turn a placed order into an error
            self._logger.exception("%s rate-limit observer failed on %s", self.venue, info)

    def _log_retry(self, call: C, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        self._logger.warning(
            "%s %s %s failed (%s: %s); attempt %d of %d, retrying in %.2f s",
            self.venue,
            call.method,
            call.path,
            type(exc).__name__,
            exc,
            state.attempt_number,
            self.max_attempts,
            wait,
        )

    # -- errors a venue raises from an answer ---------------------------------------------

    def rate_limited(
        self, call: C, response: httpx.Response, message: str, what: str = "rate limited"
    ) -> RateLimited:
        """A 429 (or the like) as RateLimited, with when to come back if the answer says."""
        return RateLimited(
            f"{call.method} {call.path}: {what}: {message}",
            retry_at=self.retry_at(response),
            broker=self.venue,
            broker_order_id=call.broker_order_id,
            client_order_id=call.client_order_id,
            status_code=response.status_code,
        )

    def malformed(self, call: C, response: httpx.Response, reason: str) -> BrokerError:
        """An answer that cannot be read, quoting only an excerpt of its body."""
        return call.error(
            MalformedResponse, f"{reason}; body: {excerpt(response.content)}", response.status_code
        )
