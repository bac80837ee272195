"""Alerts: the log line, the cooldown in Redis, and the webhook retried against a real local
HTTP server; the webhook URL (a secret) never reaches the logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
import redis
from pydantic import SecretStr

from ordersync.embedded_redis import free_port
from ordersync.settings import Settings
from tests.conftest import REQUIRE_SERVICES
from tests.worker.conftest import HOOK_TOKEN as TOKEN
from tests.worker.conftest import Hook
from worker.alerts import Alert, AlertKind, Delivery, Webhook, send_alert

T0 = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
FAST = Delivery(attempts=4, timeout_s=5, backoff_s=0.01, max_backoff_s=0.05)
ALERTS_LOGGER = "ordersync.alerts"
TEST_REDIS_URL = "redis://127.0.0.1:6379/6"


@pytest.fixture(params=["fakeredis", "redis"])
def client(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """fakeredis, and the real local Redis (db 6) for the Lua cooldown script."""
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis(decode_responses=True)
        return
    real = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True, socket_timeout=5)
    try:
        real.ping()
    except redis.RedisError:
        real.close()
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis at {TEST_REDIS_URL} is required")
        pytest.skip(f"Redis at {TEST_REDIS_URL} not reachable")
    real.flushdb()
    yield real
    real.flushdb()
    real.close()


def settings(url: str | None = None, cooldown_s: float = 300) -> Settings:
    return Settings(alert_webhook_url=SecretStr(url) if url else None,
                    alert_cooldown_s=cooldown_s)  # fmt: skip


def send(client: redis.Redis, config: Settings, alert: Alert) -> tuple[str, ...] | None:
    """``send_alert`` with the configured webhook, retried quickly."""
    return send_alert(client, config, alert, webhook=Webhook(config.alert_webhook_url, FAST))


def stale(ids: tuple[str, ...], seconds: float = 0, name: str = "unchecked") -> Alert:
    return Alert(AlertKind.STALE_ORDERS, name, len(ids), ids, T0 + timedelta(seconds=seconds))


def deadman(sweep: str, seconds: float) -> Alert:
    return Alert(AlertKind.SWEEP_DEADMAN, sweep, 3, (), T0 + timedelta(seconds=seconds),
                 detail=f"{sweep} silent")  # fmt: skip


def alert_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ALERTS_LOGGER]


def test_webhook_retried_until_accepted_then_one_delivery_per_cooldown(
    client: redis.Redis, hook_factory: type[Hook]
) -> None:
    hook = hook_factory(failures=2)
    config = settings(hook.url)

    assert send(client, config, stale(("o-1", "o-2"))) == ("o-1", "o-2")
    assert hook.attempts == 3  # two 503s, then accepted
    assert hook.delivered == [{
        "kind": "stale_orders", "class": "unchecked", "count": 2,
        "order_ids": ["o-1", "o-2"], "new_order_ids": ["o-1", "o-2"],
        "at": "2026-11-21T15:00:00+00:00", "detail": "",
    }]  # fmt: skip

    assert send(client, config, stale(("o-1", "o-2"), 299.9)) is None
    assert hook.attempts == 3  # cooling down: nothing sent

    assert send(client, config, stale(("o-1", "o-2", "o-3"), 100)) == ("o-3",)
    assert hook.delivered[-1]["order_ids"] == ["o-1", "o-2", "o-3"]
    assert hook.delivered[-1]["new_order_ids"] == ["o-3"]

    assert send(client, config, stale(("o-1", "o-2", "o-3"), 300)) == (
        "o-1", "o-2",
    )  # fmt: skip
    assert len(hook.delivered) == 3
    assert hook.attempts == 5


def test_the_cooldown_is_per_class(client: redis.Redis) -> None:
    config = settings()
    assert send_alert(client, config, stale(("o-1",), name="unchecked")) == ("o-1",)
    assert send_alert(client, config, stale(("o-1",), 1, name="pending_new")) == ("o-1",)
    assert send_alert(client, config, stale(("o-1",), 2, name="unchecked")) is None


def test_no_cooldown_when_it_is_zero(client: redis.Redis) -> None:
    config = settings(cooldown_s=0)
    for seconds in (0, 0, 1):
        assert send_alert(client, config, stale(("o-1",), seconds)) == ("o-1",)


def test_a_class_without_ids_sends_nothing(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    assert send_alert(client, settings(), stale(())) is None
    assert alert_lines(caplog) == []


def test_deadman_alerts_cool_down_per_sweep(client: redis.Redis, hook_factory: type[Hook]) -> None:
    hook = hook_factory()
    config = settings(hook.url)
    assert send(client, config, deadman("deep_reconcile", 0)) == ()
    assert send(client, config, deadman("deep_reconcile", 10)) is None
    assert send(client, config, deadman("purge_closed_orders", 10)) == ()
    assert send(client, config, deadman("deep_reconcile", 300)) == ()
    assert [(b["kind"], b["class"]) for b in hook.delivered] == [
        ("sweep_deadman", "deep_reconcile"), ("sweep_deadman", "purge_closed_orders"),
        ("sweep_deadman", "deep_reconcile"),
    ]  # fmt: skip
    assert hook.delivered[0]["detail"] == "deep_reconcile silent"


def test_one_log_line_with_class_count_and_ids(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = fakeredis.FakeRedis(decode_responses=True)
    send_alert(client, settings(), stale(("o-1", "o-2")))
    send_alert(client, settings(), stale(("o-9",), name="lost"))
    [first, second] = alert_lines(caplog)
    assert first.levelno == logging.WARNING
    assert "class=unchecked count=2" in first.getMessage()
    assert "order_ids=o-1,o-2" in first.getMessage()
    assert second.levelno == logging.ERROR
    assert "class=lost count=1" in second.getMessage()


def test_a_webhook_that_stays_down_gives_one_error_and_never_raises(
    hook_factory: type[Hook], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = hook_factory(failures=100)
    client = fakeredis.FakeRedis(decode_responses=True)
    assert send(client, settings(hook.url), stale(("o-1",))) == ("o-1",)
    assert hook.attempts == FAST.attempts
    errors = [r for r in alert_lines(caplog) if "webhook" in r.getMessage()]
    assert len(errors) == 1
    assert errors[0].levelno == logging.ERROR
    assert "HTTPStatusError 503" in errors[0].getMessage()
    assert "o-1" in errors[0].getMessage()
    assert_secret_not_logged(caplog)


def test_after_a_failed_delivery_the_rest_of_the_batch_is_only_logged(
    hook_factory: type[Hook], caplog: pytest.LogCaptureFixture
) -> None:
    hook = hook_factory(failures=FAST.attempts)  # down for the first alert's every attempt
    config = settings(hook.url)
    client = fakeredis.FakeRedis(decode_responses=True)
    batch = Webhook(config.alert_webhook_url, FAST)
    for name in ("unchecked", "pending_new", "lost"):
        assert send_alert(client, config, stale(("o-1",), name=name), webhook=batch)
    assert hook.attempts == FAST.attempts
    assert len([r for r in alert_lines(caplog) if "ALERT" in r.getMessage()]) == 3
    assert len([r for r in alert_lines(caplog) if "webhook failed" in r.getMessage()]) == 1
    assert send(client, config, stale(("o-2",))) == ("o-2",)  # a new batch tries again
    assert [b["new_order_ids"] for b in hook.delivered] == [["o-2"]]


@pytest.mark.parametrize("status", [400, 404])
def test_a_refusal_is_not_retried(
    hook_factory: type[Hook], caplog: pytest.LogCaptureFixture, status: int
) -> None:
    hook = hook_factory(failures=100, fail_with=status)
    client = fakeredis.FakeRedis(decode_responses=True)
    send(client, settings(hook.url), stale(("o-1",)))
    assert hook.attempts == 1
    assert len([r for r in alert_lines(caplog) if r.levelno == logging.ERROR]) == 1


def test_an_unreachable_webhook_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{free_port()}/hooks/{TOKEN}?key={TOKEN}"
    client = fakeredis.FakeRedis(decode_responses=True)
    assert send(client, settings(url), stale(("o-1",))) == ("o-1",)
    errors = [r for r in alert_lines(caplog) if "webhook" in r.getMessage()]
    assert len(errors) == 1
    assert "ConnectError" in errors[0].getMessage()
    assert_secret_not_logged(caplog)


def test_the_secret_url_is_redacted_from_the_http_client_log(
    hook_factory: type[Hook], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = hook_factory(failures=1)
    client = fakeredis.FakeRedis(decode_responses=True)
    send(client, settings(hook.url), stale(("o-1",)))
    assert len(hook.delivered) == 1
    requests = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(requests) == 2  # httpx logs each request, with the URL redacted
    assert all("<alert webhook>" in message for message in requests)
    assert_secret_not_logged(caplog)


def assert_secret_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records
    for record in caplog.records:
        assert TOKEN not in record.getMessage(), record.name
    assert TOKEN not in caplog.text
