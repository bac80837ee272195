"""The transactional outbox: every state change adds its event row in the same transaction
as the change, so an event exists exactly when its change does. A relay
(``worker/outbox.py``) publishes the rows later, in id order, at least once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.enums import OrderClass, OrderStatus
from models.base import Base, new_id
from models.orders import Order
from models.state_machine import Applied, HistoryKind
from models.types import BigId, UTCDateTime


class EventKind(StrEnum):
    ORDER_PLACED = "ORDER_PLACED"
    ORDER_ACCEPTED = "ORDER_ACCEPTED"
    ORDER_PARTIALLY_FILLED = "ORDER_PARTIALLY_FILLED"
    ORDER_FILLED = "ORDER_FILLED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_REJECTED = "ORDER_REJECTED"
    ORDER_EXPIRED = "ORDER_EXPIRED"
    ORDER_ERROR = "ORDER_ERROR"
    TRADE_OPENED = "TRADE_OPENED"
    TRADE_CLOSED = "TRADE_CLOSED"


# Seed 003's order (error 9, filled 8, placed 7, cancelled 6), the rest placed beside them.
PRIORITY: Mapping[EventKind, int] = {
    EventKind.ORDER_ERROR: 9,
    EventKind.ORDER_FILLED: 8,
    EventKind.TRADE_CLOSED: 8,
    EventKind.ORDER_PARTIALLY_FILLED: 8,
    EventKind.ORDER_PLACED: 7,
    EventKind.ORDER_ACCEPTED: 7,
    EventKind.TRADE_OPENED: 7,
    EventKind.ORDER_REJECTED: 6,
    EventKind.ORDER_CANCELLED: 6,
    EventKind.ORDER_EXPIRED: 6,
}

# The status an order reaches, and the event that says so. PENDING_CANCEL says nothing yet;
# fill events come from recorded fills, so they carry real quantities and prices.
_ON_STATUS: Mapping[OrderStatus, EventKind] = {
    OrderStatus.NEW: EventKind.ORDER_ACCEPTED,
    OrderStatus.CANCELED: EventKind.ORDER_CANCELLED,
    OrderStatus.REPLACED: EventKind.ORDER_CANCELLED,
    OrderStatus.REJECTED: EventKind.ORDER_REJECTED,
    OrderStatus.EXPIRED: EventKind.ORDER_EXPIRED,
}


class OutboxEvent(Base):
    """One event waiting for (or done with) publication. ``id`` orders events, globally
    and so per order; ``event_id`` is what consumers dedupe on."""

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[str | None] = mapped_column(String(36), index=True)
    trade_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # AUTOINCREMENT on SQLite: ids never come back after a purge (webhook cursors rely on it)
    __table_args__ = (
        Index("ix_outbox_events_unpublished", "published_at", "id"),
        {"sqlite_autoincrement": True},
    )

    def message(self) -> dict[str, str]:
        return stream_fields(self.event_id, self.kind, self.priority, self.order_id,
                             self.trade_id, self.created_at, self.payload)  # fmt: skip


def stream_fields(
    event_id: str, kind: str, priority: int, order_id: str | None, trade_id: str | None,
    created_at: datetime, payload: str,
) -> dict[str, str]:  # fmt: skip
    """The fields a stream entry (or a webhook body) carries."""
    return {
        "event_id": event_id, "kind": kind, "priority": str(priority),
        "order_id": order_id or "", "trade_id": trade_id or "",
        "created_at": created_at.isoformat(), "data": payload,
    }  # fmt: skip


def fully_filled(status: OrderStatus, filled: Decimal, broker_filled: Decimal) -> bool:
    """FILLED with every fill recorded: only then is the order's fill data final."""
    return status is OrderStatus.FILLED and filled >= broker_filled


def order_event_kinds(
    applied: Applied, *, was_filled: bool, repeated_anomaly: bool = False
) -> Iterator[EventKind]:
    """The events one applied report produces: its status changes in order, then what its
    recorded fills did (``was_filled``: the order was fully filled before). A REJECTED of ours
    that the broker overturns is announced as ORDER_ACCEPTED (the broker has the order after
    all), once, before whatever the broker's report goes on to say."""
    announced: set[EventKind] = set()
    for entry in applied.history:
        if entry.kind is HistoryKind.ANOMALY:
            if not repeated_anomaly:
                yield EventKind.ORDER_ERROR
        elif entry.kind is HistoryKind.TRANSITION:
            kind = EventKind.ORDER_ACCEPTED if entry.overturns else _ON_STATUS.get(entry.to_status)
            if kind is not None and not (kind is EventKind.ORDER_ACCEPTED and kind in announced):
                announced.add(kind)
                yield kind
    state = applied.state
    if fully_filled(state.status, state.filled_quantity, state.broker_filled_quantity):
        if not was_filled:
            yield EventKind.ORDER_FILLED
    elif applied.new_fills:
        yield EventKind.ORDER_PARTIALLY_FILLED


def order_data(order: Order) -> dict[str, Any]:
    """The order as an event carries it: ids, terms, progress and the trading context."""
    return {
        "order_id": order.id, "account_id": order.account_id,
        "client_order_id": order.client_order_id, "broker_order_id": order.broker_order_id,
        "origin": order.origin, "symbol": order.symbol, "side": order.side,
        "order_type": order.order_type, "time_in_force": order.time_in_force,
        "quantity": order.quantity, "notional": order.notional,
        "limit_price": order.limit_price,
        "stop_price": order.stop_price, "requested_price": order.requested_price,
        "status": order.status, "raw_status": order.raw_status,
        "filled_quantity": order.filled_quantity,
        "broker_filled_quantity": order.broker_filled_quantity,
        "average_fill_price": order.average_fill_price, "fees": order.fees,
        "intent": order.intent, "decision_id": order.decision_id, "trade_id": order.trade_id,
        "created_at": order.created_at, "updated_at": order.updated_at,
        "last_error": order.last_error, "replaces_id": order.replaces_id,
        "replaced_by_id": order.replaced_by_id,
        "order_class": order.order_class or OrderClass.SIMPLE, "parent_id": order.parent_id,
    }  # fmt: skip


def add_order_event(session: Session, order: Order, kind: EventKind, *, now: datetime) -> None:
    add_event(session, kind, order_data(order), now=now, order_id=order.id,
              trade_id=order.trade_id)  # fmt: skip


def add_event(
    session: Session, kind: EventKind, data: Mapping[str, Any], *, now: datetime,
    order_id: str | None = None, trade_id: str | None = None,
) -> OutboxEvent:  # fmt: skip
    """Stage an event in the caller's transaction: it commits, or vanishes, with the change."""
    event = OutboxEvent(
        kind=kind.value, priority=PRIORITY[kind], order_id=order_id, trade_id=trade_id,
        payload=json.dumps(data, default=_plain, sort_keys=True), created_at=now,
    )  # fmt: skip
    session.add(event)
    return event


def _plain(value: object) -> str:
    """Decimals as exact strings, times as ISO 8601, enums as their values."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    raise TypeError(f"not serializable in an event: {type(value).__name__}")


_OUTBOX_WRITERS = text(
    "SELECT DISTINCT virtualtransaction FROM pg_locks"
    " WHERE locktype = 'relation' AND mode = 'RowExclusiveLock' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND relation = CAST(:table AS regclass) AND pid IS DISTINCT FROM pg_backend_pid()"
)  # a prepared transaction has no pid: it counts too


def outbox_writers(session: Session) -> set[str]:
    """PostgreSQL: virtual ids of the other transactions now holding the outbox's ROW
    EXCLUSIVE lock, which every transaction that took an outbox id holds until it ends (see
    worker/webhooks.py, "Id gaps")."""
    rows = session.scalars(_OUTBOX_WRITERS, {"table": OutboxEvent.__tablename__})
    return {str(row) for row in rows}
