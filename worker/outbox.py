"""The outbox relay: events committed with their changes are published to the Redis Stream
``ordersync:events`` in id order (so in order per order), at least once.

One relay at a time (a Redis lock). A batch is marked published only after Redis took it:
while Redis is down the events wait in the table and nothing is lost; a crash between the
two steps publishes the batch again, and consumers dedupe on ``event_id``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.outbox import OutboxEvent, stream_fields
from worker.context import WorkerContext
from worker.locks import HeldLock

logger = logging.getLogger(__name__)
STREAM = "ordersync:events"
LOCK = "ordersync:lock:outbox_relay"
PUBLISHED_KEY = "ordersync:stats:events_published"


@dataclass(frozen=True, slots=True)
class RelayResult:
    published: int = 0
    batches: int = 0
    ran: bool = True
    error: str | None = None  # Redis refused a batch: it stays in the outbox


def relay_events(ctx: WorkerContext, *, max_s: float = 5.0) -> RelayResult:
    """Publish waiting events, batch after batch, for at most about ``max_s``."""
    s = ctx.settings
    lock = HeldLock(ctx.redis, LOCK, ttl_s=max(30.0, 4 * max_s))
    try:
        held = lock.__enter__()
    except redis.RedisError as error:
        return RelayResult(ran=False, error=f"Redis unavailable: {error}")
    if not held:
        return RelayResult(ran=False)
    published = batches = 0
    deadline = time.monotonic() + max_s
    try:
        while time.monotonic() < deadline:
            count = _publish_batch(ctx, s.outbox_batch_size, s.events_stream_maxlen)
            if count == 0:
                break
            published, batches = published + count, batches + 1
            if not lock.renew():  # another relay may hold it now: two would break the order
                break
    except redis.RedisError as error:
        logger.warning("outbox relay: Redis refused a batch, events wait: %s", error)
        return RelayResult(published, batches, error=str(error))
    finally:
        with contextlib.suppress(redis.RedisError):  # else the lock expires by itself
            lock.__exit__(None, None, None)
    return RelayResult(published, batches)


_COLUMNS = (OutboxEvent.id, OutboxEvent.event_id, OutboxEvent.kind, OutboxEvent.priority,
            OutboxEvent.order_id, OutboxEvent.trade_id, OutboxEvent.created_at,
            OutboxEvent.payload)  # fmt: skip


def _publish_batch(ctx: WorkerContext, batch_size: int, maxlen: int) -> int:
    """One batch: read (plain rows, no ORM objects), publish, mark in one statement."""
    with ctx.sessions.begin() as session:
        rows = session.execute(
            select(*_COLUMNS)
            .where(OutboxEvent.published_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(batch_size)
        ).all()
        if not rows:
            return 0
        pipe = ctx.events.pipeline(transaction=False)
        for _, event_id, kind, priority, order_id, trade_id, created_at, payload in rows:
            fields: dict[Any, Any] = stream_fields(  # typed loosely: redis-py's key types
                event_id, kind, priority, order_id, trade_id, created_at, payload
            )
            pipe.xadd(STREAM, fields, maxlen=maxlen, approximate=True)
        pipe.incrby(PUBLISHED_KEY, len(rows))
        pipe.execute()
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_([row[0] for row in rows]))
            .values(published_at=ctx.now())
        )
        return len(rows)


def purge_published(
    sessions: sessionmaker[Session], *, before: datetime, batch_size: int, max_batches: int,
    keep: ColumnElement[bool] | None = None,
) -> int:  # fmt: skip
    """Delete events published before ``before``, a bounded batch per transaction; events
    still waiting, or matching ``keep`` (a webhook still needs them), are never touched.
    Returns how many went."""
    query = select(OutboxEvent.id).where(
        OutboxEvent.published_at.is_not(None), OutboxEvent.published_at < before
    )
    if keep is not None:
        query = query.where(~keep)
    deleted = 0
    for _ in range(max_batches):
        with sessions.begin() as session:
            ids = session.scalars(query.order_by(OutboxEvent.id).limit(batch_size)).all()
            if ids:
                session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < batch_size:
            break
    return deleted


def waiting_events(ctx: WorkerContext) -> int:
    """Events not yet published: grows while Redis is down, drains when it returns."""
    with ctx.sessions() as session:
        count = session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
        )
        return int(count or 0)
