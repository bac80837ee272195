"""Seed 003's order queries, answered by the database: one order by id or client order id,
the active orders, the recent completed ones, counts by status and totals. Read-only.

Every function takes an Engine (a session is opened and closed) or the caller's Session,
and returns frozen dataclasses or dicts of plain values (Decimal money, aware UTC times,
the domain's enums), never ORM objects, so results outlive the session that read them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Select, func, select
from sqlalchemy.orm import Session

from core.enums import (
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    Intent,
    OrderClass,
    OrderOrigin,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from models.accounts import get_account
from models.orders import Account, ArchivedOrder, Order
from models.outbox import OutboxEvent

Source = Engine | Session

# What ``totals`` counts as failed and as cancelled (the split is in ``counts_by_status``):
# failed orders ended without the fill the service asked for and without being asked to
# stop (the broker refused them, or their time in force ran out); cancelled ones were
# stopped on request (a cancel, or a replacement that took their place).
FAILED_STATUSES: frozenset[OrderStatus] = frozenset({OrderStatus.REJECTED, OrderStatus.EXPIRED})
CANCELLED_STATUSES: frozenset[OrderStatus] = frozenset({OrderStatus.CANCELED, OrderStatus.REPLACED})


class AmbiguousClientOrderId(LookupError):
    """A client order id used in more than one account, asked for without naming one:
    client order ids are unique per account only, so the caller must say which."""

    def __init__(self, client_order_id: str, accounts: list[str]) -> None:
        self.client_order_id = client_order_id
        self.accounts = accounts
        super().__init__(
            f"client order id {client_order_id!r} is used in {len(accounts)} accounts "
            f"({', '.join(accounts)}): name the account"
        )


@dataclass(frozen=True, slots=True)
class OrderView:
    """One order as a reader sees it: terms, progress, trading context and times."""

    order_id: str
    account: str  # the account's name
    account_id: str
    client_order_id: str
    broker_order_id: str | None
    origin: OrderOrigin
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal | None  # None for a notional order
    limit_price: Decimal | None
    stop_price: Decimal | None
    requested_price: Decimal | None
    status: OrderStatus
    raw_status: str | None  # the broker's own status string
    filled_quantity: Decimal  # the sum of the recorded fills
    broker_filled_quantity: Decimal  # what the broker reports filled
    average_fill_price: Decimal | None
    fees: Decimal
    intent: Intent | None
    decision_id: str | None
    trade_id: str | None
    anomaly_count: int
    last_error: str | None
    created_at: datetime
    submitted_at: datetime | None
    accepted_at: datetime | None
    filled_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime
    last_checked_at: datetime | None
    lost_at: datetime | None  # set while reconciliation holds the order lost at the broker
    replaces_id: str | None = None  # the order this one replaced (ordersync's id)
    replaced_by_id: str | None = None  # the order that replaced this one
    order_class: OrderClass = OrderClass.SIMPLE
    parent_id: str | None = None  # the order this exit leg was made with
    notional: Decimal | None = None  # the amount of money a notional order is for

    @property
    def is_active(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def fill_gap(self) -> Decimal:
        """Quantity the broker reports filled that has no recorded fill yet."""
        return max(self.broker_filled_quantity - self.filled_quantity, Decimal(0))


@dataclass(frozen=True, slots=True)
class Totals:
    """Seed 003's statistics, from the database rather than a process's memory."""

    tracked: int  # every order (of the account), whatever its status
    active: int  # not terminal: PENDING_NEW, NEW, PARTIALLY_FILLED, PENDING_CANCEL
    filled: int  # FILLED
    failed: int  # REJECTED or EXPIRED (FAILED_STATUSES)
    cancelled: int  # CANCELED or REPLACED (CANCELLED_STATUSES), partly filled ones too
    events_published: int  # outbox events the relay has handed to the stream
    events_waiting: int  # outbox events not published yet


_COLUMNS: tuple[Any, ...] = (  # in OrderView's order, the account's name left out
    Order.id, Order.account_id, Order.client_order_id, Order.broker_order_id,
    Order.origin, Order.symbol, Order.side, Order.order_type, Order.time_in_force,
    Order.quantity, Order.limit_price, Order.stop_price, Order.requested_price, Order.status,
    Order.raw_status, Order.filled_quantity, Order.broker_filled_quantity,
    Order.average_fill_price, Order.fees, Order.intent, Order.decision_id, Order.trade_id,
    Order.anomaly_count, Order.last_error, Order.created_at, Order.submitted_at,
    Order.accepted_at, Order.filled_at, Order.closed_at, Order.updated_at,
    Order.last_checked_at, Order.lost_at, Order.replaces_id, Order.replaced_by_id,
    Order.order_class, Order.parent_id, Order.notional,
)  # fmt: skip


def _orders() -> Select[Any]:
    """Columns, not entities: nothing lands in (or is refreshed from) the session's map.
    No join either: the planner then has one table to choose an index for."""
    return select(*_COLUMNS)


def _views(session: Session, query: Select[Any], names: dict[str, str] | None = None
           ) -> list[OrderView]:  # fmt: skip
    rows = session.execute(query).all()
    if names is None:
        names = _account_names(session) if rows else {}
    return [OrderView(row[0], names[row[1]], *row[1:]) for row in rows]


def _account_names(session: Session) -> dict[str, str]:
    """Account id -> name: one read of a table with a row per tenant."""
    return {i: n for i, n in session.execute(select(Account.id, Account.name))}


@contextmanager
def reading(source: Source) -> Iterator[Session]:
    """The caller's session as it is, or a short one of our own on an engine."""
    if isinstance(source, Session):
        yield source
        return
    with Session(source) as session:
        yield session


def account_id_of(session: Session, account: str | None) -> str | None:
    """The account's id by name; ``UnknownAccount`` when there is none, so a typo is loud."""
    return None if account is None else get_account(session, account).id


def get_order(source: Source, order_id: str) -> OrderView | None:
    """The order with this id (ordersync's UUID), or None."""
    with reading(source) as session:
        found = _views(session, _orders().where(Order.id == order_id))
        return found[0] if found else None


def get_order_by_client_id(
    source: Source, client_order_id: str, account: str | None = None
) -> OrderView | None:
    """The order with this client order id in ``account``, or in whichever account has it;
    ``AmbiguousClientOrderId`` when, no account named, more than one account has it."""
    with reading(source) as session:
        # Every account named, so each is a probe of the unique (account, client order id)
        # index: no index leads with client_order_id alone.
        if account is None:
            names = _account_names(session)
        else:
            names = {get_account(session, account).id: account}
        query = _orders().where(
            Order.account_id.in_(list(names)), Order.client_order_id == client_order_id
        )
        found = _views(session, query, names)
        if len(found) > 1:
            raise AmbiguousClientOrderId(client_order_id, sorted(v.account for v in found))
        return found[0] if found else None


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """What ``list_orders`` selects; ``statuses`` None means every status."""

    statuses: frozenset[OrderStatus] | None = OPEN_STATUSES
    symbol: str | None = None
    intent: Intent | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


def list_orders(
    session: Session, account_id: str, where: OrderFilter, *, limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[OrderView]:  # fmt: skip
    """One account's orders, newest first, ``limit`` at most, continuing after the
    (created_at, id) of the last one a previous page returned (keyset pagination: pages
    neither skip nor repeat an order while new ones arrive)."""
    query = _orders().where(Order.account_id == account_id)
    if where.statuses is not None:
        query = query.where(Order.status.in_(sorted(where.statuses)))
    if where.symbol is not None:
        query = query.where(Order.symbol == where.symbol)
    if where.intent is not None:
        query = query.where(Order.intent == where.intent)
    if where.created_after is not None:
        query = query.where(Order.created_at >= where.created_after)
    if where.created_before is not None:
        query = query.where(Order.created_at < where.created_before)
    if after is not None:
        at, order_id = after
        query = query.where(
            (Order.created_at < at) | ((Order.created_at == at) & (Order.id < order_id))
        )
    query = query.order_by(Order.created_at.desc(), Order.id.desc()).limit(limit)
    return _views(session, query)


def active_orders(
    source: Source, symbol: str | None = None, account: str | None = None
) -> list[OrderView]:
    """Orders not yet terminal, optionally of one symbol and/or account, oldest first."""
    with reading(source) as session:
        query = _orders().where(Order.status.in_(sorted(OPEN_STATUSES)))
        if symbol is not None:
            query = query.where(Order.symbol == symbol)
        if (account_id := account_id_of(session, account)) is not None:
            query = query.where(Order.account_id == account_id)
        return _views(session, query.order_by(Order.created_at, Order.id))


def recent_completed(
    source: Source, limit: int = 50, account: str | None = None
) -> list[OrderView]:
    """Terminal orders, the most recently closed first, at most ``limit`` of them (orders
    purged past retention are in ``archived_orders``, not here)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    with reading(source) as session:
        # closed_at is set exactly when an order becomes terminal: its index serves the order.
        query = _orders().where(
            Order.closed_at.is_not(None), Order.status.in_(sorted(TERMINAL_STATUSES))
        )
        if (account_id := account_id_of(session, account)) is not None:
            query = query.where(Order.account_id == account_id)
        query = query.order_by(Order.closed_at.desc(), Order.id.desc()).limit(limit)
        return _views(session, query)


def counts_by_status(
    source: Source, account: str | None = None, *, include_archived: bool = False
) -> dict[OrderStatus, int]:
    """How many orders are in each status (every status present, zeros too); with
    ``include_archived``, orders purged past retention count as well (a scan of the
    archive, for reports rather than dashboards)."""
    with reading(source) as session:
        return _counts(session, account_id_of(session, account), include_archived)


def _counts(session: Session, account_id: str | None, include_archived: bool
            ) -> dict[OrderStatus, int]:  # fmt: skip
    counts = dict.fromkeys(OrderStatus, 0)
    tables: list[type[Order] | type[ArchivedOrder]] = [Order]
    if include_archived:
        tables.append(ArchivedOrder)
    for table in tables:
        query = select(table.status, func.count()).group_by(table.status)
        if account_id is not None:
            query = query.where(table.account_id == account_id)
        for status, count in session.execute(query):
            counts[OrderStatus(status)] += int(count)
    return counts


def totals(source: Source, account: str | None = None, *, include_archived: bool = False) -> Totals:
    """Seed 003's ``get_stats``: tracked, active, filled, failed, cancelled, and the outbox's
    published and waiting events. Published events are deleted past retention, so that
    figure covers the retention window; with an account, only events of its orders still
    in ``orders`` count."""
    with reading(source) as session:
        account_id = account_id_of(session, account)
        counts = _counts(session, account_id, include_archived)
        published, waiting = _events(session, account_id)
    return Totals(
        tracked=sum(counts.values()),
        active=_sum(counts, OPEN_STATUSES),
        filled=counts[OrderStatus.FILLED],
        failed=_sum(counts, FAILED_STATUSES),
        cancelled=_sum(counts, CANCELLED_STATUSES),
        events_published=published,
        events_waiting=waiting,
    )


def _sum(counts: Mapping[OrderStatus, int], statuses: frozenset[OrderStatus]) -> int:
    return sum(counts[s] for s in statuses)


def _events(session: Session, account_id: str | None) -> tuple[int, int]:
    """(published, waiting): ``count(published_at)`` counts the published ones."""
    query = select(func.count(OutboxEvent.published_at), func.count())
    if account_id is not None:
        query = query.join(Order, Order.id == OutboxEvent.order_id)
        query = query.where(Order.account_id == account_id)
    published, total = session.execute(query.select_from(OutboxEvent)).one()
    return int(published), int(total) - int(published)
