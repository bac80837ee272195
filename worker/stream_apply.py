"""A stream event into the record, through the same state-machine path as polling, in one
transaction per event.

An execution is recorded from the stream only when it adds up with the fills recorded
before it (the recorded quantity plus its own is the cumulative quantity it carries, and
its price with theirs makes the broker's average): a
dropped or reordered event, or a ``qty`` meaning something else, then leaves a fill gap
that the broker's fill listing closes, never a wrong fill. A listed execution and a
streamed one are the same fill when their cumulative quantities are (``fill_keys``).
For a broker with no fill listing (Tradier), the execution an event's cumulative figures
imply is derived (``derived_fill``) under the same lock, named by its cumulative quantity
as a REST report's would be, so the two paths never record it twice.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from core.enums import OrderClass, OrderStatus, ReportSource
from core.reports import FillReport, OrderReport, StreamEvent
from models.money import in_money_context
from models.orders import Order
from models.reconciliation import derived_fill
from models.repository import apply_to_order, load_state
from worker.context import WorkerContext
from worker.replacements import unfollowed
from worker.reports import ATTEMPTS, log_anomalies, raced

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Applied:
    order_id: str | None  # None: no order of ours (yet)
    fill_recorded: bool = False
    fill_gap: bool = False  # the broker reports more filled than recorded
    terminal: bool = False
    replaced_by: str | None = None  # the broker id of a replacement not linked yet


def apply_event(
    ctx: WorkerContext, account_id: str, event: StreamEvent, *, derive_fills: bool = False
) -> Applied:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with ctx.sessions.begin() as session:
                order = _ours(session, account_id, event.report)
                if order is None:
                    return Applied(None)
                return _apply(ctx, session, order, event, derive_fills)
        except (StaleDataError, IntegrityError, OperationalError) as error:
            if not raced(error):
                raise
            logger.info("stream event for %s raced a writer (attempt %d): %s",
                        event.report.broker_order_id, attempt, error)  # fmt: skip
    raise RuntimeError(f"broker order {event.report.broker_order_id}: could not apply a "
                       f"stream event after {ATTEMPTS} attempts")  # fmt: skip


def _ours(session: Session, account_id: str, report: OrderReport) -> Order | None:
    """The order by its broker id, or a write-ahead row by its client order id (an update
    can come before the placement's own answer)."""
    keys = [Order.broker_order_id == report.broker_order_id]
    if report.client_order_id:
        keys.append(Order.client_order_id == report.client_order_id)
    found = list(session.scalars(
        select(Order).where(Order.account_id == account_id, or_(*keys)).with_for_update()
    ))  # fmt: skip
    by_id = [o for o in found if o.broker_order_id == report.broker_order_id]
    if by_id:
        return by_id[0]
    return next((o for o in found if o.broker_order_id is None), None)


def _apply(ctx: WorkerContext, session: Session, order: Order, event: StreamEvent,
           derive_fills: bool) -> Applied:  # fmt: skip
    now = ctx.now()
    recorded = False
    fill = event.fill
    report = _with_our_terms(order, event.report)
    if fill is not None and fill.cum_quantity is not None:
        state = load_state(session, order)
        if _adds_up(state.filled_quantity, state.fill_notional, fill, report):
            applied = apply_to_order(session, order, fill, now=now, source=ReportSource.STREAM)
            log_anomalies(order, applied)
            recorded = bool(applied.new_fills)
    applied = apply_to_order(session, order, report, now=now, source=ReportSource.STREAM)
    log_anomalies(order, applied)
    derives = derive_fills and not _priced_by_its_legs(session, order)
    if derives and (derived := derived_fill(applied.state, report, now=now)) is not None:
        applied = apply_to_order(session, order, derived, now=now, source=ReportSource.STREAM)
        log_anomalies(order, applied)
        recorded = bool(applied.new_fills)
    order.miss_count, order.lost_at = 0, None  # the broker showed the order
    state = applied.state
    return Applied(order.id, recorded, state.broker_filled_quantity > state.filled_quantity,
                   state.status.is_terminal, unfollowed(order, report))  # fmt: skip


def _priced_by_its_legs(session: Session, order: Order) -> bool:
    """A simple order with legs (Tradier's multileg and combo): its price is a net of its
    legs' and its legs carry the fills, so nothing is derived for it (as by polling)."""
    if order.order_class is not OrderClass.SIMPLE:
        return False
    return session.scalar(select(Order.id).where(Order.parent_id == order.id).limit(1)) is not None


def _with_our_terms(order: Order, report: OrderReport) -> OrderReport:
    """A report that does not state what was ordered (Tradier's events name no symbol,
    side or quantity) read with our record's terms, so nothing shows placeholders."""
    if report.states_terms:
        return report
    status = report.status
    # A working order with every share of ours filled is filled (its report could not tell:
    # it does not know the quantity).
    done = order.quantity is not None and report.filled_quantity >= order.quantity
    if status is OrderStatus.PARTIALLY_FILLED and done:
        status = OrderStatus.FILLED
    return dataclasses.replace(report, symbol=order.symbol, side=order.side,
                               time_in_force=order.time_in_force, quantity=order.quantity,
                               notional=order.notional, status=status)  # fmt: skip


PRICE_TOLERANCE = Decimal("1e-6")  # relative: the broker's average is rounded


@in_money_context
def _adds_up(filled: Decimal, notional: Decimal, fill: FillReport, report: OrderReport) -> bool:
    """The execution is the next one after those recorded: its quantity makes the order's
    cumulative quantity, and its price, with the recorded fills, the broker's average (an
    event whose ``price`` were the average, not the execution's, is left to the listing)."""
    if fill.cum_quantity is None or filled + fill.quantity != fill.cum_quantity:
        return False
    average = report.average_fill_price
    if average is None or average <= 0:
        return True  # nothing to check it against
    ours = (notional + fill.quantity * fill.price) / fill.cum_quantity
    return abs(ours - average) <= average * PRICE_TOLERANCE
