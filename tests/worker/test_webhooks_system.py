"""Events to a webhook with the real parts: worker and beat processes, the paper exchange,
and a receiver over HTTP that refuses (500) while orders fill. When it recovers it gets
every event, in order per order; when it never does, the deliveries are dead-lettered and
``ordersync events replay --all-dead`` sends them once it is back."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from core.enums import OrderStatus
from models.outbox import OutboxEvent
from models.webhooks import WebhookDelivery
from ordersync.cli import app
from ordersync.settings import get_settings
from tests.worker.conftest import HOOK_TOKEN, Hook, TrackingSystem, wait_for
from worker.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

pytestmark = pytest.mark.integration

SECRET = "whsec-system-8c1d3e"


def configure(system: TrackingSystem, hook: Hook, max_attempts: int) -> None:
    system.env.update({
        "ORDERSYNC_EVENT_WEBHOOK_URLS": f"orders={hook.url}",
        "ORDERSYNC_EVENT_WEBHOOK_SECRET": SECRET,
        "ORDERSYNC_EVENT_WEBHOOK_INTERVAL_S": "0.2",
        "ORDERSYNC_EVENT_WEBHOOK_BACKOFF_S": "0.2",
        "ORDERSYNC_EVENT_WEBHOOK_MAX_BACKOFF_S": "1",
        "ORDERSYNC_EVENT_WEBHOOK_MAX_ATTEMPTS": str(max_attempts),
    })  # fmt: skip


def filled(system: TrackingSystem, n: int) -> bool:
    orders = system.orders()
    return len(orders) == n and all(
        o.status is OrderStatus.FILLED and o.filled_quantity == o.quantity for o in orders
    )


def outbox(system: TrackingSystem) -> list[OutboxEvent]:
    with Session(system.engine) as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


def statuses(system: TrackingSystem) -> Counter[str]:
    with Session(system.engine) as session:
        query = select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        return Counter({str(status): int(n) for status, n in session.execute(query)})


def all_events(system: TrackingSystem, status: str) -> bool:
    """Every event in the outbox has its delivery, and each is in ``status``."""
    written = len(outbox(system))
    return written > 0 and statuses(system) == Counter({status: written})


def check_received(system: TrackingSystem, hook: Hook) -> None:
    """Each request verifies with the secret; every event arrived (at least once), and each
    order's events first arrived in the order they were written."""
    with hook.lock:
        requests = list(hook.requests)
    for request in requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert verify_signature(SECRET.encode(), headers[TIMESTAMP_HEADER.lower()], request.raw,
                                headers[SIGNATURE_HEADER.lower()], now_s=time.time())  # fmt: skip
        assert headers[EVENT_ID_HEADER.lower()] == json.loads(request.raw)["event_id"]
    arrived: list[dict[str, object]] = []
    for request in requests:
        body = json.loads(request.raw)
        if request.status == 200 and body["event_id"] not in {b["event_id"] for b in arrived}:
            arrived.append(body)
    written = outbox(system)
    assert sorted(str(b["event_id"]) for b in arrived) == sorted(e.event_id for e in written)
    for order_id in {e.order_id for e in written}:
        expected = [e.event_id for e in written if e.order_id == order_id]
        assert [b["event_id"] for b in arrived if b["order_id"] == order_id] == expected
    assert all(isinstance(b["data"], dict) for b in arrived)


def no_secrets_in_logs(system: TrackingSystem) -> None:
    for name in ("w1", "beat"):
        log = system.log(name)
        assert HOOK_TOKEN not in log, name
        assert SECRET not in log, name


def test_a_failing_webhook_gets_each_event_in_order_once_it_recovers(
    system: TrackingSystem, hook_factory: type[Hook]
) -> None:
    hook = hook_factory(fail_with=500)
    hook.down = True
    configure(system, hook, max_attempts=1000)
    system.start_worker("w1")
    system.start_beat()

    for i in range(4):
        system.place(symbol="AAPL", side="buy", quantity="2", decision_id=f"hook-{i}")
    wait_for(lambda: filled(system, 4), 90, "the orders filled")
    wait_for(lambda: all_events(system, "pending"), 90, "every event waiting for the webhook")
    wait_for(lambda: hook.attempts >= 3, 60, "the webhook refused attempts")
    assert hook.delivered == []
    assert "event webhook orders" in system.log("w1")

    with hook.lock:
        hook.down = False
    wait_for(lambda: all_events(system, "delivered"), 120, "every event delivered")

    check_received(system, hook)
    no_secrets_in_logs(system)


def test_a_webhook_that_never_recovers_leaves_dead_letters_that_replay_delivers(
    system: TrackingSystem, hook_factory: type[Hook], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = hook_factory(fail_with=500)
    hook.down = True
    configure(system, hook, max_attempts=2)
    system.start_worker("w1")
    system.start_beat()

    for i in range(2):
        system.place(symbol="MSFT", side="sell", quantity="1", decision_id=f"dead-{i}")
    wait_for(lambda: filled(system, 2), 90, "the orders filled")
    wait_for(lambda: all_events(system, "dead"), 120, "every delivery dead-lettered")
    assert hook.delivered == []
    assert "dead-lettered after 2 attempts" in system.log("w1")

    monkeypatch.setenv("ORDERSYNC_DATABASE_URL", system.database_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(app, ["events", "dead", "--json"])
        with hook.lock:
            hook.down = False
        replayed = runner.invoke(app, ["events", "replay", "--all-dead"])
    finally:
        get_settings.cache_clear()

    assert listed.exit_code == 0, listed.output
    dead = json.loads(listed.stdout)["dead"]
    written = outbox(system)
    assert sorted(d["event_id"] for d in dead) == sorted(e.event_id for e in written)
    assert {(d["endpoint"], d["attempts"], d["last_error"]) for d in dead} == {
        ("orders", 2, "HTTP 500")
    }
    assert replayed.exit_code == 0, replayed.output
    assert replayed.stdout.strip() == f"replayed {len(written)} deliveries"
    wait_for(lambda: all_events(system, "delivered"), 120, "every replayed event delivered")

    check_received(system, hook)
    no_secrets_in_logs(system)
