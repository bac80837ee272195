"""Load an order's state-machine snapshot and write back what applying a report produced.

The state machine decides; this module only copies its decision into rows. Concurrent
writers are caught by the order's version counter (``StaleDataError``) and by the unique
(order, broker fill id) constraint (``IntegrityError``); callers retry the whole apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderStatus, ReportSource
from core.reports import FillReport, OrderReport
from models.fees import fees_apart, record_fee
from models.ledger import record_fills, trade_id_of
from models.orders import Fill, Order, OrderEvent
from models.outbox import add_order_event, fully_filled, order_event_kinds
from models.state_machine import (
    Applied,
    HistoryKind,
    OrderState,
    Verdict,
    apply_fill,
    apply_report,
    fill_keys,
    report_json,
)


def load_state(session: Session, order: Order) -> OrderState:
    # filled_quantity is the sum of the recorded fills: none recorded, nothing to load.
    keys = recorded_fill_keys(session, [order.id]) if order.filled_quantity else {}
    return state_of(order, frozenset(keys.get(order.id, ())))


def recorded_fill_keys(session: Session, order_ids: Sequence[str]) -> dict[str, set[str]]:
    """Per order, the keys of its recorded fills (``models.state_machine.fill_keys``)."""
    found: dict[str, set[str]] = {}
    if not order_ids:
        return found
    rows = session.execute(
        select(Fill.order_id, Fill.broker_fill_id, Fill.cum_quantity)
        .where(Fill.order_id.in_(order_ids))
    )  # fmt: skip
    for order_id, fill_id, cum in rows:
        found.setdefault(order_id, set()).update(fill_keys(fill_id, cum))
    return found


# session.info key: (account id, broker, source, broker fill time) of each fill added.
NEW_FILLS: Final = "ordersync.new_fills"


def state_of(order: Order, fill_ids: frozenset[str]) -> OrderState:
    """The snapshot of a loaded row, given the ids of its recorded fills."""
    return OrderState(
        status=order.status,
        quantity=order.quantity,
        filled_quantity=order.filled_quantity,
        broker_filled_quantity=order.broker_filled_quantity,
        fill_notional=order.fill_notional,
        fees=order.fees,
        fill_ids=fill_ids,
        broker_order_id=order.broker_order_id,
        raw_status=order.raw_status,
        broker_updated_at=order.broker_updated_at,
        accepted_at=order.accepted_at,
        filled_at=order.filled_at,
        closed_at=order.closed_at,
        notional=order.notional,
    )


def record_applied(
    session: Session, order: Order, applied: Applied, *, now: datetime, source: ReportSource
) -> None:
    """Copy the new state onto the row and add the fills and history rows it produced."""
    if applied.verdict in (Verdict.DUPLICATE, Verdict.STALE) and not applied.new_fills:
        return
    was_filled = fully_filled(order.status, order.filled_quantity, order.broker_filled_quantity)
    if applied.new_fills or applied.verdict is Verdict.APPLIED:
        _copy_state(order, applied.state, now=now)
    if any(entry.overturns for entry in applied.history):
        order.last_error = None  # our conclusion's reason; its history row keeps it
    for fill in applied.new_fills:
        session.add(
            Fill(
                order_id=order.id,
                broker_fill_id=fill.broker_fill_id,
                quantity=fill.quantity,
                price=fill.price,
                fee=fill.fee,
                filled_at=fill.filled_at,
                recorded_at=now,
                source=source,
                cum_quantity=fill.cum_quantity,
            )
        )
    if applied.new_fills:  # counted once the transaction commits (worker/context.py)
        session.info.setdefault(NEW_FILLS, []).extend(
            (order.account_id, order.broker.value, source.value, f.filled_at)
            for f in applied.new_fills
        )
    record_fills(session, order, applied.new_fills, now=now, source=source)
    for fill in applied.new_fills:
        for fee in fees_apart(fill):  # in the asset traded or a third one: not money
            trade_id = trade_id_of(order) if order.intent is not None else None
            record_fee(session, order.account_id, fee, now=now, trade_id=trade_id)
    repeated = _repeated_anomaly(session, order, applied)
    _record_history(session, order, applied, repeated, now=now, source=source)
    only_repeated = _only_repeated(applied, repeated)
    for kind in order_event_kinds(applied, was_filled=was_filled, repeated_anomaly=only_repeated):
        add_order_event(session, order, kind, now=now)


def _copy_state(order: Order, state: OrderState, *, now: datetime) -> None:
    order.status = state.status
    order.raw_status = state.raw_status
    order.broker_order_id = state.broker_order_id
    order.filled_quantity = state.filled_quantity
    order.broker_filled_quantity = state.broker_filled_quantity
    order.fill_notional = state.fill_notional
    order.average_fill_price = state.average_fill_price
    order.fees = state.fees
    order.broker_updated_at = state.broker_updated_at
    order.accepted_at = state.accepted_at
    order.filled_at = state.filled_at
    order.closed_at = state.closed_at
    order.updated_at = now


def _record_history(
    session: Session, order: Order, applied: Applied, repeated: str | None, *, now: datetime,
    source: ReportSource,
) -> None:  # fmt: skip
    for entry in applied.history:
        if entry.kind is HistoryKind.ANOMALY:
            if entry.detail == repeated:
                continue  # the same broker answer polled again: recorded once is enough
            order.anomaly_count += 1
        session.add(
            OrderEvent(
                order_id=order.id,
                kind=entry.kind.value,
                from_status=entry.from_status,
                to_status=entry.to_status,
                filled_quantity=entry.filled_quantity,
                raw_status=entry.raw_status,
                source=source,
                detail=entry.detail,
                report=entry.report,
                at=now,
            )
        )


def _only_repeated(applied: Applied, repeated: str | None) -> bool:
    """Every anomaly of this apply is the one already recorded: no new error to announce."""
    return repeated is not None and all(entry.detail == repeated for entry in applied.anomalies)


def _repeated_anomaly(session: Session, order: Order, applied: Applied) -> str | None:
    """The detail of the order's latest anomaly, when this apply produced anomalies."""
    if not applied.anomalies or order.anomaly_count == 0:
        return None
    return session.scalar(
        select(OrderEvent.detail)
        .where(OrderEvent.order_id == order.id, OrderEvent.kind == HistoryKind.ANOMALY.value)
        .order_by(OrderEvent.id.desc())
        .limit(1)
    )


def apply_to_order(
    session: Session,
    order: Order,
    report: OrderReport | FillReport,
    *,
    now: datetime,
    source: ReportSource,
) -> Applied:
    """Run a report through the state machine and stage the result in ``session``."""
    state = load_state(session, order)
    if isinstance(report, OrderReport):
        applied = apply_report(state, report, now=now)
        if applied.verdict is not Verdict.STALE:
            order.last_report, order.last_report_at = report_json(report), now
        link_replacement(session, order, report, applied.state.status)
    else:
        applied = apply_fill(state, report, now=now)
    record_applied(session, order, applied, now=now, source=source)
    return applied


def link_replacement(
    session: Session, order: Order, report: OrderReport, status: OrderStatus
) -> Order | None:
    """Once the broker names the order that replaced this one (``status``: the order's,
    with the report applied), link both rows, before the report's events are staged, so
    they carry the link; the replacing row, if we know it, is returned."""
    if (not report.replaced_by or status is not OrderStatus.REPLACED
            or order.replaced_by_id is not None):  # fmt: skip
        return None
    successor = session.scalar(
        select(Order).where(Order.account_id == order.account_id,
                            Order.broker_order_id == report.replaced_by)
    )  # fmt: skip
    if successor is None:
        return None
    order.replaced_by_id = successor.id
    if successor.replaces_id is None:
        successor.replaces_id = order.id
    return successor
