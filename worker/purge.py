"""Cleanup: closed orders older than the retention move out of the hot tables, in batches.

Each batch is one transaction (select, archive, delete), so a crash loses nothing and
duplicates nothing; a run stops after a few batches so it never holds the database long.
Refused task calls and archived orders past their own retentions go the same way, so no
table grows forever.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, Select, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from core.enums import TERMINAL_STATUSES
from models.fill_sync import ParkedFill
from models.orders import ArchivedOrder, Fill, InvalidTaskCall, Order, OrderEvent
from models.types import canonical
from worker import outbox, webhooks
from worker.context import WorkerContext

log = logging.getLogger(__name__)

PurgeMode = Literal["archive", "delete"]
DEFAULT_MAX_BATCHES = 20
DOCUMENT_VERSION = 1


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What one run moved; ``more`` means eligible orders remain for the next run."""

    mode: PurgeMode
    orders: int = 0
    archived: int = 0  # archive rows written; an order archived by a crashed run is not counted
    fills: int = 0
    events: int = 0
    outbox_events: int = 0  # published events past retention (worker/outbox.py)
    invalid_calls: int = 0  # refused task calls past ``invalid_calls_retention_s``
    expired_archives: int = 0  # archived orders past ``archive_retention_s``
    parked_fills: int = 0  # fills parked for an order never known, past ``retention_s``
    batches: int = 0
    more: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def purge_closed_orders(ctx: WorkerContext, *, max_batches: int | None = None) -> PurgeResult:
    """The Celery task's body: purge with the settings and clock of ``ctx``."""
    settings = ctx.settings
    batches = DEFAULT_MAX_BATCHES if max_batches is None else max_batches
    now = ctx.now()
    result = purge(
        ctx.sessions,
        now=now,
        retention_s=settings.retention_s,
        mode=settings.purge_mode,
        batch_size=settings.purge_batch_size,
        max_batches=batches,
    )
    published = outbox.purge_published(
        ctx.sessions, before=now - timedelta(seconds=settings.retention_s),
        batch_size=settings.purge_batch_size, max_batches=batches,
        keep=webhooks.held_for_webhooks(settings),
    )  # fmt: skip
    invalid_calls = purge_older(
        ctx.sessions, InvalidTaskCall.id, InvalidTaskCall.at,
        before=now - timedelta(seconds=settings.invalid_calls_retention_s),
        batch_size=settings.purge_batch_size, max_batches=batches,
    )  # fmt: skip
    archives = purge_older(
        ctx.sessions, ArchivedOrder.id, ArchivedOrder.archived_at,
        before=now - timedelta(seconds=settings.archive_retention_s),
        batch_size=settings.purge_batch_size, max_batches=batches,
    )  # fmt: skip
    parked = purge_older(
        ctx.sessions, ParkedFill.id, ParkedFill.parked_at,
        before=now - timedelta(seconds=settings.retention_s),
        batch_size=settings.purge_batch_size, max_batches=batches,
    )  # fmt: skip
    return dataclasses.replace(result, outbox_events=published, invalid_calls=invalid_calls,
                               expired_archives=archives, parked_fills=parked)  # fmt: skip


def purge_older(
    sessions: sessionmaker[Session], key: InstrumentedAttribute[Any],
    at: InstrumentedAttribute[datetime], *, before: datetime, batch_size: int,
    max_batches: int,
) -> int:  # fmt: skip
    """Delete the rows of ``key``'s table whose ``at`` is before ``before``, a bounded batch
    per transaction, at most ``max_batches``; the next run goes on. Returns how many went."""
    query = select(key).where(at < before).order_by(key).limit(batch_size)
    deleted = 0
    for _ in range(max_batches):
        with sessions.begin() as session:
            ids = session.scalars(query).all()
            if ids:
                _delete(session, delete(key.class_).where(key.in_(ids)))
        deleted += len(ids)
        if len(ids) < batch_size:
            break
    return deleted


def purge(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    retention_s: float,
    mode: PurgeMode,
    batch_size: int,
    max_batches: int = DEFAULT_MAX_BATCHES,
) -> PurgeResult:
    """Archive (or delete) terminal orders closed before ``now - retention_s``.

    An order is eligible when its status is terminal and its ``closed_at`` (``updated_at``
    when that is NULL) is older than the retention. Open orders are never touched. An order
    whose recorded fills do not cover the broker's filled quantity is kept: its
    reconciliation is unfinished, and the fills still to be fetched need the order row.
    """
    if max_batches < 1 or batch_size < 1:
        raise ValueError("max_batches and batch_size must be at least 1")
    cutoff = now - timedelta(seconds=retention_s)
    result = PurgeResult(mode=mode)
    while True:
        with sessions.begin() as session:
            batch = _purge_batch(session, cutoff=cutoff, now=now, mode=mode, limit=batch_size)
        if batch.orders == 0:
            break
        result = dataclasses.replace(
            result,
            orders=result.orders + batch.orders,
            archived=result.archived + batch.archived,
            fills=result.fills + batch.fills,
            events=result.events + batch.events,
            batches=result.batches + 1,
        )
        if batch.orders < batch_size:
            break
        if result.batches >= max_batches:
            with sessions() as session:
                more = bool(_eligible_ids(session, cutoff=cutoff, limit=1, lock=False))
            result = dataclasses.replace(result, more=more)
            break
    if result.orders:
        log.info("purge: %s", result.as_dict())
    return result


def _purge_batch(
    session: Session, *, cutoff: datetime, now: datetime, mode: PurgeMode, limit: int
) -> PurgeResult:
    """One transaction: pick and lock up to ``limit`` orders, archive them, delete them."""
    ids = _eligible_ids(session, cutoff=cutoff, limit=limit, lock=True)
    if not ids:
        return PurgeResult(mode)
    archived = _archive(session, ids, now=now) if mode == "archive" else 0
    # Children first and explicitly: ON DELETE CASCADE is not relied upon.
    fills = _delete(session, delete(Fill).where(Fill.order_id.in_(ids)))
    events = _delete(session, delete(OrderEvent).where(OrderEvent.order_id.in_(ids)))
    orders = _delete(session, delete(Order).where(Order.id.in_(ids)))
    return PurgeResult(mode, orders=orders, archived=archived, fills=fills, events=events)


def _eligible_ids(session: Session, *, cutoff: datetime, limit: int, lock: bool) -> list[str]:
    """Oldest first: by ``closed_at`` (its index), then rows closed without a ``closed_at``.

    ``broker_filled_quantity`` never falls below ``filled_quantity`` (the state machine raises
    it with every fill), so equality means no fill gap; it is exact on SQLite's canonical text.
    """
    base = select(Order.id).where(
        Order.status.in_(sorted(TERMINAL_STATUSES)),
        Order.filled_quantity == Order.broker_filled_quantity,
    )
    by_closed = base.where(Order.closed_at < cutoff).order_by(Order.closed_at, Order.id)
    ids = _ids(session, by_closed, limit, lock)
    if len(ids) < limit:
        by_updated = base.where(Order.closed_at.is_(None), Order.updated_at < cutoff)
        by_updated = by_updated.order_by(Order.updated_at, Order.id)
        ids += _ids(session, by_updated, limit - len(ids), lock)
    return ids


def _ids(session: Session, query: Select[Any], limit: int, lock: bool) -> list[str]:
    query = query.limit(limit)
    if lock:  # PostgreSQL: rows a writer holds are left for the next run (SQLite ignores it)
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def _delete(session: Session, statement: Any) -> int:
    result = session.execute(statement, execution_options={"synchronize_session": False})
    return int(cast(CursorResult[Any], result).rowcount)


def _archive(session: Session, ids: Sequence[str], *, now: datetime) -> int:
    """Write one archive row per order not archived yet; an existing row is left as is."""
    existing = set(session.scalars(select(ArchivedOrder.id).where(ArchivedOrder.id.in_(ids))))
    todo = [order_id for order_id in ids if order_id not in existing]
    if not todo:
        return 0
    orders = session.execute(select(Order.__table__).where(Order.id.in_(todo))).mappings()
    fills = _children(session, select(Fill.__table__).where(Fill.order_id.in_(todo))
                      .order_by(Fill.order_id, Fill.filled_at, Fill.id))  # fmt: skip
    events = _children(session, select(OrderEvent.__table__).where(OrderEvent.order_id.in_(todo))
                       .order_by(OrderEvent.order_id, OrderEvent.id))  # fmt: skip
    rows = [
        {
            "id": order["id"],
            "account_id": order["account_id"],
            "client_order_id": order["client_order_id"],
            "broker_order_id": order["broker_order_id"],
            "symbol": order["symbol"],
            "status": order["status"],
            "closed_at": order["closed_at"],
            "archived_at": now,
            "document": _document_json(
                order, fills.get(order["id"], []), events.get(order["id"], [])
            ),
        }
        for order in orders
    ]
    session.execute(_insert_ignoring_existing(session), rows)
    return len(rows)


def _children(session: Session, query: Select[Any]) -> dict[str, list[RowMapping]]:
    grouped: dict[str, list[RowMapping]] = {}
    for row in session.execute(query).mappings():
        grouped.setdefault(row["order_id"], []).append(row)
    return grouped


def _insert_ignoring_existing(session: Session) -> Any:
    """An archive row written meanwhile by a concurrent run is kept, not an error."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(ArchivedOrder).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "sqlite":
        return sqlite.insert(ArchivedOrder).on_conflict_do_nothing(index_elements=["id"])
    return insert(ArchivedOrder)


def _document_json(
    order: RowMapping,
    fills: Sequence[RowMapping],
    events: Sequence[RowMapping],
) -> str:
    """The archived document: every column of the order, its fills and its events."""
    document = {
        "version": DOCUMENT_VERSION,
        "order": _plain(order),
        "fills": [_plain(fill) for fill in fills],
        "events": [_plain(event) for event in events],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _plain(row: RowMapping) -> dict[str, Any]:
    return {key: _value(value) for key, value in row.items()}


def _value(value: Any) -> Any:
    """Decimals as exact strings, times as ISO 8601 UTC, enums as their values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return format(canonical(value), "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def find_archived(
    session: Session,
    *,
    account_id: str,
    client_order_id: str | None = None,
    broker_order_id: str | None = None,
) -> ArchivedOrder | None:
    """A purged order by its client and/or broker id (the latest archived, if reused)."""
    if client_order_id is None and broker_order_id is None:
        raise ValueError("give client_order_id or broker_order_id")
    query = select(ArchivedOrder).where(ArchivedOrder.account_id == account_id)
    if client_order_id is not None:
        query = query.where(ArchivedOrder.client_order_id == client_order_id)
    if broker_order_id is not None:
        query = query.where(ArchivedOrder.broker_order_id == broker_order_id)
    query = query.order_by(ArchivedOrder.archived_at.desc(), ArchivedOrder.id).limit(1)
    return session.scalars(query).first()


def archived_document(row: ArchivedOrder) -> dict[str, Any]:
    """The archived order as a dict: ``order``, ``fills``, ``events`` (JSON values)."""
    document = json.loads(row.document)
    assert isinstance(document, dict)
    return document
