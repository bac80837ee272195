"""Exit legs: the orders a broker makes with a bracket, OTO or OCO order are recorded as
orders of their own, linked to their parent and to the parent's trade.

A leg is never placed by us: it comes in the parent's report (the placement's answer, a
look-up, a check), held until the parent fills. Each is registered once, from its own part
of the report, then tracked like any order; a take-profit or stop-loss of an entry is that
trade's exit, so its fill closes the trade.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.enums import Intent, OrderStatus, ReportSource
from core.reports import OrderReport
from models.base import new_id
from models.ledger import annotate_intent
from models.orders import Order, OrderEvent
from models.repository import apply_to_order
from worker.context import WorkerContext
from worker.fills import adopt_parked
from worker.locks import write_order
from worker.replacements import inherited_trade_id, note_registered
from worker.reports import log_anomalies

logger = logging.getLogger(__name__)


def leg_intent(parent: Order) -> Intent | None:
    """An entry's legs close what it opens; an exit's (an OCO pair) close the same trade."""
    return Intent.EXIT if parent.intent is Intent.ENTRY else parent.intent


def unregistered(session: Session, account_id: str, report: OrderReport
                 ) -> tuple[list[OrderReport], list[str]]:  # fmt: skip
    """The report's legs that have no row yet, and the ids of rows that are its legs but
    do not know it (adopted as strangers by a sweep that saw them first)."""
    if not report.legs:
        return [], []
    ids = [leg.broker_order_id for leg in report.legs]
    rows = session.execute(select(Order.broker_order_id, Order.id).where(
        Order.account_id == account_id, Order.broker_order_id.in_(ids),
        Order.parent_id.is_(None),
    )).all()  # fmt: skip
    known = {broker_id: row_id for broker_id, row_id in rows}
    linked = set(session.scalars(select(Order.broker_order_id).where(
        Order.account_id == account_id, Order.broker_order_id.in_(ids),
        Order.parent_id.is_not(None),
    )))  # fmt: skip
    missing = [
        leg
        for leg in report.legs
        if leg.broker_order_id not in known and leg.broker_order_id not in linked
    ]
    return missing, [row_id for broker_id, row_id in known.items() if broker_id]  # fmt: skip


def register_legs(
    ctx: WorkerContext, parent_id: str, report: OrderReport, source: ReportSource
) -> list[str]:
    """Rows for the legs in the parent's ``report`` that have none yet, and the parent's
    context for rows that are its legs without knowing it: their ids (to be watched). A leg
    registered meanwhile by another path is left to it."""
    if not report.legs:
        return []
    with ctx.sessions() as session:
        parent = session.get(Order, parent_id)
        if parent is None:
            return []
        missing, strangers = unregistered(session, parent.account_id, report)
    registered = [leg_id for leg in missing
                  if (leg_id := _register(ctx, parent_id, leg, source)) is not None]  # fmt: skip
    for row_id in strangers:
        if _claim(ctx, parent_id, row_id, source):
            registered.append(row_id)
    return registered


def pass_on(session: Session, parent: Order, now: datetime) -> None:
    """The parent's intent, decision and trade, told only now (``track_order``), reach its
    legs: their recorded fills are replayed into the trade, as the parent's are."""
    legs = session.scalars(select(Order).where(Order.parent_id == parent.id)
                           .order_by(Order.id).with_for_update())  # fmt: skip
    for leg in legs:
        annotate_intent(session, leg, intent=leg_intent(parent), decision_id=parent.decision_id,
                        trade_id=inherited_trade_id(parent), now=now)  # fmt: skip


def _claim(ctx: WorkerContext, parent_id: str, row_id: str, source: ReportSource) -> bool:
    """A leg recorded without its parent (adopted as a stranger) takes the parent's link
    and context; its fills go to the parent's trade from now on (replayed, once)."""

    def claim(session: Session, row: Order) -> bool:
        parent = session.get(Order, parent_id)
        if parent is None or row.parent_id is not None:
            return False
        now = ctx.now()
        row.parent_id = parent.id
        annotate_intent(session, row, intent=leg_intent(parent), decision_id=parent.decision_id,
                        trade_id=inherited_trade_id(parent), now=now)  # fmt: skip
        session.add(OrderEvent(
            order_id=row.id, kind="leg_of", from_status=row.status, to_status=row.status,
            filled_quantity=row.filled_quantity, source=source, at=now,
            detail=f"a leg of order {parent.id} (broker order {parent.broker_order_id}), "
                   "recorded before its parent named it",
        ))  # fmt: skip
        return True

    claimed = write_order(ctx.sessions, row_id, claim, what="linking a leg", for_update=True)
    if claimed:
        logger.warning("order %s is a leg of order %s: linked, and its fills given to the "
                       "parent's trade", row_id, parent_id)  # fmt: skip
    return bool(claimed)


def _register(ctx: WorkerContext, parent_id: str, leg: OrderReport, source: ReportSource
              ) -> str | None:  # fmt: skip
    now = ctx.now()
    with ctx.sessions() as session:
        parent = session.get(Order, parent_id)
        if parent is None:
            return None
        row = Order(
            id=new_id(), account_id=parent.account_id, broker=parent.broker,
            origin=parent.origin,
            client_order_id=leg.client_order_id or f"broker-{leg.broker_order_id}",
            broker_order_id=leg.broker_order_id, symbol=leg.symbol, side=leg.side,
            intent=leg_intent(parent), decision_id=parent.decision_id,
            trade_id=inherited_trade_id(parent), order_type=leg.order_type,
            time_in_force=leg.time_in_force, quantity=leg.quantity, notional=leg.notional,
            limit_price=leg.limit_price, stop_price=leg.stop_price,
            requested_price=leg.limit_price or leg.stop_price, order_class=leg.order_class,
            parent_id=parent.id, status=OrderStatus.PENDING_NEW,
            created_at=leg.created_at, updated_at=now,
            submitted_at=leg.submitted_at or leg.created_at, check_count=1,
            last_checked_at=now,
        )  # fmt: skip
        note_registered(session, row, source, now,
                        f"{leg.order_type.value} leg of order {parent.id} (broker order "
                        f"{parent.broker_order_id}, {parent.order_class.value}), made by the "
                        "broker")  # fmt: skip
        try:
            session.flush()
            applied = apply_to_order(session, row, leg, now=now, source=source)
            session.commit()
        except IntegrityError:  # registered meanwhile by another path
            session.rollback()
            return None
        log_anomalies(row, applied)
        registered, account_id = row.id, row.account_id
    adopt_parked(ctx, account_id, leg.broker_order_id)
    logger.info("order %s: its %s leg, broker order %s, is tracked as order %s", parent_id,
                leg.order_type.value, leg.broker_order_id, registered)  # fmt: skip
    return registered
