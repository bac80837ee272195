"""``ordersync events dead`` and ``replay``: the webhook dead letters listed (table and
JSON) and put back to pending, chosen by event, by endpoint or all; and ``ordersync
status`` showing each endpoint's pending and dead counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fakeredis
import pytest
from rich.console import Console
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from models import migrate
from models.db import make_engine
from models.outbox import EventKind, OutboxEvent, add_event
from models.webhooks import DeliveryStatus, WebhookDelivery
from ordersync.cli import app
from ordersync.events import dead_letters, delivery_counts, replay
from ordersync.settings import Settings, get_settings
from ordersync.status import read_status, render, to_json
from worker.webhooks import COUNTS_KEY

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    migrate.upgrade(url)
    monkeypatch.setenv("ORDERSYNC_DATABASE_URL", url)
    get_settings.cache_clear()
    engine = make_engine(url)
    yield engine
    engine.dispose()
    get_settings.cache_clear()


def seed(engine: Engine) -> dict[str, str]:
    """Event ids by role: two dead for endpoint "crm", one dead for "2", one pending, one
    delivered."""
    ids = {}
    with Session(engine) as session, session.begin():
        for i, (role, endpoint, status) in enumerate([
            ("dead-crm-1", "crm", DeliveryStatus.DEAD),
            ("dead-crm-2", "crm", DeliveryStatus.DEAD),
            ("dead-2", "2", DeliveryStatus.DEAD),
            ("pending", "crm", DeliveryStatus.PENDING),
            ("delivered", "crm", DeliveryStatus.DELIVERED),
        ]):  # fmt: skip
            event = add_event(session, EventKind.ORDER_FILLED, {}, now=T0, order_id=f"o{i}")
            session.flush()
            ids[role] = event.event_id
            session.add(WebhookDelivery(
                endpoint=endpoint, outbox_id=event.id, order_id=f"o{i}", status=status,
                attempts=12 if status is DeliveryStatus.DEAD else 1, next_attempt_at=T0,
                last_attempt_at=T0, last_error="HTTP 503" if status is not DeliveryStatus.DELIVERED
                else None, created_at=T0,
            ))  # fmt: skip
    return ids


def statuses(engine: Engine) -> dict[str, tuple[DeliveryStatus, int]]:
    with Session(engine) as session:
        rows = session.execute(
            select(OutboxEvent.event_id, WebhookDelivery.status, WebhookDelivery.attempts)
            .join(WebhookDelivery, WebhookDelivery.outbox_id == OutboxEvent.id)
        ).all()  # fmt: skip
        return {event_id: (status, attempts) for event_id, status, attempts in rows}


def test_dead_letters_are_listed_with_what_an_operator_needs(engine: Engine) -> None:
    ids = seed(engine)
    assert [(d.endpoint, d.event_id, d.attempts, d.last_error) for d in dead_letters(engine)] == [
        ("crm", ids["dead-crm-1"], 12, "HTTP 503"),
        ("crm", ids["dead-crm-2"], 12, "HTTP 503"),
        ("2", ids["dead-2"], 12, "HTTP 503"),
    ]  # fmt: skip
    assert [d.event_id for d in dead_letters(engine, endpoint="2")] == [ids["dead-2"]]

    table = CliRunner().invoke(app, ["events", "dead"], env=ENV)
    as_json = CliRunner().invoke(app, ["events", "dead", "--json", "--endpoint", "crm"], env=ENV)

    assert table.exit_code == 0, table.output
    assert ids["dead-crm-1"] in table.output
    assert "ORDER_FILLED" in table.output
    assert "HTTP 503" in table.output
    assert "ordersync events replay" in table.output
    assert "3; replay" in table.output
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.output)
    dead = document["dead"]
    assert document["total"] == 2
    assert [d["event_id"] for d in dead] == [ids["dead-crm-1"], ids["dead-crm-2"]]
    limited = CliRunner().invoke(app, ["events", "dead", "--limit", "1"], env=ENV)
    assert "1 of 3; replay" in limited.output
    assert dead[0] == {
        "endpoint": "crm", "event_id": ids["dead-crm-1"], "kind": "ORDER_FILLED",
        "order_id": "o0", "attempts": 12, "last_error": "HTTP 503",
        "last_attempt_at": T0.isoformat(), "created_at": T0.isoformat(),
    }  # fmt: skip


def test_replay_by_event_and_endpoint_resets_only_those(engine: Engine) -> None:
    ids = seed(engine)
    now = T0 + timedelta(hours=1)

    result = replay(engine, event_ids=[ids["dead-crm-2"], ids["delivered"], "nope"], now=now)

    assert result.deliveries == 1
    assert result.not_dead == (ids["delivered"], "nope")
    after = statuses(engine)
    assert after[ids["dead-crm-2"]] == (DeliveryStatus.PENDING, 0)
    assert after[ids["dead-crm-1"]] == (DeliveryStatus.DEAD, 12)
    assert after[ids["delivered"]] == (DeliveryStatus.DELIVERED, 1)
    assert replay(engine, all_dead=True, endpoint="2").deliveries == 1
    assert statuses(engine)[ids["dead-crm-1"]] == (DeliveryStatus.DEAD, 12)
    with pytest.raises(ValueError, match="name the events"):
        replay(engine)


def test_the_replay_command(engine: Engine) -> None:
    ids = seed(engine)
    runner = CliRunner()

    nothing = runner.invoke(app, ["events", "replay"], env=ENV)
    one = runner.invoke(app, ["events", "replay", "--event-id", ids["dead-2"]], env=ENV)
    unknown = runner.invoke(app, ["events", "replay", "--event-id", "nope"], env=ENV)
    rest = runner.invoke(app, ["events", "replay", "--all-dead"], env=ENV)

    assert nothing.exit_code == 2
    assert "--all-dead" in nothing.output
    assert (one.exit_code, one.stdout.strip()) == (0, "replayed 1 delivery")
    assert unknown.exit_code == 1
    assert "no dead delivery for: nope" in unknown.output
    assert (rest.exit_code, rest.stdout.strip()) == (0, "replayed 2 deliveries")
    assert dead_letters(engine) == []
    assert delivery_counts(engine) == {
        "crm": {"pending": 3, "delivered": 1}, "2": {"pending": 1},
    }  # fmt: skip


def test_an_unmigrated_database_is_said_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERSYNC_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["events", "dead"], env=ENV)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "ordersync db upgrade" in result.output


def test_status_shows_each_endpoints_pending_and_dead_deliveries() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    client.hset(COUNTS_KEY, "crm", json.dumps({"pending": 4, "dead": 2, "at": T0.isoformat()}))
    client.hset(COUNTS_KEY, "broken", "{not json")
    status = read_status(client, Settings(_env_file=None), T0 + timedelta(seconds=30))  # type: ignore[call-arg]

    assert to_json(status)["webhooks"] == {"crm": {"pending": 4, "dead": 2, "at": T0.isoformat()}}
    console = Console(record=True, width=200)
    render(status, console)
    text = console.export_text()
    assert "Event webhooks" in text
    assert "30 s ago" in text
    assert "ordersync events replay --all-dead" in text
