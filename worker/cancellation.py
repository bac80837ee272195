"""Cancelling: PENDING_CANCEL locally by the table, then the request to the broker; the
outcome (canceled, or filled first: cancels race fills) arrives through the monitor.

A cancel can arrive before the broker has acknowledged the order (no broker order id yet:
the placement is in flight, or its answer was lost and the monitor or a sweep is still
looking the order up). Such a cancel waits for the id instead of giving up: the wait is
recorded on the order (a ``cancel_waiting`` history row) and the task tries again with a
growing delay. The cancel goes out as soon as the id is known; a wait ends quietly when the
order ends without it (e.g. REJECTED, never reached the broker). Only when the broker stays
silent (no id, or a failing cancel request) for longer than ``give_up_after_s`` is the
cancel abandoned, loudly: an ERROR line, a ``cancel_abandoned`` history row, and the task
fails with ``CancelAbandoned`` naming the order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from brokers.base import BrokerAdapter
from brokers.errors import BrokerError, OrderNotCancelable, OrderNotFound
from core.enums import OPEN_STATUSES, OrderStatus, ReportSource
from models.accounts import UnknownAccount, get_account
from models.orders import Order, OrderEvent
from models.repository import load_state, record_applied
from models.state_machine import can_transition, local_transition
from ordersync.settings import Settings
from worker.args import CancelOrderArgs, InvalidTaskArguments
from worker.context import WorkerContext
from worker.locks import WRITE_ATTEMPTS, OrderWriteConflict

logger = logging.getLogger(__name__)
TASK = "ordersync.cancel_order"
WAITING = "cancel_waiting"
ABANDONED = "cancel_abandoned"
BACKOFF = 1.5
MAX_RETRY_DELAY_S = 30.0


class CancelAbandoned(Exception):
    """The broker never took the cancel in time (no broker order id, or failing requests)."""

    def __init__(self, order_id: str, client_order_id: str, reason: str) -> None:
        self.order_id = order_id
        self.client_order_id = client_order_id
        self.reason = reason
        super().__init__(f"cancel of order {order_id} ({client_order_id}) abandoned: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.order_id, self.client_order_id, self.reason))


@dataclass(frozen=True, slots=True)
class CancelResult:
    order_id: str
    monitor: bool
    retry_reason: str | None = None
    retry_after_s: float = 0.0
    waiting: bool = False  # for the broker id: the order needs watching, not a new chain


def retry_delay_s(settings: Settings, attempt: int) -> float:
    """The delay before try ``attempt + 1``: growing, capped far below any visibility timeout."""
    return float(min(settings.place_retry_delay_s * BACKOFF**attempt, MAX_RETRY_DELAY_S))


def waited_s(settings: Settings, attempt: int) -> float:
    """The delays scheduled before try ``attempt`` (the real wait is at least this long)."""
    return sum(retry_delay_s(settings, i) for i in range(attempt))


def give_up_after_s(settings: Settings) -> float:
    """Twice what deep reconciliation needs to resolve a write-ahead row either way."""
    s = settings
    return 2 * (s.pending_new_grace_s + s.lost_after_misses * s.deep_reconcile_interval_s)


@dataclass(frozen=True, slots=True)
class _Send:
    """The local half is done: the request goes to the broker."""

    order_id: str
    client_order_id: str
    broker_order_id: str
    adapter: BrokerAdapter


@dataclass(frozen=True, slots=True)
class _GiveUp:
    """The wait for the broker order id is over, without it."""

    order_id: str
    client_order_id: str
    reason: str


def cancel_order(ctx: WorkerContext, args: CancelOrderArgs, *, attempt: int = 0) -> CancelResult:
    """One try (``attempt`` counts the earlier ones); see the module for the waiting rules."""
    prepared = _prepare(ctx, args, attempt)
    if isinstance(prepared, _GiveUp):
        _abandon(ctx, prepared.order_id, prepared.client_order_id, prepared.reason)
    if isinstance(prepared, CancelResult):
        return prepared
    try:
        prepared.adapter.cancel(prepared.broker_order_id)
    except OrderNotCancelable:
        logger.info("order %s was no longer cancelable; its report will say why",
                    prepared.order_id)  # fmt: skip
    except OrderNotFound as error:
        logger.warning("cancel: order %s not found at the broker: %s", prepared.order_id, error)
    except BrokerError as error:
        if waited_s(ctx.settings, attempt) >= give_up_after_s(ctx.settings):
            _abandon(ctx, prepared.order_id, prepared.client_order_id,
                     f"the broker refused every cancel request, last: {error}")  # fmt: skip
        delay_s = retry_delay_s(ctx.settings, attempt)
        logger.warning("cancel of order %s failed, trying again in %.1f s: %s",
                       prepared.order_id, delay_s, error)  # fmt: skip
        return CancelResult(prepared.order_id, monitor=True, retry_reason=str(error),
                            retry_after_s=delay_s)  # fmt: skip
    return CancelResult(prepared.order_id, monitor=True)


def _prepare(
    ctx: WorkerContext, args: CancelOrderArgs, attempt: int
) -> CancelResult | _Send | _GiveUp:
    """The local half in one transaction, again on fresh state if a concurrent writer (a
    monitor applying a report) bumped the order's version counter first."""
    order_id = args.order_id or str(args.client_order_id)
    for n in range(1, WRITE_ATTEMPTS + 1):
        try:
            with ctx.sessions.begin() as session:
                return _prepare_in(ctx, session, args, attempt)
        except StaleDataError as error:
            logger.info("order %s changed while cancelling (attempt %d): %s", order_id, n, error)
    raise OrderWriteConflict(order_id, "cancelling", WRITE_ATTEMPTS)


def _prepare_in(
    ctx: WorkerContext, session: Session, args: CancelOrderArgs, attempt: int
) -> CancelResult | _Send | _GiveUp:
    """Decide on the row as it is now: done, wait for the broker id, or PENDING_CANCEL."""
    try:
        account = get_account(session, args.account)
    except UnknownAccount as error:
        raise InvalidTaskArguments(TASK, str(error)) from None
    key = (
        (Order.id == args.order_id)
        if args.order_id
        else (Order.client_order_id == args.client_order_id)
    )
    order = session.scalar(
        select(Order).where(Order.account_id == account.id, key).with_for_update()
    )
    if order is None:
        ids = args.order_id or args.client_order_id
        raise InvalidTaskArguments(TASK, f"no order {ids!r} in account {account.name!r}")
    order = _live_end(session, order)
    if replacing := _replacement_under_way(session, order):
        return _wait(ctx, session, order, attempt, replacing)
    if order.status.is_terminal:
        return CancelResult(order.id, monitor=False)
    if order.broker_order_id is None:
        return _wait(ctx, session, order, attempt, BROKER_ID_WAIT)
    if can_transition(order.status, OrderStatus.PENDING_CANCEL):
        now = ctx.now()
        applied = local_transition(load_state(session, order), OrderStatus.PENDING_CANCEL,
                                   now=now, detail="cancel requested")  # fmt: skip
        record_applied(session, order, applied, now=now, source=ReportSource.MANUAL)
    return _Send(order.id, order.client_order_id, order.broker_order_id, ctx.adapter(account))


def _live_end(session: Session, order: Order) -> Order:
    """The order working in its place now: a cancel goes to the end of its replacement
    chain (each link locked, as the order itself is)."""
    seen = {order.id}
    while order.replaced_by_id is not None and order.replaced_by_id not in seen:
        successor = session.get(Order, order.replaced_by_id, with_for_update=True)
        if successor is None:
            break
        seen.add(successor.id)
        order = successor
    return order


def _replacement_under_way(session: Session, order: Order) -> str | None:
    """Why the cancel must wait for a replacement to settle (which order will be working
    then is not known yet), if it must."""
    if order.status is OrderStatus.REPLACED:  # by an order not linked yet: followed soon
        return "waiting for the order that replaced it to be known"
    in_flight = session.scalar(
        select(Order.id).where(Order.replaces_id == order.id, Order.status.in_(OPEN_STATUSES))
    )
    if in_flight is not None and order.status.is_open:
        return f"waiting for its replacement by order {in_flight} to settle"
    return None


BROKER_ID_WAIT = "waiting for the broker order id"


def _wait(
    ctx: WorkerContext, session: Session, order: Order, attempt: int, why: str
) -> CancelResult | _GiveUp:
    """Record the wait once (an operator sees it in the order's history) and try again."""
    waited = waited_s(ctx.settings, attempt)
    if waited >= give_up_after_s(ctx.settings):
        reason = f"{why}: still so after {waited:.0f} s"
        if why == BROKER_ID_WAIT:
            reason = f"the broker never acknowledged the order within {waited:.0f} s"
        return _GiveUp(order.id, order.client_order_id, reason)
    noted = session.scalar(
        select(OrderEvent.id).where(OrderEvent.order_id == order.id, OrderEvent.kind == WAITING)
    )
    if noted is None:
        logger.warning("cancel of order %s (%s): %s", order.id, order.client_order_id, why)
        detail = ("cancel requested before the broker acknowledged the order: it is sent as "
                  "soon as the broker order id is known") if why == BROKER_ID_WAIT else (
                  f"cancel requested while the order is being replaced ({why}): it goes to "
                  "the order working once the replacement settles")  # fmt: skip
        session.add(OrderEvent(
            order_id=order.id, kind=WAITING, from_status=order.status, to_status=order.status,
            filled_quantity=order.filled_quantity, source=ReportSource.MANUAL, at=ctx.now(),
            detail=detail,
        ))  # fmt: skip
    return CancelResult(order.id, monitor=True, retry_reason=why,
                        retry_after_s=retry_delay_s(ctx.settings, attempt),
                        waiting=True)  # fmt: skip


def _abandon(ctx: WorkerContext, order_id: str, client_order_id: str, reason: str) -> NoReturn:
    """Loudly: an ERROR line and a history row, then the task fails naming the order."""
    logger.error("cancel of order %s (%s) abandoned: %s", order_id, client_order_id, reason)
    with ctx.sessions.begin() as session:
        order = session.get(Order, order_id)
        if order is not None:
            session.add(OrderEvent(
                order_id=order_id, kind=ABANDONED, from_status=order.status,
                to_status=order.status, filled_quantity=order.filled_quantity,
                source=ReportSource.MANUAL, detail=reason[:2000], at=ctx.now(),
            ))  # fmt: skip
    raise CancelAbandoned(order_id, client_order_id, reason)
