"""Events to webhooks, as plain functions on SQLite and fakeredis with a mock HTTP transport:
signed so a receiver can check them, in order per order, retried with backoff, dead after
max attempts, replayable, and never a URL or secret in a log line or a stored error (the
real worker, beat and receiver are in test_webhooks_system.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import httpx
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from models.db import make_engine, make_sessionmaker
from models.outbox import EventKind, OutboxEvent, add_event
from models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpointState
from ordersync.events import replay
from ordersync.settings import Settings, parse_webhook_urls
from tests.conftest import migrated_database
from tests.worker.conftest import T0, UnitWorker
from worker import webhooks
from worker.context import WorkerContext
from worker.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    backoff_s,
    deliver_webhooks,
    held_for_delivery,
    verify_signature,
)

TOKEN = "tok-5b1e0c9a77"
SECRET = "whsec-unit-41f0d2"
URL = f"https://hooks.example.com/in/{TOKEN}?key={TOKEN}"


@dataclass
class Receiver:
    """The endpoint behind a mock transport: ``answer`` decides each status (or raises)."""

    answer: Callable[[httpx.Request, dict[str, Any]], int] = lambda request, body: 200
    requests: list[tuple[httpx.Request, dict[str, Any], int]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        status = self.answer(request, body)
        self.requests.append((request, body, status))
        return httpx.Response(status)

    def delivered(self) -> list[str]:
        """Event ids the endpoint took (2xx), in arrival order."""
        return [body["event_id"] for _, body, status in self.requests if status < 300]


def configure(unit: UnitWorker, **overrides: Any) -> None:
    settings = {
        "event_webhook_urls": SecretStr(f"orders={URL}"),
        "event_webhook_secret": SecretStr(SECRET),
        "event_webhook_backoff_s": 1.0,
        "event_webhook_max_backoff_s": 300.0,
        "event_webhook_max_attempts": 5,
        **overrides,
    }
    unit.ctx.settings = unit.ctx.settings.model_copy(update=settings)


def add(
    unit: UnitWorker, order_id: str | None, kind: EventKind = EventKind.ORDER_ACCEPTED, *,
    created_at_behind_s: float = 0.0,
) -> str:  # fmt: skip
    now = unit.clock[0] - timedelta(seconds=created_at_behind_s)
    with unit.ctx.sessions.begin() as session:
        event = add_event(session, kind, {"order_id": order_id, "filled": "1.50"},
                          now=now, order_id=order_id, trade_id="t-1")  # fmt: skip
        session.flush()
        return event.event_id


def run(unit: UnitWorker, receiver: Receiver) -> webhooks.WebhookRun:
    return deliver_webhooks(unit.ctx, transport=httpx.MockTransport(receiver))


def deliveries(unit: UnitWorker) -> dict[str, WebhookDelivery]:
    """Delivery rows by event id."""
    with unit.ctx.sessions() as session:
        rows = session.execute(
            select(WebhookDelivery, OutboxEvent.event_id)
            .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.outbox_id)
        ).all()  # fmt: skip
        return {event_id: delivery for delivery, event_id in rows}


def later(unit: UnitWorker, seconds: float) -> None:
    unit.clock[0] += timedelta(seconds=seconds)


# --- settings --------------------------------------------------------------------------------


def test_endpoints_are_named_or_numbered_and_a_bad_entry_is_refused_without_its_text() -> None:
    endpoints = parse_webhook_urls(
        SecretStr(f"crm={URL}, https://b.example/x?a=1&b=2 ,,https://c.example")
    )
    assert [(e.name, e.url.get_secret_value()) for e in endpoints] == [
        ("crm", URL), ("2", "https://b.example/x?a=1&b=2"), ("3", "https://c.example"),
    ]  # fmt: skip
    assert TOKEN not in repr(endpoints)

    with pytest.raises(ValidationError, match="entry 2 is not an http") as refused:
        Settings(_env_file=None, event_webhook_urls=f"{URL},ftp://{TOKEN}.example/x",
                 event_webhook_secret=SECRET)  # fmt: skip
    assert TOKEN not in str(refused.value)
    with pytest.raises(ValidationError, match="SECRET is required") as unsigned:
        Settings(_env_file=None, event_webhook_urls=URL)
    assert TOKEN not in str(unsigned.value)
    with pytest.raises(ValidationError, match="names endpoint 'a' twice"):
        Settings(_env_file=None, event_webhook_urls=f"a={URL},a={URL}", event_webhook_secret="k")


# --- sending ---------------------------------------------------------------------------------


def test_a_receiver_with_the_secret_can_verify_each_post(unit: UnitWorker) -> None:
    configure(unit)
    receiver = Receiver()
    event_id = add(unit, "o1", EventKind.ORDER_FILLED)

    result = run(unit, receiver)

    assert [(e.endpoint, e.fanned_out, e.delivered) for e in result.endpoints] == [("orders", 1, 1)]
    ((request, body, _),) = receiver.requests
    assert str(request.url) == URL
    assert body == {
        "event_id": event_id, "kind": "ORDER_FILLED", "priority": 8, "order_id": "o1",
        "trade_id": "t-1", "created_at": unit.clock[0].isoformat(),
        "data": {"order_id": "o1", "filled": "1.50"},
    }  # fmt: skip
    assert request.headers[EVENT_ID_HEADER] == event_id
    timestamp, signature = request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER]
    assert int(timestamp) == int(unit.clock[0].timestamp())
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.content,
                        hashlib.sha256).hexdigest()  # fmt: skip
    assert signature == f"sha256={expected}"
    now_s = unit.clock[0].timestamp()
    assert verify_signature(SECRET.encode(), timestamp, request.content, signature, now_s=now_s)
    assert not verify_signature(b"other", timestamp, request.content, signature, now_s=now_s)
    assert not verify_signature(SECRET.encode(), timestamp, request.content + b" ", signature,
                                now_s=now_s)  # fmt: skip
    assert not verify_signature(SECRET.encode(), timestamp, request.content, signature,
                                now_s=now_s + 3600)  # a replayed capture is stale  # fmt: skip
    assert deliveries(unit)[event_id].status is DeliveryStatus.DELIVERED
    assert run(unit, receiver).endpoints[0].delivered == 0  # nothing twice


def test_an_orders_later_event_waits_for_its_earlier_one_and_other_orders_go_on(
    unit: UnitWorker,
) -> None:
    configure(unit)
    a1, b1, a2, b2, a3 = (add(unit, order) for order in ("A", "B", "A", "B", "A"))
    down = {a1}
    receiver = Receiver(lambda request, body: 500 if body["event_id"] in down else 200)

    first = run(unit, receiver)  # a1 fails: the run stops there
    second = run(unit, receiver)  # a1 waits out its backoff; B goes on, A waits behind a1

    assert (first.endpoints[0].failed, second.endpoints[0].delivered) == (1, 2)
    assert receiver.delivered() == [b1, b2]
    down.clear()
    later(unit, 1)
    run(unit, receiver)
    assert receiver.delivered() == [b1, b2, a1, a2, a3]
    assert {d.status for d in deliveries(unit).values()} == {DeliveryStatus.DELIVERED}


def test_failures_back_off_doubling_up_to_the_cap_then_the_delivery_is_dead(
    unit: UnitWorker, caplog: pytest.LogCaptureFixture
) -> None:
    assert [backoff_s(n, 1.0, 300.0) for n in (1, 2, 3, 8, 9, 10, 100)] == [
        1, 2, 4, 128, 256, 300, 300,
    ]  # fmt: skip
    configure(unit, event_webhook_max_attempts=4, event_webhook_max_backoff_s=3.0)
    stuck, after = add(unit, "A"), add(unit, "A")
    receiver = Receiver(lambda request, body: 503 if body["event_id"] == stuck else 200)
    waits = []
    for _ in range(3):
        run(unit, receiver)
        row = deliveries(unit)[stuck]
        waits.append((row.next_attempt_at - unit.clock[0]).total_seconds())
        assert run(unit, receiver).endpoints[0].failed == 0  # not due again before its time
        later(unit, waits[-1])
    assert waits == [1, 2, 3]
    assert receiver.delivered() == []  # the order's next event waits meanwhile

    with caplog.at_level(logging.WARNING, logger="ordersync.webhooks"):
        result = run(unit, receiver)

    assert (result.endpoints[0].dead, result.endpoints[0].dead_total) == (1, 1)
    row = deliveries(unit)[stuck]
    assert (row.status, row.attempts, row.last_error) == (DeliveryStatus.DEAD, 4, "HTTP 503")
    run(unit, receiver)
    assert receiver.delivered() == [after]  # a dead event no longer holds its order back
    assert f"event {stuck}" in caplog.text
    assert "dead-lettered after 4 attempts" in caplog.text


def test_a_replayed_dead_delivery_is_sent_again_with_fresh_attempts(unit: UnitWorker) -> None:
    configure(unit, event_webhook_max_attempts=1)
    event_id = add(unit, "A")
    up = [False]
    receiver = Receiver(lambda request, body: 200 if up[0] else 500)
    run(unit, receiver)
    assert deliveries(unit)[event_id].status is DeliveryStatus.DEAD
    up[0] = True
    assert run(unit, receiver).endpoints[0].delivered == 0  # dead stays dead

    replayed = replay(unit.ctx.engine, all_dead=True, now=unit.clock[0])

    assert (replayed.deliveries, replayed.not_dead) == (1, ())
    row = deliveries(unit)[event_id]
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 0)
    run(unit, receiver)
    assert receiver.delivered() == [event_id]
    assert deliveries(unit)[event_id].attempts == 1


def test_when_a_retried_event_gets_through_the_endpoints_waiting_events_are_due_at_once(
    unit: UnitWorker,
) -> None:
    configure(unit, event_webhook_backoff_s=60.0)
    up = [False]
    receiver = Receiver(lambda request, body: 200 if up[0] else 500)
    first, second = add(unit, "A"), add(unit, "B")
    run(unit, receiver)  # first fails
    later(unit, 1)
    run(unit, receiver)  # second fails (first waits 60 s)
    up[0] = True
    later(unit, 60)

    run(unit, receiver)  # first is due and goes through: the endpoint is back

    assert receiver.delivered() == [first, second]


def test_one_endpoint_down_does_not_hold_back_another(unit: UnitWorker) -> None:
    configure(unit, event_webhook_urls=SecretStr(f"down={URL}-down,up={URL}"))
    events = [add(unit, order) for order in "ABA"]
    receiver = Receiver(lambda request, body: 500 if "-down" in str(request.url) else 200)

    result = run(unit, receiver)

    assert [(e.endpoint, e.delivered, e.failed, e.pending) for e in result.endpoints] == [
        ("down", 0, 1, 3), ("up", 3, 0, 0),
    ]  # fmt: skip
    assert receiver.delivered() == events


def test_a_down_endpoint_gets_one_request_per_run(unit: UnitWorker) -> None:
    configure(unit)
    for order in "ABCDE":
        add(unit, order)
    receiver = Receiver(lambda request, body: 500)
    run(unit, receiver)
    assert len(receiver.requests) == 1


def test_no_url_or_secret_in_logs_or_stored_errors(
    unit: UnitWorker, caplog: pytest.LogCaptureFixture
) -> None:
    configure(unit, event_webhook_max_attempts=2)
    calls = [0]

    def refuse(request: httpx.Request, body: dict[str, Any]) -> int:
        calls[0] += 1
        if calls[0] == 1:  # as real transport errors do, the message names the URL
            raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)
        return 502

    add(unit, "A")
    with caplog.at_level(logging.DEBUG):
        run(unit, Receiver(refuse))
        later(unit, 1)
        run(unit, Receiver(refuse))
        later(unit, 2)
        add(unit, "B")
        run(unit, Receiver())  # a success is logged by httpx with its URL: redacted

    stored = [d.last_error for d in deliveries(unit).values()]
    assert sorted(map(str, stored)) == ["HTTP 502", "None"]
    assert "ConnectError" in caplog.text
    assert "<event webhook orders>" in caplog.text  # httpx's request line, redacted
    for record in caplog.records:
        assert TOKEN not in record.getMessage(), record.getMessage()
        assert SECRET not in record.getMessage(), record.getMessage()


def test_one_delivery_run_per_endpoint_at_a_time(unit: UnitWorker) -> None:
    configure(unit)
    add(unit, "A")
    unit.ctx.redis.set(webhooks.LOCK_PREFIX + "orders", "someone else")
    receiver = Receiver()
    assert run(unit, receiver).endpoints[0].ran is False
    assert receiver.requests == []


def test_without_endpoints_nothing_happens(unit: UnitWorker) -> None:
    add(unit, "A")
    assert run(unit, Receiver()) == webhooks.WebhookRun()
    assert deliveries(unit) == {}


# --- fan-out: id gaps ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gap_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database per dialect: the writers below really hold and commit their ids."""
    yield from migrated_database(request.param, tmp_path_factory.mktemp("gaps"))


@pytest.fixture
def db_unit(gap_database: str) -> Iterator[UnitWorker]:
    """A worker context on ``gap_database`` (emptied of events), fakeredis and a clock."""
    engine = make_engine(gap_database)
    with engine.begin() as connection:
        for model in (WebhookDelivery, WebhookEndpointState, OutboxEvent):
            connection.execute(delete(model))
    clock = [T0]
    settings = Settings(_env_file=None)
    ctx = WorkerContext(settings, engine, make_sessionmaker(engine),
                        fakeredis.FakeRedis(decode_responses=True), None,  # type: ignore[arg-type]
                        now=lambda: clock[0])  # fmt: skip
    yield UnitWorker(ctx, "", clock)
    engine.dispose()


def on_sqlite(unit: UnitWorker) -> bool:
    """SQLite has one writer at a time: nothing commits while another writer holds its id."""
    return unit.ctx.engine.dialect.name == "sqlite"


@contextmanager
def writer(unit: UnitWorker, order_id: str, *, behind_s: float = 0.0,
           commit: bool = True) -> Iterator[str]:  # fmt: skip
    """A transaction that has written an event, so holds its outbox id, until the block ends;
    then it commits (or rolls back). ``behind_s``: its writer's clock is that far behind."""
    with unit.ctx.engine.connect() as connection:
        transaction = connection.begin()
        with Session(bind=connection) as session:
            event = add_event(session, EventKind.ORDER_ACCEPTED, {"order_id": order_id},
                              now=unit.clock[0] - timedelta(seconds=behind_s),
                              order_id=order_id)  # fmt: skip
            session.flush()
            event_id = event.event_id
        yield event_id
        if commit:
            transaction.commit()
        else:
            transaction.rollback()


def outbox_id(unit: UnitWorker, event_id: str) -> int:
    with unit.ctx.sessions() as session:
        found = session.scalar(select(OutboxEvent.id).where(OutboxEvent.event_id == event_id))
        assert found is not None
        return found


def cursor(unit: UnitWorker) -> int:
    with unit.ctx.sessions() as session:
        state = session.get(WebhookEndpointState, "orders")
        assert state is not None
        return state.last_outbox_id


def test_an_event_whose_transaction_holds_its_id_for_minutes_is_delivered(
    db_unit: UnitWorker,
) -> None:
    """The cursor waits for the writer however long it takes, never for a time."""
    configure(db_unit)
    receiver = Receiver()
    run(db_unit, receiver)  # the endpoint exists
    with writer(db_unit, "slow") as slow:
        later_ids = [] if on_sqlite(db_unit) else [add(db_unit, "fast")]  # committed first
        for _ in range(3):
            run(db_unit, receiver)
            later(db_unit, 100)  # five minutes in all: far past any grace period
        assert receiver.delivered() == later_ids  # what is committed goes out meanwhile
        if later_ids:
            assert cursor(db_unit) < outbox_id(db_unit, later_ids[0])  # held at the gap
    later_ids.append(add(db_unit, "after"))
    run(db_unit, receiver)
    assert sorted(receiver.delivered()) == sorted([slow, *later_ids])


def test_an_event_from_a_writer_whose_clock_is_behind_is_delivered(db_unit: UnitWorker) -> None:
    configure(db_unit)
    receiver = Receiver()
    run(db_unit, receiver)
    with writer(db_unit, "held", behind_s=130) as held:
        behind = [] if on_sqlite(db_unit) else [add(db_unit, "next", created_at_behind_s=130)]
        run(db_unit, receiver)
        run(db_unit, receiver)
    run(db_unit, receiver)
    assert sorted(receiver.delivered()) == sorted([held, *behind])


def test_an_aborted_id_gap_does_not_hold_the_cursor(db_unit: UnitWorker) -> None:
    configure(db_unit)
    receiver = Receiver()
    run(db_unit, receiver)
    with writer(db_unit, "aborted", commit=False):
        pass  # took an id, never commits it (SQLite hands the id out again)
    after = add(db_unit, "after")
    runs = 0
    while cursor(db_unit) < outbox_id(db_unit, after):
        assert runs < 3, "the cursor never passed the aborted id"
        run(db_unit, receiver)
        runs += 1
    assert receiver.delivered() == [after]


def test_a_gap_is_passed_once_its_writer_ends_while_a_later_writer_still_holds_on(
    db_unit: UnitWorker,
) -> None:
    """Only the writers seen with the gap are waited for, not the outbox going quiet."""
    if on_sqlite(db_unit):
        pytest.skip("SQLite has one writer at a time")
    configure(db_unit)
    receiver = Receiver()
    run(db_unit, receiver)
    with writer(db_unit, "first") as first:
        second = add(db_unit, "second")
        run(db_unit, receiver)  # the gap at first's id is seen with first writing
    with writer(db_unit, "third"):
        for _ in range(3):
            run(db_unit, receiver)
        assert receiver.delivered() == [second, first]
        assert cursor(db_unit) == outbox_id(db_unit, second)


def test_an_event_committing_late_below_a_new_endpoints_first_events_is_delivered(
    db_unit: UnitWorker,
) -> None:
    if on_sqlite(db_unit):
        pytest.skip("SQLite has one writer at a time")
    configure(db_unit)
    receiver = Receiver()
    with writer(db_unit, "o1") as first:
        second = add(db_unit, "o2")
        run(db_unit, receiver)  # the endpoint's first run
    run(db_unit, receiver)
    assert receiver.delivered() == [second, first]


def test_on_sqlite_a_gap_below_a_committed_id_is_final(unit: UnitWorker) -> None:
    """SQLite: one writer at a time, ids never reused (AUTOINCREMENT), so a gap below a
    committed id is a purged or rolled-back one and the cursor passes it at once."""
    configure(unit)
    for event_id in (1, 2, 5):
        with unit.ctx.sessions.begin() as session:
            session.add(OutboxEvent(id=event_id, event_id=f"e{event_id}", kind="ORDER_ACCEPTED",
                                    priority=7, order_id="o", payload="{}",
                                    created_at=unit.clock[0]))  # fmt: skip
    run(unit, Receiver())
    assert cursor(unit) == 5


def test_a_new_endpoint_gets_the_backfill_window_and_what_comes_after(unit: UnitWorker) -> None:
    configure(unit, event_webhook_backfill_s=600.0)
    add(unit, "old")
    later(unit, 601)
    recent = add(unit, "recent")
    receiver = Receiver()
    run(unit, receiver)
    assert receiver.delivered() == [recent]


def test_ids_restarting_below_the_cursor_are_rescanned(unit: UnitWorker) -> None:
    configure(unit)
    run(unit, Receiver())  # the endpoint's cursor exists
    with unit.ctx.sessions.begin() as session:
        session.execute(update(WebhookEndpointState).values(last_outbox_id=100))
    event_id = add(unit, "A")  # id 1: a fully purged SQLite table starts again
    receiver = Receiver()
    run(unit, receiver)
    assert receiver.delivered() == [event_id]


# --- for the purge ---------------------------------------------------------------------------


def test_the_purge_keeps_events_whose_delivery_is_pending_or_not_yet_handed_out(
    unit: UnitWorker,
) -> None:
    configure(unit, event_webhook_max_attempts=1, event_webhook_batch_size=3)
    fails = set()
    delivered, dead, pending = add(unit, "A"), add(unit, "B"), add(unit, "C")
    receiver = Receiver(lambda request, body: 500 if body["event_id"] in fails else 200)
    fails.add(dead)
    run(unit, receiver)  # delivered, then dead (its run ends there)
    fails.add(pending)
    configure(unit, event_webhook_max_attempts=5, event_webhook_batch_size=3)
    run(unit, receiver)  # pending fails once
    not_reached = add(unit, "D")  # no run since: not handed to the endpoint yet

    def purgeable(names: list[str]) -> list[str]:
        with unit.ctx.sessions() as session:
            query = select(OutboxEvent.event_id).where(~held_for_delivery(names))
            return list(session.scalars(query.order_by(OutboxEvent.id)))

    assert deliveries(unit)[pending].status is DeliveryStatus.PENDING
    assert purgeable(["orders"]) == [delivered, dead]
    assert purgeable([]) == [delivered, dead, pending, not_reached]  # webhooks off
    assert purgeable(["gone"]) == [delivered, dead, pending, not_reached]  # not configured
    assert webhooks.held_for_webhooks(unit.ctx.settings) is not None


def test_an_outbox_event_purged_takes_its_delivery_rows_along(unit: UnitWorker) -> None:
    configure(unit)
    add(unit, "A")
    run(unit, Receiver())
    with unit.ctx.sessions.begin() as session:
        session.query(OutboxEvent).delete()
    assert deliveries(unit) == {}


def test_timestamps_are_aware_utc(unit: UnitWorker) -> None:
    configure(unit)
    event_id = add(unit, "A")
    run(unit, Receiver())
    row = deliveries(unit)[event_id]
    assert row.delivered_at == unit.clock[0]
    assert row.delivered_at is not None
    assert row.delivered_at.tzinfo is UTC
    assert isinstance(row.created_at, datetime)
