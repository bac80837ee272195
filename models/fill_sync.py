"""What fill syncing must not lose with Redis: each account's cursor in the broker's fill
listing, and fills parked for orders not known by broker id yet."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.types import BigId, UTCDateTime


class FillCursor(Base):
    """Where the account's forward fill sync goes on from (a broker page token): one for the
    whole account (``symbol`` ''), or one per symbol where the broker lists fills so."""

    __tablename__ = "fill_cursors"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    cursor: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ParkedFill(Base):
    """A fill the broker listed for an order we cannot match yet (its placement answer is
    still being committed, or it was placed elsewhere); applied once the order is known."""

    __tablename__ = "parked_fills"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    broker_order_id: Mapped[str] = mapped_column(String(128))
    broker_fill_id: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)
    parked_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("account_id", "broker_order_id", "broker_fill_id"),
        Index("ix_parked_fills_account_order", "account_id", "broker_order_id"),
    )
