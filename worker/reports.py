"""The one path every broker report takes into the database: load the order (locked for
update where the database can), run the state machine, write, commit. A concurrent writer
is detected (version counter, unique fill id) and the apply is retried on fresh state."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from core.enums import ReportSource
from core.reports import FillReport, OrderReport
from models.orders import Order
from models.reconciliation import derived_fill
from models.repository import (
    apply_to_order,
    load_state,
    record_applied,
    recorded_fill_keys,
    state_of,
)
from models.state_machine import Applied, Verdict, apply_fill, fill_keys
from worker.context import WorkerContext

logger = logging.getLogger(__name__)
ATTEMPTS = 5
# PostgreSQL broke a lock cycle (40P01) or a serialization conflict (40001): the
# transaction is rolled back whole, so applying it again on fresh state is safe.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def raced(error: Exception) -> bool:
    """A concurrent writer got in first: retry the whole apply on fresh state."""
    if isinstance(error, StaleDataError | IntegrityError):
        return True
    return isinstance(error, OperationalError) and (
        getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES
    )


def apply_in_new_session(
    ctx: WorkerContext,
    order_id: str,
    report: OrderReport | FillReport,
    source: ReportSource,
    *,
    submitted: bool = False,
    checked: bool = False,
) -> Applied | None:
    """Apply one report to one order; None if the order does not exist."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with ctx.sessions.begin() as session:
                order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
                if order is None:
                    return None
                now = ctx.now()
                applied = apply_to_order(session, order, report, now=now, source=source)
                if submitted and order.submitted_at is None:
                    order.submitted_at = now
                if submitted or checked:
                    order.last_error = None
                if checked:  # the broker showed the order: any misses are forgiven
                    order.check_count += 1
                    order.last_checked_at = now
                    order.miss_count, order.lost_at = 0, None
                log_anomalies(order, applied)
                return applied
        except (StaleDataError, IntegrityError, OperationalError) as error:
            if not raced(error):
                raise
            logger.info("order %s changed under us (attempt %d): %s", order_id, attempt, error)
    raise RuntimeError(f"order {order_id}: could not apply a report after {ATTEMPTS} attempts")


def record_derived_fill(
    ctx: WorkerContext, order_id: str, report: OrderReport, source: ReportSource
) -> bool:
    """For a broker without a fill listing: record the fill its cumulative figures imply
    (``derived_fill``); False when they imply none or it was recorded before."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with ctx.sessions.begin() as session:
                order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
                if order is None:
                    return False
                now = ctx.now()
                fill = derived_fill(load_state(session, order), report, now=now)
                if fill is None:
                    return False
                applied = apply_to_order(session, order, fill, now=now, source=source)
                log_anomalies(order, applied)
                return bool(applied.new_fills)
        except (StaleDataError, IntegrityError, OperationalError) as error:
            if not raced(error):
                raise
            logger.info("order %s changed under us (attempt %d): %s", order_id, attempt, error)
    raise RuntimeError(f"order {order_id}: could not record a derived fill after {ATTEMPTS} tries")


def apply_fills(
    ctx: WorkerContext, account_id: str, fills: Sequence[FillReport], source: ReportSource
) -> tuple[int, list[FillReport]]:
    """Apply a page of fills in one transaction; returns (recorded, fills for unknown orders).

    A concurrent writer on any of the page's orders rolls the page back and it is applied
    again on fresh state (fills are idempotent by id, so nothing is counted twice).
    """
    if not fills:
        return 0, []
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with ctx.sessions.begin() as session:
                return _apply_fill_page(session, account_id, fills, source, ctx.now())
        except (StaleDataError, IntegrityError, OperationalError) as error:
            if not raced(error):
                raise
            logger.info("fill page raced another writer (attempt %d): %s", attempt, error)
    raise RuntimeError(f"account {account_id}: could not apply a fill page")


def _apply_fill_page(
    session: Session, account_id: str, fills: Sequence[FillReport], source: ReportSource,
    now: datetime,
) -> tuple[int, list[FillReport]]:  # fmt: skip
    broker_ids = sorted({f.broker_order_id for f in fills})
    orders = {
        o.broker_order_id: o
        for o in session.scalars(
            select(Order)
            .where(Order.account_id == account_id, Order.broker_order_id.in_(broker_ids))
            .order_by(Order.id)
            .with_for_update()
        )
    }
    filled = [o.id for o in orders.values() if o.filled_quantity]
    known = recorded_fill_keys(session, filled)
    recorded, unknown = 0, []
    for fill in fills:
        order = orders.get(fill.broker_order_id)
        if order is None:
            unknown.append(fill)
            continue
        keys = known.setdefault(order.id, set())
        if not keys.isdisjoint(fill_keys(fill.broker_fill_id, fill.cum_quantity)):
            continue
        state = state_of(order, frozenset(keys))
        applied = apply_fill(state, fill, now=now)
        record_applied(session, order, applied, now=now, source=source)
        keys |= applied.state.fill_ids
        recorded += len(applied.new_fills)
        log_anomalies(order, applied)
    return recorded, unknown


def log_anomalies(order: Order, applied: Applied) -> None:
    if applied.verdict is Verdict.ANOMALY:
        for entry in applied.anomalies:
            logger.error(
                "anomaly on order %s (broker %s, client %s): %s",
                order.id, order.broker_order_id, order.client_order_id, entry.detail,
            )  # fmt: skip
