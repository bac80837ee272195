"""Webhook delivery of outbox events: one row per (endpoint, event), and a cursor per
endpoint saying up to which outbox id every event has its row.

Rows hold no URL and no secret: an endpoint is known here by its configured name only. A
row goes with its outbox event (ON DELETE CASCADE) when the purge removes the event; the
purge keeps events whose delivery is still pending (``worker.webhooks.held_for_delivery``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import BigId, UTCDateTime


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or its order's earlier event)
    DELIVERED = "delivered"  # the endpoint answered 2xx
    DEAD = "dead"  # max attempts failed: waits for `ordersync events replay`


class WebhookEndpointState(Base):
    """Where fan-out stands for one endpoint: every outbox event with an id up to
    ``last_outbox_id`` has its delivery row (or was written before the endpoint existed).

    The cursor passes a gap in the ids only below ``final_outbox_id``: every id up to it is
    final, committed or never to be (PostgreSQL; see ``worker/webhooks.py``). A gap above it
    is watched: ``watch_head_id`` is the highest id visible when it was seen, and
    ``watch_writers`` the transactions then writing to the outbox; once every one of them
    has ended, every id up to the head is final.
    """

    __tablename__ = "webhook_endpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_outbox_id: Mapped[int] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    final_outbox_id: Mapped[int] = mapped_column(BigId, default=0, server_default="0")
    watch_head_id: Mapped[int | None] = mapped_column(BigId)
    # PostgreSQL virtual transaction ids, space-separated (never reused by the server).
    watch_writers: Mapped[str | None] = mapped_column(Text)


class WebhookDelivery(Base):
    """One event for one endpoint: pending until a 2xx, dead after max attempts."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    outbox_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("outbox_events.id", ondelete="CASCADE")
    )
    # Copied from the event: an order's later event waits while an earlier one is pending.
    order_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, name="webhook_delivery_status", native_enum=False,
             create_constraint=True, length=16,
             values_callable=lambda members: [m.value for m in members]),
    )  # fmt: skip
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What went wrong, by exception type or HTTP status only: never a URL or a secret.
    last_error: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        # Outbox id first: it serves the cascade, the purge's check and fan-out's lookup.
        UniqueConstraint("outbox_id", "endpoint"),
        Index("ix_webhook_deliveries_due", "endpoint", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_order", "endpoint", "order_id", "outbox_id"),
    )
