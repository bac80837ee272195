"""Following a replacement: when the broker reports an order ``replaced`` by another, the
other order takes its place in our record.

A replacement we asked for is linked to its row. One made outside ordersync (by another
client of the account, by the broker) is registered from the broker's report, inheriting
the replaced order's account, origin, intent, decision and trade: it carries the same
intention at new terms, so it is followed, not adopted as a stranger.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from brokers.errors import BrokerError
from core.enums import Intent, OrderStatus, ReportSource
from core.reports import OrderReport
from models.base import new_id
from models.ledger import trade_id_of
from models.orders import Order, OrderEvent
from models.outbox import EventKind, add_order_event
from models.repository import apply_to_order
from worker.context import AccountInfo, WorkerContext
from worker.fills import adopt_parked
from worker.locks import write_order
from worker.reports import apply_in_new_session, log_anomalies

logger = logging.getLogger(__name__)
LINKED = "replaced_by"  # the history row on the replaced order


def inherited_trade_id(order: Order) -> str | None:
    """The trade a replacement of ``order`` belongs to: an entry's, named or default."""
    return trade_id_of(order) if order.intent is Intent.ENTRY else order.trade_id


def unfollowed(order: Order, report: OrderReport) -> str | None:
    """The broker id of the order that replaced this one, while our record lacks the link."""
    if order.status is OrderStatus.REPLACED and order.replaced_by_id is None:
        return report.replaced_by
    return None


def follow(ctx: WorkerContext, order_id: str, replaced_by: str, source: ReportSource) -> str | None:
    """Our id of the order that replaced ``order_id`` (broker id ``replaced_by``): linked if
    we know it, else looked up and registered; None while the broker cannot show it."""
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None:
            return None
        if order.replaced_by_id is not None:
            return order.replaced_by_id
        account = ctx.account(session, id=order.account_id)
        known = _by_broker_id(session, order.account_id, replaced_by)
    if known is not None:
        _link(ctx, order_id, known, source)
        return known
    try:
        report = ctx.adapter(account).get_order(replaced_by)
    except BrokerError as error:
        logger.warning("order %s was replaced by broker order %s, which cannot be read yet: %s",
                       order_id, replaced_by, error)  # fmt: skip
        return None
    return register(ctx, account, order_id, report, source)


def register(
    ctx: WorkerContext, account: AccountInfo, replaced_id: str, report: OrderReport,
    source: ReportSource,
) -> str | None:  # fmt: skip
    """The replacing order's row, from the broker's report, linked both ways (None when the
    replaced row is gone); a row registered meanwhile by another path is linked instead."""
    now = ctx.now()
    if (ours := _ours_awaiting(ctx, account.id, replaced_id, report)) is not None:
        return ours
    with ctx.sessions() as session:
        old = session.get(Order, replaced_id, with_for_update=True)
        if old is None:
            return None
        new = Order(
            id=new_id(), account_id=old.account_id, broker=old.broker, origin=old.origin,
            client_order_id=report.client_order_id or f"broker-{report.broker_order_id}",
            broker_order_id=report.broker_order_id, symbol=report.symbol, side=report.side,
            intent=old.intent, decision_id=old.decision_id, trade_id=inherited_trade_id(old),
            order_type=report.order_type, time_in_force=report.time_in_force,
            quantity=report.quantity, notional=report.notional, limit_price=report.limit_price,
            stop_price=report.stop_price, requested_price=old.requested_price,
            status=OrderStatus.PENDING_NEW, created_at=report.created_at, updated_at=now,
            submitted_at=report.submitted_at or report.created_at, check_count=1,
            last_checked_at=now, replaces_id=old.id,
        )  # fmt: skip
        note_registered(session, new, source, now,
                        f"replaces order {old.id} (broker order {old.broker_order_id}): "
                        "replaced outside ordersync, found at the broker")  # fmt: skip
        try:
            session.flush()
            _note_link(session, old, new, now, source)
            applied = apply_to_order(session, new, report, now=now, source=source)
            session.commit()
        except (IntegrityError, StaleDataError):  # registered or changed meanwhile
            session.rollback()
            known = _by_broker_id(session, account.id, report.broker_order_id)
            if known is not None:
                _link(ctx, replaced_id, known, source)
                return known
            return _ours_awaiting(ctx, account.id, replaced_id, report)
        log_anomalies(new, applied)
        registered = new.id
    adopt_parked(ctx, account.id, report.broker_order_id)
    logger.warning("order %s was replaced outside ordersync by broker order %s: following it "
                   "as order %s", replaced_id, report.broker_order_id, registered)  # fmt: skip
    return registered


def note_registered(session: Session, row: Order, source: ReportSource, now: datetime,
                    detail: str) -> None:  # fmt: skip
    """A row the broker's report made known, with its ``created`` history and its event."""
    session.add(row)
    session.add(OrderEvent(
        order=row, kind="created", from_status=None, to_status=OrderStatus.PENDING_NEW,
        filled_quantity=Decimal(0), source=source, at=now, detail=detail,
    ))  # fmt: skip
    add_order_event(session, row, EventKind.ORDER_PLACED, now=now)


def _ours_awaiting(ctx: WorkerContext, account_id: str, replaced_id: str,
                   report: OrderReport) -> str | None:  # fmt: skip
    """Our own replacement of the order, still without its broker id (its answer lost or
    not committed yet), when the report is of it (its client order id): the report is
    applied to it, which stores the broker id, and both rows are linked."""
    if not report.client_order_id:
        return None
    with ctx.sessions() as session:
        mine = session.scalar(select(Order.id).where(
            Order.account_id == account_id, Order.client_order_id == report.client_order_id,
            Order.replaces_id == replaced_id,
        ))  # fmt: skip
    if mine is None:
        return None
    apply_in_new_session(ctx, mine, report, ReportSource.SWEEP, checked=True)
    _link(ctx, replaced_id, mine, ReportSource.SWEEP)
    adopt_parked(ctx, account_id, report.broker_order_id)
    return mine


def _by_broker_id(session: Session, account_id: str, broker_order_id: str) -> str | None:
    found = select(Order.id).where(Order.account_id == account_id,
                                   Order.broker_order_id == broker_order_id)  # fmt: skip
    return session.scalar(found)


def _link(ctx: WorkerContext, replaced_id: str, replacing_id: str, source: ReportSource) -> None:
    """Both rows name each other (on fresh state: monitors write them too)."""

    def link(session: Session, old: Order) -> None:
        new = session.get(Order, replacing_id)
        if new is not None and old.replaced_by_id is None:
            _note_link(session, old, new, ctx.now(), source)

    write_order(ctx.sessions, replaced_id, link, what="linking a replacement")


def _note_link(session: Session, old: Order, new: Order, now: datetime,
               source: ReportSource) -> None:  # fmt: skip
    old.replaced_by_id = new.id
    new.replaces_id = new.replaces_id or old.id
    session.add(OrderEvent(
        order_id=old.id, kind=LINKED, from_status=old.status, to_status=old.status,
        filled_quantity=old.filled_quantity, source=source, at=now,
        detail=f"replaced by order {new.id} (broker order {new.broker_order_id}, client order "
               f"id {new.client_order_id})",
    ))  # fmt: skip
