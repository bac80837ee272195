"""Outbox events to webhooks: signed, retried with backoff, dead-lettered, in order per order.

Each run, per configured endpoint and under that endpoint's Redis lock:

1. **Fan-out**: every outbox event after the endpoint's cursor gets a ``pending`` delivery
   row. The events are read straight from the outbox, so webhooks wait for neither the
   stream relay nor Redis. Events past an id gap get their rows at once; only the cursor
   (every id up to it has its row) waits at a gap, until the gap is *final* (below).
2. **Send**: due rows in outbox id order, a bounded batch, skipping any whose order has an
   earlier event still pending (an order's events arrive in order; a dead one no longer
   holds the rest back). 2xx is delivered; anything else a failed attempt, retried after
   ``backoff * 2^(attempts-1)`` (capped), dead after ``max_attempts``. The first failure ends
   the endpoint's run, so a down endpoint gets one request per run, not a flood; when a
   retried event gets through, the endpoint is back and its waiting rows are due at once.

**Id gaps.** Fan-out reads only ids above the cursor, so the cursor must never pass an id
that may still commit: a gap is passed once it is final, never because time went by (a
transaction may hold its id for minutes, and ``created_at`` is the writer's clock).

- *SQLite*: one write transaction at a time, and ``AUTOINCREMENT`` takes each id above every
  id ever used, in the writer's transaction. So ids commit in increasing order, and an id
  missing below a committed one was rolled back (handed out again later, above) or purged:
  every gap below a visible event is final, and the cursor passes it at once.
- *PostgreSQL*: ids come from the outbox's sequence (``CACHE 1``, as migration 0004 makes
  it), taken by an ``INSERT INTO outbox_events`` after that statement has locked the table
  ``ROW EXCLUSIVE``, a lock held until its transaction ends. When the cursor meets a gap,
  fan-out reads the highest visible id, *then* the transactions holding that lock
  (``pg_locks``, by virtual transaction id, which the server never reuses) and keeps both
  with the cursor (``WebhookEndpointState.watch_*``). Every id up to that head was taken
  before the head was read, so its transaction was among those writers or had ended. A
  later run that finds none of them still holding the lock knows that every id up to the
  head is final, and records it (``final_outbox_id``); runs after it, whose snapshots see
  everything those writers committed, pass the gaps below it. Only the writers seen with
  the gap are waited for, so a busy outbox never stalls the cursor; an aborted id costs two
  more runs. (Transaction ids would not do: a transaction gets one at its first write,
  which may come after it took its outbox id.)

A new endpoint starts after the newest event written before its backfill window, a point in
the id order: everything after it is delivered, gaps included.

Delivery is at least once (a crash between a POST and its row's update sends it again), so
receivers dedupe on ``event_id``. URLs (they may carry tokens) and the secret are never
logged nor stored: endpoints are named, errors are an exception type or an HTTP status.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
import redis
from sqlalchemy import (
    ColumnElement,
    Exists,
    exists,
    false,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased, sessionmaker

from models.outbox import OutboxEvent, outbox_writers
from models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpointState
from ordersync.metrics import record
from ordersync.settings import Settings, WebhookEndpoint
from worker.context import WorkerContext
from worker.locks import HeldLock

logger = logging.getLogger("ordersync.webhooks")

LOCK_PREFIX: Final = "ordersync:lock:webhook:"
COUNTS_KEY: Final = "ordersync:webhooks:counts"  # endpoint -> JSON counts, for the status
EVENT_ID_HEADER: Final = "X-Ordersync-Event-Id"
TIMESTAMP_HEADER: Final = "X-Ordersync-Timestamp"
SIGNATURE_HEADER: Final = "X-Ordersync-Signature"
ATTEMPT_HEADER: Final = "X-Ordersync-Attempt"
# Above every id: on SQLite, every gap below a visible event is final.
_EVERY_ID: Final = 2**63 - 1
SIGNATURE_TOLERANCE_S: Final = 300.0


# --- signing ---------------------------------------------------------------------------------


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``timestamp + "." + body``: the timestamp is
    signed too, so a captured request cannot be replayed later with a fresh one."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: bytes, timestamp: str, body: bytes, signature: str, *, now_s: float,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:  # fmt: skip
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        fresh = abs(now_s - int(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def event_body(
    event_id: str, kind: str, priority: int, order_id: str | None, trade_id: str | None,
    created_at: datetime, payload: str,
) -> bytes:  # fmt: skip
    """The POST body: the event as the stream carries it, with ``data`` as an object."""
    return json.dumps(
        {"event_id": event_id, "kind": kind, "priority": priority, "order_id": order_id,
         "trade_id": trade_id, "created_at": created_at.isoformat(),
         "data": json.loads(payload)},
        separators=(",", ":"),
    ).encode()  # fmt: skip


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """The wait after the ``attempts``-th failure: base, doubling, capped."""
    return float(min(max_s, base_s * 2 ** min(attempts - 1, 62)))


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointRun:
    """One endpoint's part of a run (``ran`` False: another worker holds its lock)."""

    endpoint: str
    ran: bool = True
    fanned_out: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    pending: int = 0  # after the run
    dead_total: int = 0  # after the run
    error: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookRun:
    endpoints: tuple[EndpointRun, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"endpoints": [asdict(e) for e in self.endpoints]}


@dataclass(frozen=True, slots=True)
class DueEvent:
    """A delivery due now, with the event it carries."""

    delivery_id: int
    attempts: int  # so far
    event_id: str
    kind: str
    priority: int
    order_id: str | None
    trade_id: str | None
    created_at: datetime
    payload: str


@dataclass(frozen=True, slots=True)
class _Attempt:
    delivery_id: int
    attempts: int  # including this one
    error: str | None  # None: delivered


# --- the run ---------------------------------------------------------------------------------


def deliver_webhooks(
    ctx: WorkerContext, *, max_s: float = 5.0, transport: httpx.BaseTransport | None = None
) -> WebhookRun:
    """Fan out and send for each configured endpoint, for at most about ``max_s`` each;
    nothing configured: nothing done. ``transport`` is for tests."""
    settings = ctx.settings
    endpoints = settings.event_webhooks()
    if not endpoints:
        return WebhookRun()
    assert settings.event_webhook_secret is not None  # the settings insist on it
    secret = settings.event_webhook_secret.get_secret_value().encode()
    _redact_httpx_log(endpoints)
    runs = []
    with httpx.Client(timeout=settings.event_webhook_timeout_s, transport=transport,
                      follow_redirects=False) as client:  # fmt: skip
        for endpoint in endpoints:
            runs.append(_run_endpoint(ctx, client, endpoint, secret, max_s))
    return WebhookRun(tuple(runs))


def _run_endpoint(
    ctx: WorkerContext, client: httpx.Client, endpoint: WebhookEndpoint, secret: bytes,
    max_s: float,
) -> EndpointRun:  # fmt: skip
    s = ctx.settings
    ttl_s = max(30.0, 4 * max_s + 2 * s.event_webhook_timeout_s)
    lock = HeldLock(ctx.redis, LOCK_PREFIX + endpoint.name, ttl_s=ttl_s)
    try:
        held = lock.__enter__()
    except redis.RedisError as error:
        return EndpointRun(endpoint.name, ran=False, error=f"Redis unavailable: {error}")
    if not held:
        return EndpointRun(endpoint.name, ran=False)
    fanned = delivered = failed = dead = 0
    deadline = time.monotonic() + max_s
    try:
        while time.monotonic() < deadline:
            now = ctx.now()
            with ctx.sessions.begin() as session:
                batch = s.event_webhook_batch_size
                new = fan_out(session, endpoint.name, now=now, batch_size=batch,
                              backfill_s=s.event_webhook_backfill_s)  # fmt: skip
                due = due_deliveries(session, endpoint.name, now, batch)
            fanned += new
            attempts = _send(ctx, client, endpoint, secret, due, lock, deadline)
            died = record_attempts(ctx.sessions, endpoint.name, attempts, now=ctx.now(),
                                   settings=s)  # fmt: skip
            delivered += sum(a.error is None for a in attempts)
            failed += sum(a.error is not None for a in attempts)
            dead += died
            record.webhook_deliveries(endpoint.name, attempts=len(attempts),
                                      failed=sum(a.error is not None for a in attempts),
                                      dead=died)  # fmt: skip
            just_failed = bool(attempts) and attempts[-1].error is not None
            if just_failed or (not due and not new) or not lock.renew():
                break  # the endpoint looks down, nothing more to do, or the lock was lost
        pending, dead_total = _counts(ctx, endpoint.name)
    finally:
        with contextlib.suppress(redis.RedisError):  # else the lock expires by itself
            lock.__exit__(None, None, None)
    return EndpointRun(endpoint.name, True, fanned, delivered, failed, dead, pending, dead_total)


def fan_out(session: Session, endpoint: str, *, now: datetime, batch_size: int,
            backfill_s: float) -> int:  # fmt: skip
    """Give the next events after the endpoint's cursor their pending rows (a bounded
    batch) and move the cursor over what is covered, over a gap only once it is final.
    Returns how many rows were added."""
    state = session.get(WebhookEndpointState, endpoint)
    if state is None:
        start = _start_cursor(session, now - timedelta(seconds=backfill_s))
        state = WebhookEndpointState(name=endpoint, last_outbox_id=start, created_at=now,
                                     final_outbox_id=0)  # fmt: skip
        session.add(state)
        session.flush()
    head = session.scalar(select(func.max(OutboxEvent.id))) or 0
    if head < state.last_outbox_id:  # purged up to the top: SQLite may hand out old ids again
        logger.warning("event webhook %s: no outbox event left up to the cursor %d; "
                       "scanning from the start", endpoint, state.last_outbox_id)  # fmt: skip
        state.last_outbox_id = 0
    final = _final_up_to(session, state)
    covered = (
        exists()
        .where(WebhookDelivery.outbox_id == OutboxEvent.id, WebhookDelivery.endpoint == endpoint)
        .correlate(OutboxEvent)
    )
    new = session.execute(
        select(OutboxEvent.id, OutboxEvent.order_id)
        .where(OutboxEvent.id > state.last_outbox_id, ~covered)
        .order_by(OutboxEvent.id)
        .limit(batch_size)
    ).all()
    if new:
        session.execute(
            insert(WebhookDelivery),
            [{"endpoint": endpoint, "outbox_id": outbox_id, "order_id": order_id,
              "status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": now,
              "created_at": now} for outbox_id, order_id in new],
        )  # fmt: skip
    cursor, at_gap = _covered_up_to(session, state.last_outbox_id, covered, final=final,
                                    batch_size=batch_size)  # fmt: skip
    state.last_outbox_id = cursor  # an unchanged value is not written
    if at_gap and state.watch_head_id is None:
        _watch(session, state)
    return len(new)


def _start_cursor(session: Session, since: datetime) -> int:
    """A new endpoint starts after the newest event written before ``since`` (the backfill
    window): taken from before the window, never from inside it, where a transaction may
    still hold a lower id than the events already visible."""
    last = session.scalar(select(func.max(OutboxEvent.id)).where(OutboxEvent.created_at < since))
    return int(last or 0)


def _covered_up_to(
    session: Session, cursor: int, covered: Exists, *, final: int, batch_size: int
) -> tuple[int, bool]:
    """The cursor moved over consecutive covered events, and over a gap only when every id
    in it is at most ``final``; and whether it stopped at a gap it may not pass yet."""
    rows = session.execute(
        select(OutboxEvent.id, covered)
        .where(OutboxEvent.id > cursor)
        .order_by(OutboxEvent.id)
        .limit(batch_size)
    ).all()
    for outbox_id, has_row in rows:
        if not has_row:
            return cursor, False
        if outbox_id - 1 > max(cursor, final):
            return cursor, True
        cursor = outbox_id
    return cursor, False


def _final_up_to(session: Session, state: WebhookEndpointState) -> int:
    """Every outbox id up to the result is final: committed, or never to be. On PostgreSQL
    a watch whose writers have all ended raises it from the next run on, whose snapshots
    are taken after those writers ended, whatever the isolation level."""
    if _dialect(session) == "sqlite":
        return _EVERY_ID
    final = state.final_outbox_id
    if state.watch_head_id is not None:
        watched = set((state.watch_writers or "").split())
        if not watched & outbox_writers(session):
            state.final_outbox_id = max(final, state.watch_head_id)
            state.watch_head_id = state.watch_writers = None
    return final


def _watch(session: Session, state: WebhookEndpointState) -> None:
    """Keep the highest visible id, then the transactions writing to the outbox: in this
    order, every id up to the head was taken by one of them or by one that has ended."""
    state.watch_head_id = int(session.scalar(select(func.max(OutboxEvent.id))) or 0)
    state.watch_writers = " ".join(sorted(outbox_writers(session)))


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


_DUE_COLUMNS = (WebhookDelivery.id, WebhookDelivery.attempts, OutboxEvent.event_id,
                OutboxEvent.kind, OutboxEvent.priority, OutboxEvent.order_id,
                OutboxEvent.trade_id, OutboxEvent.created_at, OutboxEvent.payload)  # fmt: skip


def due_deliveries(session: Session, endpoint: str, now: datetime, limit: int) -> list[DueEvent]:
    """Pending rows whose time has come, oldest event first, none behind an earlier pending
    event of the same order (at most one per order, so a batch keeps each order's order)."""
    earlier = aliased(WebhookDelivery)
    blocked = (
        exists()
        .where(earlier.endpoint == WebhookDelivery.endpoint,
               earlier.order_id == WebhookDelivery.order_id,
               earlier.outbox_id < WebhookDelivery.outbox_id,
               earlier.status == DeliveryStatus.PENDING)
        .correlate(WebhookDelivery)
    )  # fmt: skip
    rows = session.execute(
        select(*_DUE_COLUMNS)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.outbox_id)
        .where(WebhookDelivery.endpoint == endpoint,
               WebhookDelivery.status == DeliveryStatus.PENDING,
               WebhookDelivery.next_attempt_at <= now, ~blocked)
        .order_by(WebhookDelivery.outbox_id)
        .limit(limit)
    ).all()  # fmt: skip
    return [DueEvent(*row) for row in rows]


def _send(
    ctx: WorkerContext, client: httpx.Client, endpoint: WebhookEndpoint, secret: bytes,
    due: Sequence[DueEvent], lock: HeldLock, deadline: float,
) -> list[_Attempt]:  # fmt: skip
    """POST the due events in order until one fails, time is up, or the lock is lost."""
    attempts: list[_Attempt] = []
    url = endpoint.url.get_secret_value()
    for d in due:
        body = event_body(d.event_id, d.kind, d.priority, d.order_id, d.trade_id, d.created_at,
                          d.payload)  # fmt: skip
        timestamp = str(int(ctx.now().timestamp()))
        headers = {
            "Content-Type": "application/json", "User-Agent": "ordersync-webhooks/1",
            EVENT_ID_HEADER: d.event_id, TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body), ATTEMPT_HEADER: str(d.attempts + 1),
        }  # fmt: skip
        error = _post(client, url, body, headers)
        attempts.append(_Attempt(d.delivery_id, d.attempts + 1, error))
        if error is not None:
            logger.warning("event webhook %s: event %s (%s, order %s) attempt %d failed: %s",
                           endpoint.name, d.event_id, d.kind, d.order_id or "-",
                           d.attempts + 1, error)  # fmt: skip
            break
        if time.monotonic() >= deadline or not lock.renew():
            break
    return attempts


def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> str | None:
    """None when the endpoint took it (2xx), else what went wrong, without the URL (an
    exception's text may hold it, so only its type is kept)."""
    try:
        response = client.post(url, content=body, headers=headers)
    except Exception as error:  # any failure to deliver is one failed attempt, never a crash
        return type(error).__name__
    if response.is_success:
        return None
    return f"HTTP {response.status_code}"


def record_attempts(
    sessions: sessionmaker[Session], endpoint: str, attempts: Sequence[_Attempt], *,
    now: datetime, settings: Settings,
) -> int:  # fmt: skip
    """Store a batch's outcomes in one transaction; returns how many went dead. A retried
    event getting through means the endpoint is back: its waiting rows are due now."""
    if not attempts:
        return 0
    dead = 0
    delivered = [a.delivery_id for a in attempts if a.error is None]
    with sessions.begin() as session:
        if delivered:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(delivered))
                .values(status=DeliveryStatus.DELIVERED, delivered_at=now, last_attempt_at=now,
                        attempts=WebhookDelivery.attempts + 1, last_error=None)
            )  # fmt: skip
        if any(a.error is None and a.attempts > 1 for a in attempts):
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.endpoint == endpoint,
                       WebhookDelivery.status == DeliveryStatus.PENDING,
                       WebhookDelivery.next_attempt_at > now)
                .values(next_attempt_at=now)
            )  # fmt: skip
        for attempt in (a for a in attempts if a.error is not None):
            gone = attempt.attempts >= settings.event_webhook_max_attempts
            wait = backoff_s(attempt.attempts, settings.event_webhook_backoff_s,
                             settings.event_webhook_max_backoff_s)  # fmt: skip
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == attempt.delivery_id)
                .values(attempts=attempt.attempts, last_attempt_at=now, last_error=attempt.error,
                        status=DeliveryStatus.DEAD if gone else DeliveryStatus.PENDING,
                        next_attempt_at=now + timedelta(seconds=0 if gone else wait))
            )  # fmt: skip
            if gone:
                dead += 1
                _log_dead(session, endpoint, attempt)
    return dead


def _log_dead(session: Session, endpoint: str, attempt: _Attempt) -> None:
    row = session.execute(
        select(OutboxEvent.event_id, OutboxEvent.kind, OutboxEvent.order_id)
        .join(WebhookDelivery, WebhookDelivery.outbox_id == OutboxEvent.id)
        .where(WebhookDelivery.id == attempt.delivery_id)
    ).one()
    logger.error(
        "event webhook %s: event %s (%s, order %s) dead-lettered after %d attempts, last: %s; "
        "replay with `ordersync events replay --event-id %s --endpoint %s`",
        endpoint, row.event_id, row.kind, row.order_id or "-", attempt.attempts, attempt.error,
        row.event_id, endpoint,
    )  # fmt: skip


def _counts(ctx: WorkerContext, endpoint: str) -> tuple[int, int]:
    """Pending and dead rows of the endpoint, also left in Redis for ``ordersync status``."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(WebhookDelivery.status, func.count())
            .where(WebhookDelivery.endpoint == endpoint,
                   WebhookDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.DEAD]))
            .group_by(WebhookDelivery.status)
        ).all()  # fmt: skip
        counts = {status: int(count) for status, count in rows}
    pending, dead = counts.get(DeliveryStatus.PENDING, 0), counts.get(DeliveryStatus.DEAD, 0)
    with contextlib.suppress(redis.RedisError):  # the counts are a convenience
        ctx.redis.hset(COUNTS_KEY, endpoint, json.dumps(
            {"pending": pending, "dead": dead, "at": ctx.now().isoformat()}
        ))  # fmt: skip
    return pending, dead


# --- for the purge ---------------------------------------------------------------------------


def held_for_delivery(endpoints: Collection[str]) -> ColumnElement[bool]:
    """A condition on ``OutboxEvent``: true while one of ``endpoints`` still needs the event
    (its delivery is pending, or fan-out has not reached it). Dead deliveries do not hold
    it: they are replayable until the event's retention ends."""
    if not endpoints:
        return false()
    pending = exists().where(
        WebhookDelivery.outbox_id == OutboxEvent.id,
        WebhookDelivery.endpoint.in_(list(endpoints)),
        WebhookDelivery.status == DeliveryStatus.PENDING,
    )
    not_reached = exists().where(
        WebhookEndpointState.name.in_(list(endpoints)),
        WebhookEndpointState.last_outbox_id < OutboxEvent.id,
    )
    return pending | not_reached


def held_for_webhooks(settings: Settings) -> ColumnElement[bool]:
    """``held_for_delivery`` for the configured endpoints (false when there are none)."""
    return held_for_delivery([e.name for e in settings.event_webhooks()])


# --- logging ---------------------------------------------------------------------------------


class _RedactUrls(logging.Filter):
    """Replaces the endpoints' URLs in httpx's "HTTP Request: POST <url>" lines."""

    def __init__(self) -> None:
        super().__init__()
        self.names: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(str(a) in self.names for a in record.args):
            record.args = tuple(self.names.get(str(a), a) for a in record.args)
        return True


_REDACT = _RedactUrls()


def _redact_httpx_log(endpoints: Sequence[WebhookEndpoint]) -> None:
    for endpoint in endpoints:
        url = str(httpx.URL(endpoint.url.get_secret_value()))
        _REDACT.names[url] = f"<event webhook {endpoint.name}>"
    httpx_logger = logging.getLogger("httpx")
    if _REDACT not in httpx_logger.filters:
        httpx_logger.addFilter(_REDACT)
