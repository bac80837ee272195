"""The one path every broker report takes into the database: load the order (locked for
update where the database can), run the state machine, write, commit. A concurrent writer
is detected (version counter, unique fill id) and the apply is retried on fresh state."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from brokers.base import FillReport, OrderReport
from models.enums import ReportSource
from models.orders import Order
from models.repository import apply_to_order
from models.state_machine import Applied, Verdict
from worker.context import WorkerContext

logger = logging.getLogger(__name__)
ATTEMPTS = 5


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
                if checked:
                    order.check_count += 1
                    order.last_checked_at = now
                _log_anomalies(order, applied)
                return applied
        except (StaleDataError, IntegrityError) as error:
            logger.info("order %s changed under us (attempt %d): %s", order_id, attempt, error)
    raise RuntimeError(f"order {order_id}: could not apply a report after {ATTEMPTS} attempts")


def apply_fills(
    ctx: WorkerContext, account_id: str, fills: Iterable[FillReport], source: ReportSource
) -> tuple[int, list[FillReport]]:
    """Apply fills to the orders they name; returns (recorded, fills for unknown orders)."""
    by_order: dict[str, list[FillReport]] = {}
    for fill in fills:
        by_order.setdefault(fill.broker_order_id, []).append(fill)
    if not by_order:
        return 0, []
    with ctx.sessions() as session:
        rows = session.execute(
            select(Order.broker_order_id, Order.id).where(
                Order.account_id == account_id, Order.broker_order_id.in_(list(by_order))
            )
        ).all()
    ids = {broker_id: order_id for broker_id, order_id in rows}
    recorded, unknown = 0, []
    for broker_id, order_fills in by_order.items():
        order_id = ids.get(broker_id)
        if order_id is None:
            unknown.extend(order_fills)
            continue
        for fill in order_fills:
            applied = apply_in_new_session(ctx, order_id, fill, source)
            if applied is not None and applied.new_fills:
                recorded += len(applied.new_fills)
    return recorded, unknown


def _log_anomalies(order: Order, applied: Applied) -> None:
    if applied.verdict is Verdict.ANOMALY:
        for entry in applied.anomalies:
            logger.error(
                "anomaly on order %s (broker %s, client %s): %s",
                order.id, order.broker_order_id, order.client_order_id, entry.detail,
            )  # fmt: skip
