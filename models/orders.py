"""The tables: accounts (tenants), orders, fills, and the per-order status history."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.enums import (
    BrokerKind,
    Intent,
    OrderClass,
    OrderOrigin,
    OrderStatus,
    OrderType,
    ReportSource,
    Side,
    TimeInForce,
)
from models.base import Base, new_id
from models.types import Money, UTCDateTime


def _enum(enum_cls: type, name: str) -> Enum:
    # Stored as VARCHAR plus a CHECK constraint: portable, and new values need only a migration.
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda members: [m.value for m in members],
    )


class Account(Base):
    """A tenant at one broker. Credentials live in the environment; we store only the name of
    the variable prefix (``<credentials_env>_KEY_ID`` / ``<credentials_env>_SECRET_KEY``)."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    broker: Mapped[BrokerKind] = mapped_column(_enum(BrokerKind, "broker_kind"))
    base_url: Mapped[str] = mapped_column(String(255))
    credentials_env: Mapped[str] = mapped_column(String(128))
    rate_limit_per_min: Mapped[int] = mapped_column(Integer, default=200)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("rate_limit_per_min > 0", name="rate_limit_positive"),
        CheckConstraint(
            "credentials_env <> '' AND credentials_env NOT LIKE '%=%'",
            name="credentials_env_is_a_name",
        ),
    )


# An order names a positive quantity, or no quantity and a positive notional (never both:
# the broker sizes a notional order).
QUANTITY_OR_NOTIONAL = (
    "(quantity IS NOT NULL AND quantity > 0 AND notional IS NULL)"
    " OR (quantity IS NULL AND notional IS NOT NULL AND notional > 0)"
)


class Order(Base):
    """The local record of one order, kept true against the broker."""

    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    broker: Mapped[BrokerKind] = mapped_column(_enum(BrokerKind, "broker_kind"))
    client_order_id: Mapped[str] = mapped_column(String(128))
    broker_order_id: Mapped[str | None] = mapped_column(String(128))
    origin: Mapped[OrderOrigin] = mapped_column(_enum(OrderOrigin, "order_origin"))

    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[Side] = mapped_column(_enum(Side, "order_side"))
    intent: Mapped[Intent | None] = mapped_column(_enum(Intent, "order_intent"))
    decision_id: Mapped[str | None] = mapped_column(String(128))
    trade_id: Mapped[str | None] = mapped_column(String(64))
    order_type: Mapped[OrderType] = mapped_column(_enum(OrderType, "order_type"))
    time_in_force: Mapped[TimeInForce] = mapped_column(_enum(TimeInForce, "time_in_force"))
    # What was ordered: a quantity, or for a notional order an amount of money (the broker
    # sizes it; its quantity is then unknown, and what it filled is in the fills).
    quantity: Mapped[Decimal | None] = mapped_column(Money())
    notional: Mapped[Decimal | None] = mapped_column(Money())
    limit_price: Mapped[Decimal | None] = mapped_column(Money())
    stop_price: Mapped[Decimal | None] = mapped_column(Money())
    requested_price: Mapped[Decimal | None] = mapped_column(Money())

    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "order_status"))
    raw_status: Mapped[str | None] = mapped_column(String(64))
    filled_quantity: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    broker_filled_quantity: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    fill_notional: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    average_fill_price: Mapped[Decimal | None] = mapped_column(Money())
    fees: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    # Of filled_quantity, what its trade has taken (or given up as a mismatch); an exit's
    # fills recorded before its entry's wait until they come (models/ledger.py).
    trade_applied_quantity: Mapped[Decimal] = mapped_column(
        Money(), default=Decimal(0), server_default="0"
    )
    check_count: Mapped[int] = mapped_column(Integer, default=0)
    anomaly_count: Mapped[int] = mapped_column(Integer, default=0)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    filled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    broker_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    # Reconciliation: consecutive sweeps/lookups that did not find the order at the broker,
    # and when it was declared lost (cleared when the broker shows it again).
    miss_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lost_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Placement: nothing is sent to the broker after ``place_deadline`` (placed orders
    # only); ``sent_at`` is set while a placement request may have reached the broker, so
    # only a row without it provably never did.
    place_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The broker's last report of the order as applied (JSON, raw body included): what the
    # API's order detail shows. Deferred: nothing that tracks the order loads it.
    last_report: Mapped[str | None] = mapped_column(Text, deferred=True)
    last_report_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A replacement chain, by our ids (no foreign key: either row may be archived first).
    # ``replaces_id`` is set when the replacing row is written; ``replaced_by_id`` once the
    # broker reports this order replaced by it.
    replaces_id: Mapped[str | None] = mapped_column(String(36))
    replaced_by_id: Mapped[str | None] = mapped_column(String(36))
    # Exit legs the broker made with an order (bracket, OTO, OCO) name it as their parent,
    # by our id (no foreign key, as above).
    order_class: Mapped[OrderClass] = mapped_column(
        _enum(OrderClass, "order_class"), default=OrderClass.SIMPLE, server_default="simple"
    )
    parent_id: Mapped[str | None] = mapped_column(String(36))
    # The exit legs asked for with it: what its placement sends (the legs' own rows hold
    # their terms as the broker made them).
    take_profit_limit_price: Mapped[Decimal | None] = mapped_column(Money())
    stop_loss_stop_price: Mapped[Decimal | None] = mapped_column(Money())
    stop_loss_limit_price: Mapped[Decimal | None] = mapped_column(Money())

    version: Mapped[int] = mapped_column(Integer, default=1)

    account: Mapped[Account] = relationship()
    fills: Mapped[list[Fill]] = relationship(
        back_populates="order", order_by="Fill.filled_at", cascade="all, delete-orphan"
    )
    events: Mapped[list[OrderEvent]] = relationship(
        back_populates="order", order_by="OrderEvent.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        UniqueConstraint("account_id", "client_order_id"),
        UniqueConstraint("account_id", "broker_order_id"),
        CheckConstraint(QUANTITY_OR_NOTIONAL, name="quantity_or_notional"),
        CheckConstraint("filled_quantity >= 0", name="filled_not_negative"),
        CheckConstraint("check_count >= 0", name="check_count_not_negative"),
        Index("ix_orders_status_last_checked", "status", "last_checked_at"),
        Index("ix_orders_account_symbol", "account_id", "symbol"),
        Index("ix_orders_account_created", "account_id", "created_at"),  # the API's pages
        Index("ix_orders_closed_at", "closed_at"),
        Index("ix_orders_replaces_id", "replaces_id"),
        Index("ix_orders_parent_id", "parent_id"),
    )

    @property
    def fill_gap(self) -> Decimal:
        """Quantity the broker reports filled that has no recorded fill yet."""
        return max(self.broker_filled_quantity - self.filled_quantity, Decimal(0))


class Fill(Base):
    """One execution, recorded exactly once per (order, broker fill id)."""

    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    broker_fill_id: Mapped[str] = mapped_column(String(128))
    quantity: Mapped[Decimal] = mapped_column(Money())
    price: Mapped[Decimal] = mapped_column(Money())
    fee: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    filled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[ReportSource] = mapped_column(_enum(ReportSource, "report_source"))
    # The order's filled quantity with this execution, where the broker reports it: one
    # execution seen under two ids (a listing's and a stream's) is recorded once.
    cum_quantity: Mapped[Decimal | None] = mapped_column(Money())

    order: Mapped[Order] = relationship(back_populates="fills")

    __table_args__ = (
        UniqueConstraint("order_id", "broker_fill_id"),
        Index(
            "ux_fills_order_cum_quantity",
            "order_id",
            "cum_quantity",
            unique=True,
            postgresql_where=text("cum_quantity IS NOT NULL"),
            sqlite_where=text("cum_quantity IS NOT NULL"),
        ),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("price > 0", name="price_positive"),
    )


class OrderEvent(Base):
    """The status history: one row per applied change or recorded anomaly."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[OrderStatus | None] = mapped_column(_enum(OrderStatus, "from_status"))
    to_status: Mapped[OrderStatus | None] = mapped_column(_enum(OrderStatus, "to_status"))
    filled_quantity: Mapped[Decimal] = mapped_column(Money())
    raw_status: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[ReportSource] = mapped_column(_enum(ReportSource, "report_source"))
    detail: Mapped[str | None] = mapped_column(Text)
    report: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    order: Mapped[Order] = relationship(back_populates="events")


class InvalidTaskCall(Base):
    """A refused task call, kept where an operator sees it (arguments redacted)."""

    __tablename__ = "invalid_task_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_name: Mapped[str] = mapped_column(String(128), index=True)
    task_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    arguments: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)  # purged by age


class ArchivedOrder(Base):
    """A closed order moved out of the hot tables: the order with its fills and history as
    one JSON document, still findable by its ids."""

    __tablename__ = "archived_orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(36))
    client_order_id: Mapped[str] = mapped_column(String(128))
    broker_order_id: Mapped[str | None] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(32))
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "archived_status"))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    archived_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)  # purged by age
    document: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_archived_orders_account_client", "account_id", "client_order_id"),
        Index("ix_archived_orders_account_broker", "account_id", "broker_order_id"),
    )
