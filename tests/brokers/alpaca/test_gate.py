"""The adapter's ``gate``: called before every HTTP attempt, retries included; absent, the
adapter behaves as before."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from brokers.alpaca.adapter import AlpacaBroker
from brokers.base import RateLimitInfo
from brokers.errors import BrokerUnavailable, RateLimited
from brokers.registry import AccountConnection, AdapterCache, RateLimitHooks
from core.enums import BrokerKind
from tests.brokers.alpaca.test_adapter import BASE, KEY_ID, NOW, SECRET, alpaca_order, limit_request

ORDER = "o-1"


class Gate:
    """Records each call in a shared event log; raises ``error`` on call ``fail_on``."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.calls = 0
        self.fail_on: int | None = None
        self.error: Exception = RateLimited("budget spent", broker="test")

    def __call__(self, cost: int) -> None:
        assert cost == 1  # every Alpaca request weighs the same
        self.calls += 1
        self.events.append("gate")
        if self.calls == self.fail_on:
            raise self.error


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=BASE, assert_all_mocked=True)


@pytest.fixture
def make_broker(router: respx.Router) -> Iterator[Callable[..., AlpacaBroker]]:
    clients: list[httpx.Client] = []

    def make(**kw: Any) -> AlpacaBroker:
        client = httpx.Client(base_url=BASE, transport=httpx.MockTransport(router.handler))
        clients.append(client)
        kw.setdefault("sleep", lambda _: None)
        kw.setdefault("now", lambda: NOW)
        return AlpacaBroker(client, key_id=KEY_ID, secret_key=SECRET, **kw)

    yield make
    for client in clients:
        client.close()


def answers(events: list[str], *responses: httpx.Response) -> Callable[[httpx.Request], Any]:
    """A side effect that logs each request and answers the responses in turn."""
    pending = list(responses)

    def answer(request: httpx.Request) -> httpx.Response:
        events.append("request")
        return pending.pop(0)

    return answer


def reset_in(seconds: int) -> dict[str, str]:
    return {"X-Ratelimit-Reset": str(int(NOW.timestamp()) + seconds)}


def test_gate_runs_before_every_attempt_including_retries(
    router: respx.Router, make_broker: Callable[..., AlpacaBroker], events: list[str]
) -> None:
    gate = Gate(events)
    route = router.get(f"/v2/orders/{ORDER}").mock(
        side_effect=answers(
            events,
            httpx.Response(503),
            httpx.Response(429, headers=reset_in(1)),
            httpx.Response(200, json=alpaca_order(ORDER)),
        )
    )

    report = make_broker(gate=gate).get_order(ORDER)

    assert report.broker_order_id == ORDER
    assert route.call_count == 3
    assert events == ["gate", "request"] * 3


def test_gate_runs_before_each_attempt_of_a_placement(
    router: respx.Router, make_broker: Callable[..., AlpacaBroker], events: list[str]
) -> None:
    gate = Gate(events)
    router.post("/v2/orders").mock(
        side_effect=answers(
            events,
            httpx.Response(429, headers=reset_in(1)),
            httpx.Response(200, json=alpaca_order(ORDER)),
        )
    )

    make_broker(gate=gate).place(limit_request())

    assert events == ["gate", "request"] * 2


def test_a_refusing_gate_sends_nothing_and_is_not_retried(
    router: respx.Router, make_broker: Callable[..., AlpacaBroker], events: list[str]
) -> None:
    gate = Gate(events)
    gate.fail_on = 1
    route = router.post("/v2/orders").respond(200, json=alpaca_order(ORDER))

    with pytest.raises(RateLimited) as caught:  # not AnswerLost: the order was never sent
        make_broker(gate=gate).place(limit_request())

    assert caught.value is gate.error
    assert route.call_count == 0
    assert gate.calls == 1


def test_a_gate_refusing_a_retry_ends_the_call_with_its_error(
    router: respx.Router, make_broker: Callable[..., AlpacaBroker], events: list[str]
) -> None:
    gate = Gate(events)
    gate.fail_on = 2
    router.get(f"/v2/orders/{ORDER}").mock(
        side_effect=answers(events, httpx.Response(429, headers=reset_in(30)))
    )

    with pytest.raises(RateLimited) as caught:
        make_broker(gate=gate).get_order(ORDER)

    assert caught.value is gate.error
    assert events == ["gate", "request", "gate"]


def test_without_a_gate_the_adapter_behaves_as_before(
    router: respx.Router, make_broker: Callable[..., AlpacaBroker], events: list[str]
) -> None:
    sleeps: list[float] = []
    route = router.get(f"/v2/orders/{ORDER}").mock(
        side_effect=answers(events, *[httpx.Response(503)] * 4)
    )

    with pytest.raises(BrokerUnavailable):
        make_broker(sleep=sleeps.append).get_order(ORDER)

    assert route.call_count == 4
    assert len(sleeps) == 3
    assert events == ["request"] * 4


@pytest.mark.parametrize(
    ("headers", "reset_at"),
    [
        ({}, None),
        ({"Retry-After": "7"}, NOW + timedelta(seconds=7)),
        ({"X-Ratelimit-Reset": str(int(NOW.timestamp()) + 3), "Retry-After": "7"},
         NOW + timedelta(seconds=3)),
    ],
)  # fmt: skip
def test_every_429_reaches_the_observer_with_its_reset(
    router: respx.Router,
    make_broker: Callable[..., AlpacaBroker],
    headers: dict[str, str],
    reset_at: datetime | None,
) -> None:
    observed: list[RateLimitInfo] = []
    router.get("/v2/positions").respond(429, headers=headers)

    with pytest.raises(RateLimited):
        make_broker(observer=observed.append, max_attempts=1).list_positions()

    assert observed == [RateLimitInfo(None, None, reset_at, 429)]


def test_a_plain_answer_without_rate_headers_is_not_observed(
    router: respx.Router, make_broker: Callable[..., AlpacaBroker]
) -> None:
    observed: list[RateLimitInfo] = []
    router.get("/v2/positions").respond(200, json=[])
    make_broker(observer=observed.append).list_positions()
    assert observed == []


def test_the_adapter_cache_gives_each_account_its_hooks(
    monkeypatch: pytest.MonkeyPatch, events: list[str]
) -> None:
    monkeypatch.setenv("ACC_KEY_ID", KEY_ID)
    monkeypatch.setenv("ACC_SECRET_KEY", SECRET)
    asked: list[AccountConnection] = []
    gate = Gate(events)
    observed: list[RateLimitInfo] = []

    def hooks(connection: AccountConnection) -> RateLimitHooks:
        asked.append(connection)
        return RateLimitHooks(gate=gate, observer=observed.append)

    cache = AdapterCache(timeout_s=1, max_attempts=1, max_retry_wait_s=1, hooks=hooks)
    connection = AccountConnection("a", BrokerKind.ALPACA, BASE, "ACC", "id-1", 200)
    try:
        with respx.mock(base_url=BASE, assert_all_mocked=True) as mock:
            mock.get("/v2/positions").respond(
                200, json=[], headers={"X-Ratelimit-Remaining": "199"}
            )
            adapter = cache.for_account(connection)
            assert cache.for_account(connection) is adapter
            adapter.list_positions()
    finally:
        cache.close()

    assert asked == [connection]
    assert gate.calls == 1
    assert [info.remaining for info in observed] == [199]


def test_with_a_gate_a_429_is_not_waited_out_in_the_adapter(
    router: respx.Router, make_broker: Callable[..., AlpacaBroker], events: list[str]
) -> None:
    """The gate's shared budget learned the reset from the answer and waits within its
    caller's bounds (a monitor step must fit in its order lock): no sleep of its own here."""
    sleeps: list[float] = []
    router.get(f"/v2/orders/{ORDER}").mock(
        side_effect=answers(
            events,
            httpx.Response(429, headers=reset_in(30)),
            httpx.Response(200, json=alpaca_order(ORDER)),
        )
    )
    make_broker(gate=Gate(events), sleep=sleeps.append).get_order(ORDER)
    assert sleeps == [0.0]
