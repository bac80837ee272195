"""Exit legs: the orders a broker makes with a bracket, OTO or OCO order are recorded as
orders of their own, linked to their parent and to the parent's trade.

A leg is never placed by us: it comes in the parent's report (the placement's answer, a
look-up, a check), held until the parent fills. Each is registered once, from its own part
of the report, then tracked like any order; a take-profit or stop-loss of an entry is that
trade's exit, so its fill closes the trade.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from brokers.base import OrderReport
from models.base import new_id
from models.enums import Intent, OrderStatus, ReportSource
from models.orders import Order
from models.repository import apply_to_order
from worker.context import WorkerContext
from worker.fills import adopt_parked
from worker.replacements import inherited_trade_id, note_registered
from worker.reports import log_anomalies

logger = logging.getLogger(__name__)


def leg_intent(parent: Order) -> Intent | None:
    """An entry's legs close what it opens; an exit's (an OCO pair) close the same trade."""
    return Intent.EXIT if parent.intent is Intent.ENTRY else parent.intent


def unregistered(session: Session, account_id: str, report: OrderReport) -> list[OrderReport]:
    """The report's legs that have no row yet."""
    if not report.legs:
        return []
    ids = [leg.broker_order_id for leg in report.legs]
    known = set(session.scalars(select(Order.broker_order_id).where(
        Order.account_id == account_id, Order.broker_order_id.in_(ids),
    )))  # fmt: skip
    return [leg for leg in report.legs if leg.broker_order_id not in known]


def register_legs(
    ctx: WorkerContext, parent_id: str, report: OrderReport, source: ReportSource
) -> list[str]:
    """Rows for the legs in the parent's ``report`` that have none yet: their ids (to be
    watched). A leg registered meanwhile by another path is left to it."""
    if not report.legs:
        return []
    with ctx.sessions() as session:
        parent = session.get(Order, parent_id)
        if parent is None:
            return []
        missing = unregistered(session, parent.account_id, report)
    registered = [leg_id for leg in missing
                  if (leg_id := _register(ctx, parent_id, leg, source)) is not None]  # fmt: skip
    return registered


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
            time_in_force=leg.time_in_force, quantity=leg.quantity,
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
