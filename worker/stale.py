"""Which open orders are stale, by class: an I/O-free classifier and the one query feeding it.

Classes (each threshold a setting; an order is stale once its age is *more than* it):

- ``market_not_terminal``: a market order still open ``stale_market_after_s`` after creation;
- ``pending_new``: PENDING_NEW (never acknowledged) for more than ``stale_pending_after_s``;
- ``pending_cancel``: PENDING_CANCEL since its last change more than ``stale_pending_after_s``;
- ``unchecked``: not checked at the broker (or, never checked, not since creation) for more
  than ``stale_unchecked_after_s`` (default twice the sweep interval);
- ``lost``: declared lost by reconciliation (``lost_at`` set).

A lost order counts only as ``lost``: it is already diagnosed, and would otherwise sit in the
other classes too. The other classes may overlap (a PENDING_NEW market order can be both).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from core.enums import OPEN_STATUSES, OrderStatus, OrderType
from models.orders import Order
from ordersync.settings import Settings

MARKET_NOT_TERMINAL: Final = "market_not_terminal"
PENDING_NEW: Final = "pending_new"
PENDING_CANCEL: Final = "pending_cancel"
UNCHECKED: Final = "unchecked"
LOST: Final = "lost"
STALE_CLASSES: Final[tuple[str, ...]] = (
    MARKET_NOT_TERMINAL, PENDING_NEW, PENDING_CANCEL, UNCHECKED, LOST,
)  # fmt: skip
IDS_CAP: Final = 50


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """The columns of an open order that staleness depends on."""

    id: str
    status: OrderStatus
    order_type: OrderType
    created_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None
    lost_at: datetime | None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Ages (seconds) beyond which an order is stale in its class."""

    market_after_s: float
    pending_after_s: float
    unchecked_after_s: float

    @classmethod
    def of(cls, settings: Settings) -> Thresholds:
        return cls(settings.stale_market_after_s, settings.stale_pending_after_s,
                   settings.stale_unchecked_after_s)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StaleClass:
    """One class's count (all of them) and ids (the first ``IDS_CAP``, oldest first)."""

    name: str
    count: int
    order_ids: tuple[str, ...]


def stale_classes(order: OrderSnapshot, now: datetime, thresholds: Thresholds) -> list[str]:
    """The classes one order falls in (empty when it is fine or already terminal)."""
    if order.status.is_terminal:
        return []
    if order.lost_at is not None:
        return [LOST]

    def older(since: datetime, limit_s: float) -> bool:
        return now - since > timedelta(seconds=limit_s)

    found = []
    if order.order_type is OrderType.MARKET and older(order.created_at, thresholds.market_after_s):
        found.append(MARKET_NOT_TERMINAL)
    if order.status is OrderStatus.PENDING_NEW and older(
        order.created_at, thresholds.pending_after_s
    ):
        found.append(PENDING_NEW)
    if order.status is OrderStatus.PENDING_CANCEL and older(
        order.updated_at, thresholds.pending_after_s
    ):
        found.append(PENDING_CANCEL)
    if older(order.last_checked_at or order.created_at, thresholds.unchecked_after_s):
        found.append(UNCHECKED)
    return found


def classify(
    orders: Iterable[OrderSnapshot],
    now: datetime,
    thresholds: Thresholds,
    *,
    ids_cap: int = IDS_CAP,
) -> dict[str, StaleClass]:
    """Every class (zero counts included), counting all orders and listing the oldest ids."""
    members: dict[str, list[OrderSnapshot]] = {name: [] for name in STALE_CLASSES}
    for order in orders:
        for name in stale_classes(order, now, thresholds):
            members[name].append(order)
    return {
        name: StaleClass(name, len(found), tuple(o.id for o in _oldest(found)[:ids_cap]))
        for name, found in members.items()
    }


def _oldest(orders: list[OrderSnapshot]) -> list[OrderSnapshot]:
    return sorted(orders, key=lambda o: (o.created_at, o.id))


def load_candidates(
    session: Session, now: datetime, thresholds: Thresholds, account_id: str | None = None
) -> list[OrderSnapshot]:
    """Open orders (of one account, or all) that may be stale, in one query of only the
    needed columns.

    The WHERE clause is a cheap superset of :func:`stale_classes` (same cut-offs), so a
    healthy system with many resting orders streams almost nothing; the classifier decides.
    """
    query = select(
        Order.id, Order.status, Order.order_type, Order.created_at, Order.updated_at,
        Order.last_checked_at, Order.lost_at,
    ).where(Order.status.in_(OPEN_STATUSES), _maybe_stale(now, thresholds))  # fmt: skip
    if account_id is not None:
        query = query.where(Order.account_id == account_id)
    return [OrderSnapshot(*row) for row in session.execute(query)]


def _maybe_stale(now: datetime, thresholds: Thresholds) -> ColumnElement[bool]:
    def cutoff(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    unchecked = cutoff(thresholds.unchecked_after_s)
    return or_(
        Order.lost_at.is_not(None),
        and_(Order.order_type == OrderType.MARKET,
             Order.created_at < cutoff(thresholds.market_after_s)),
        and_(Order.status == OrderStatus.PENDING_NEW,
             Order.created_at < cutoff(thresholds.pending_after_s)),
        and_(Order.status == OrderStatus.PENDING_CANCEL,
             Order.updated_at < cutoff(thresholds.pending_after_s)),
        Order.last_checked_at < unchecked,
        and_(Order.last_checked_at.is_(None), Order.created_at < unchecked),
    )  # fmt: skip


def counts(classes: Mapping[str, StaleClass]) -> dict[str, int]:
    return {name: c.count for name, c in classes.items()}
