"""The request core every adapter sends through: which failures are resent, the hooks' guards,
the waits, the retry logs, and errors that name the ids but never a credential."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from brokers.base import RateLimitInfo
from brokers.errors import (
    AnswerLost,
    BrokerError,
    BrokerUnavailable,
    MalformedResponse,
    RateLimited,
)
from brokers.http import Transport, retry_after
from brokers.values import EXCERPT_CHARS

NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
SECRET = "s3cr3t-key-never-shown"
LOGGER = logging.getLogger("tests.venue")

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    broker_order_id: str | None = None
    client_order_id: str | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.path}"

    def error(self, cls: type[BrokerError], message: str, status: int | None) -> BrokerError:
        return cls(
            f"{self.method} {self.path}: {message}",
            broker="venue",
            broker_order_id=self.broker_order_id,
            client_order_id=self.client_order_id,
            status_code=status,
        )


PLACE = Call("POST", "/orders", client_order_id="cid-1")
GET = Call("GET", "/orders/o-1", broker_order_id="o-1")


class Venue(Transport[Call]):
    """A venue that says when to come back in ``Retry-After`` and its limit in headers."""

    def retry_at(self, response: httpx.Response) -> datetime | None:
        after = response.headers.get("Retry-After")
        return None if after is None else self.now() + timedelta(seconds=int(after))

    def rate_limit(self, response: httpx.Response) -> RateLimitInfo | None:
        remaining = response.headers.get("X-Remaining")
        if remaining is None:
            return None
        return RateLimitInfo(10, int(remaining), None, response.status_code)


@dataclass
class Rig:
    """A venue over httpx.MockTransport answering each request with the next handler."""

    handlers: list[Handler]
    sent: list[httpx.Request]
    sleeps: list[float]
    transport: Venue
    client: httpx.Client

    def send(self, call: Call, *, placing: bool = False, weight: int = 1) -> httpx.Response:
        return self.transport.send(
            call,
            lambda: self.client.request(
                call.method,
                call.path,
                headers={"Authorization": f"Bearer {SECRET}"},
            ),
            placing=placing,
            weight=weight,
        )


def rig(*handlers: Handler, **kw: object) -> Rig:
    sent: list[httpx.Request] = []
    queue = list(handlers)

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return queue.pop(0)(request)

    sleeps: list[float] = []
    options: dict[str, object] = dict(
        max_attempts=4, max_retry_wait_s=10.0, gate=None, observer=None, on_request=None,
        now=lambda: NOW, sleep=sleeps.append,
    )  # fmt: skip
    options.update(kw)
    client = httpx.Client(base_url="https://venue.test", transport=httpx.MockTransport(answer))
    return Rig(list(handlers), sent, sleeps, Venue("venue", LOGGER, **options), client)  # type: ignore[arg-type]


def status(code: int, **headers: str) -> Handler:
    return lambda request: httpx.Response(code, headers=headers, text=f"HTTP {code} body")


def fails(exc: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("it failed", request=request)

    return handler


OK = status(200)


# -- what is resent ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "never_left", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout]
)
def test_a_placement_that_never_left_is_resent(never_left: type[httpx.TransportError]) -> None:
    venue = rig(fails(never_left), OK)

    assert venue.send(PLACE, placing=True).status_code == 200

    assert len(venue.sent) == 2


@pytest.mark.parametrize("lost", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.WriteError])
def test_a_placement_whose_answer_was_lost_is_not_resent(lost: type[httpx.TransportError]) -> None:
    venue = rig(fails(lost), OK)

    with pytest.raises(AnswerLost, match="look it up by client order id") as caught:
        venue.send(PLACE, placing=True)

    assert len(venue.sent) == 1
    assert caught.value.client_order_id == "cid-1"
    assert isinstance(caught.value.__cause__, lost)


def test_a_placement_answered_5xx_is_not_resent_and_may_have_been_made() -> None:
    venue = rig(status(502), OK)

    with pytest.raises(AnswerLost, match="before resending") as caught:
        venue.send(PLACE, placing=True)

    assert (len(venue.sent), caught.value.status_code) == (1, 502)


def test_a_placement_answered_429_was_not_acted_on_and_is_resent() -> None:
    venue = rig(status(429, **{"Retry-After": "1"}), OK)

    assert venue.send(PLACE, placing=True).status_code == 200

    assert (len(venue.sent), venue.sleeps) == (2, [1.0])


def test_a_placement_with_a_url_that_cannot_be_sent_is_unavailable_not_lost() -> None:
    venue = rig(fails(httpx.UnsupportedProtocol))

    with pytest.raises(BrokerUnavailable, match="nothing was changed"):
        venue.send(PLACE, placing=True)

    assert len(venue.sent) == 1


def test_a_read_is_resent_after_any_transport_failure_or_5xx() -> None:
    venue = rig(fails(httpx.ReadTimeout), status(503), fails(httpx.ConnectError), OK)

    assert venue.send(GET).status_code == 200

    assert len(venue.sent) == 4


def test_a_read_out_of_attempts_is_unavailable_naming_its_ids() -> None:
    venue = rig(*[status(503)] * 3, max_attempts=3)

    with pytest.raises(BrokerUnavailable, match="after 3 attempts") as caught:
        venue.send(GET)

    assert (len(venue.sent), caught.value.broker_order_id) == (3, "o-1")
    assert caught.value.status_code == 503


def test_a_read_that_never_connects_is_unavailable_after_its_attempts() -> None:
    venue = rig(*[fails(httpx.ConnectError)] * 2, max_attempts=2)

    with pytest.raises(BrokerUnavailable, match="ConnectError: it failed; nothing was changed"):
        venue.send(GET)

    assert len(venue.sent) == 2


def test_a_429_out_of_attempts_is_rate_limited_until_the_venue_says() -> None:
    venue = rig(*[status(429, **{"Retry-After": "30"})] * 2, max_attempts=2)

    with pytest.raises(RateLimited, match="GET /orders/o-1: rate limited") as caught:
        venue.send(GET)

    assert caught.value.retry_at == NOW + timedelta(seconds=30)
    assert (caught.value.broker, caught.value.broker_order_id) == ("venue", "o-1")


def test_a_4xx_is_the_venue_s_to_read_and_never_resent() -> None:
    venue = rig(status(404), OK)

    assert venue.send(GET).status_code == 404
    assert len(venue.sent) == 1


def test_a_venue_that_retries_no_429_and_screens_its_own_answers() -> None:
    class Strict(Venue):
        def retried(self, response: httpx.Response) -> bool:
            return response.status_code >= 500

        def screen(self, call: Call, response: httpx.Response) -> None:
            if response.status_code == 429:
                raise self.rate_limited(call, response, "slow down", "rate limited (banned)")

    client = httpx.Client(transport=httpx.MockTransport(status(429)), base_url="https://v.test")
    strict = Strict(
        "venue", LOGGER, max_attempts=4, max_retry_wait_s=1.0, gate=None, observer=None,
        on_request=None, now=lambda: NOW, sleep=lambda s: None,
    )  # fmt: skip

    with pytest.raises(RateLimited, match=r"rate limited \(banned\): slow down"):
        strict.send(GET, lambda: client.get("/x"))


@pytest.mark.parametrize(("attempts", "wait"), [(0, 10.0), (1, -0.5)])
def test_bounds_are_checked(attempts: int, wait: float) -> None:
    with pytest.raises(ValueError, match=r"max_attempts|max_retry_wait_s"):
        rig(max_attempts=attempts, max_retry_wait_s=wait)


# -- waits ---------------------------------------------------------------------------------


def test_backoff_grows_with_jitter_and_never_passes_the_cap() -> None:
    venue = rig(*[status(503)] * 6, max_attempts=6)
    with pytest.raises(BrokerUnavailable):
        venue.send(GET)
    for wait, base in zip(venue.sleeps, [0.1, 0.2, 0.4, 0.8, 1.6], strict=True):
        assert base <= wait <= base + 0.1

    capped = rig(*[status(503)] * 3, max_attempts=3, max_retry_wait_s=0.15)
    with pytest.raises(BrokerUnavailable):
        capped.send(GET)
    assert capped.sleeps[1] == 0.15


def test_a_429_waits_for_its_stated_reset_capped() -> None:
    venue = rig(status(429, **{"Retry-After": "60"}), OK, max_retry_wait_s=5.0)

    venue.send(GET)

    assert venue.sleeps == [5.0]


def test_with_a_gate_a_429_is_not_waited_out_here() -> None:
    """The gate's shared budget learned the reset from the answer and waits for it."""
    weights: list[int] = []
    venue = rig(status(429, **{"Retry-After": "60"}), OK, gate=weights.append)

    venue.send(GET, weight=5)

    assert (venue.sleeps, weights) == ([0.0], [5, 5])


# -- hooks ---------------------------------------------------------------------------------


def test_a_gate_that_refuses_sends_nothing_and_is_not_retried() -> None:
    def gate(weight: int) -> None:
        raise RateLimited("budget spent", broker="venue")

    venue = rig(OK, gate=gate)

    with pytest.raises(RateLimited, match="budget spent"):
        venue.send(PLACE, placing=True)

    assert venue.sent == []


def test_the_request_observer_is_told_each_attempt_and_its_failure_fails_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, int | None]] = []

    def on_request(endpoint: str, code: int | None, seconds: float) -> None:
        seen.append((endpoint, code))
        assert seconds >= 0
        raise RuntimeError("metrics are down")

    venue = rig(fails(httpx.ConnectError), status(503), OK, on_request=on_request)

    with caplog.at_level(logging.ERROR, logger=LOGGER.name):
        assert venue.send(GET).status_code == 200

    assert seen == [("GET /orders/o-1", None), ("GET /orders/o-1", 503), ("GET /orders/o-1", 200)]
    assert caplog.text.count("venue request observer failed on GET /orders/o-1") == 3


def test_the_rate_limit_observer_hears_what_the_venue_reads_and_its_failure_fails_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: list[RateLimitInfo] = []

    def observer(info: RateLimitInfo) -> None:
        heard.append(info)
        raise RuntimeError("bucket is down")

    venue = rig(status(200, **{"X-Remaining": "7"}), observer=observer)

    with caplog.at_level(logging.ERROR, logger=LOGGER.name):
        assert venue.send(PLACE, placing=True).status_code == 200

    assert heard == [RateLimitInfo(10, 7, None, 200)]
    assert "venue rate-limit observer failed" in caplog.text


def test_an_answer_without_rate_limit_figures_is_not_reported() -> None:
    heard: list[RateLimitInfo] = []

    rig(OK, observer=heard.append).send(GET)

    assert heard == []


# -- logs and errors -----------------------------------------------------------------------


def test_each_retry_is_logged_on_the_venue_s_logger(caplog: pytest.LogCaptureFixture) -> None:
    venue = rig(fails(httpx.ReadTimeout), OK, max_attempts=3)

    with caplog.at_level(logging.WARNING, logger=LOGGER.name):
        venue.send(GET)

    [record] = caplog.records
    assert record.name == LOGGER.name
    message = record.getMessage()
    assert message.startswith("venue GET /orders/o-1 failed (ReadTimeout: it failed)")
    assert "attempt 1 of 3, retrying in" in message


def test_a_malformed_answer_quotes_only_an_excerpt() -> None:
    venue = rig(lambda request: httpx.Response(200, text="<" * 5000 + "TAIL"))
    response = venue.send(GET)

    error = venue.transport.malformed(GET, response, "body is not JSON")

    assert isinstance(error, MalformedResponse)
    assert error.broker_order_id == "o-1"
    assert "<" * EXCERPT_CHARS + "…" in str(error)
    assert "TAIL" not in str(error)


def test_no_error_or_log_carries_the_credential_the_request_was_sent_with(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scenarios: list[tuple[Call, bool, list[Handler]]] = [
        (GET, False, [fails(httpx.ReadTimeout), status(503)]),  # retried, then unavailable
        (GET, False, [fails(httpx.ConnectError)] * 2),  # never connected
        (PLACE, True, [fails(httpx.ReadTimeout)]),  # lost
        (GET, False, [status(429)] * 2),  # rate limited
    ]
    errors: list[BaseException] = []
    sent: list[httpx.Request] = []

    with caplog.at_level(logging.DEBUG):
        for call, placing, handlers in scenarios:
            venue = rig(*handlers, max_attempts=2)
            with pytest.raises(BrokerError) as caught:
                venue.send(call, placing=placing)
            errors.append(caught.value)
            sent += venue.sent
        venue = rig(status(200))
        errors.append(venue.transport.malformed(GET, venue.send(GET), "unreadable"))

    assert [type(e) for e in errors] == [
        BrokerUnavailable, BrokerUnavailable, AnswerLost, RateLimited, MalformedResponse,
    ]  # fmt: skip
    assert sent[0].headers["Authorization"] == f"Bearer {SECRET}"  # it was really sent
    texts = [f"{e!s} {e!r} {e.__cause__!r} {vars(e)}" for e in errors]
    texts += [record.getMessage() + str(record.exc_text) for record in caplog.records]
    texts.append(repr(venue.transport))
    assert [r for r in caplog.records if r.name == LOGGER.name]
    for text in texts:
        assert SECRET not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", datetime(2024, 5, 2, 12, 0, 2, tzinfo=UTC)),
        ("Thu, 02 May 2024 12:00:30 GMT", datetime(2024, 5, 2, 12, 0, 30, tzinfo=UTC)),
        ("-1", None),
        ("nan", None),
        ("soon", None),
    ],
)
def test_retry_after_reads_seconds_or_an_http_date_and_nothing_else(
    value: str, expected: datetime | None
) -> None:
    now = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)
    assert retry_after({"Retry-After": value}, now) == expected
    assert retry_after({}, now) is None
