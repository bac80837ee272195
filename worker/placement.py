"""Placing an order: the row first (PENDING_NEW, committed), then the broker, then the
outcome through the state machine. Re-running it for the same order is always safe."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from brokers.base import PlaceOrderRequest
from brokers.registry import CredentialsMissing
from models.accounts import UnknownAccount
from models.base import new_id
from models.enums import Intent, OrderOrigin, OrderStatus, OrderType, ReportSource
from models.ledger import ExitRefused, check_exit
from models.orders import Order, OrderEvent
from models.outbox import EventKind, add_order_event
from models.repository import load_state, record_applied
from models.state_machine import local_transition
from worker.args import InvalidTaskArguments, PlaceOrderArgs
from worker.budget import Priority, priority
from worker.context import AccountInfo, WorkerContext
from worker.fills import adopt_parked
from worker.locks import write_order
from worker.monitoring import start_chain
from worker.reports import apply_in_new_session
from worker.submission import Deferred, Refused, Reported, Unknown, submit

logger = logging.getLogger(__name__)
TASK = "ordersync.place_order"


@dataclass(frozen=True, slots=True)
class PlaceResult:
    order_id: str
    monitor: bool
    retry: bool = False  # the broker would not take the request; safe to try again later
    chain: str | None = None  # the monitor chain started before submitting, if any


def client_order_id_for(account: str, args: PlaceOrderArgs, task_id: str) -> str:
    """Deterministic: a redelivered or retried call maps to the same broker order."""
    if args.client_order_id:
        return args.client_order_id
    if args.decision_id:
        basis = f"{account}|decision|{args.decision_id}|{args.intent or ''}"
    else:
        basis = f"{account}|task|{task_id}"
    return "os-" + hashlib.sha256(basis.encode()).hexdigest()[:32]


def _requested_price(args: PlaceOrderArgs) -> object:
    if args.requested_price is not None:
        return args.requested_price
    if args.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return args.limit_price
    return args.stop_price  # stop orders aim at the stop; market orders have none


def _new_order(
    account: AccountInfo, args: PlaceOrderArgs, client_order_id: str, now: datetime
) -> Order:
    return Order(
        id=new_id(), account_id=account.id, broker=account.broker,
        client_order_id=client_order_id,
        origin=OrderOrigin.PLACED, symbol=args.symbol, side=args.side, intent=args.intent,
        decision_id=args.decision_id, trade_id=args.trade_id, order_type=args.order_type,
        time_in_force=args.time_in_force, quantity=args.quantity, limit_price=args.limit_price,
        stop_price=args.stop_price, requested_price=_requested_price(args),
        status=OrderStatus.PENDING_NEW, created_at=now, updated_at=now,
    )  # fmt: skip


def _same_order(order: Order, args: PlaceOrderArgs) -> bool:
    return (order.symbol, order.side, order.quantity, order.order_type, order.limit_price,
            order.stop_price) == (args.symbol, args.side, args.quantity, args.order_type,
                                  args.limit_price, args.stop_price)  # fmt: skip


def _write_ahead(
    ctx: WorkerContext, session: Session, args: PlaceOrderArgs, task_id: str, now: datetime
) -> tuple[Order, AccountInfo, bool]:
    """The committed PENDING_NEW row, or the existing one for this client order id."""
    try:
        account = ctx.account(session, name=args.account)
    except UnknownAccount as error:
        raise InvalidTaskArguments(TASK, str(error)) from None
    if not account.is_active:
        raise InvalidTaskArguments(TASK, f"account {account.name!r} is not active")
    try:
        ctx.adapter(account)  # credentials are checked before anything is written
    except CredentialsMissing as error:
        raise InvalidTaskArguments(TASK, str(error)) from None
    client_order_id = client_order_id_for(account.name, args, task_id)
    _refuse_an_oversized_exit(session, account, args, client_order_id)
    order = _new_order(account, args, client_order_id, now)
    session.add(order)
    session.add(OrderEvent(
        order=order, kind="created", from_status=None,
        to_status=OrderStatus.PENDING_NEW, filled_quantity=Decimal(0),
        source=ReportSource.PLACEMENT, at=now,
    ))  # fmt: skip
    add_order_event(session, order, EventKind.ORDER_PLACED, now=now)
    try:
        session.commit()  # the unique (account, client_order_id) key decides: new or redelivery
        return order, account, True
    except IntegrityError as error:
        session.rollback()
        refusal = error
    existing = session.scalar(
        select(Order).where(Order.account_id == account.id,
                            Order.client_order_id == client_order_id)
    )  # fmt: skip
    if existing is None:
        raise RuntimeError(f"order {client_order_id!r}: insert refused: {refusal}")
    if not _same_order(existing, args):
        raise InvalidTaskArguments(
            TASK, f"client_order_id {client_order_id!r} is already used by a different order"
        )
    return existing, account, False


def _refuse_an_oversized_exit(
    session: Session, account: AccountInfo, args: PlaceOrderArgs, client_order_id: str
) -> None:
    """An EXIT may close no more than its trade has open (a redelivered call, whose order
    exists already, is not judged again: it is answered with that order)."""
    if args.intent is not Intent.EXIT or args.trade_id is None:
        return
    known = select(Order.id).where(Order.account_id == account.id,
                                   Order.client_order_id == client_order_id)  # fmt: skip
    if session.scalar(known) is not None:
        return
    try:
        check_exit(session, account_id=account.id, trade_id=args.trade_id, symbol=args.symbol,
                   side=args.side, quantity=args.quantity)  # fmt: skip
    except ExitRefused as error:
        session.rollback()
        raise InvalidTaskArguments(TASK, str(error)) from None


def place_order(ctx: WorkerContext, args: PlaceOrderArgs, *, task_id: str,
                last_attempt: bool = False) -> PlaceResult:  # fmt: skip
    with ctx.sessions() as session:
        order, account, fresh = _write_ahead(ctx, session, args, task_id, ctx.now())
        if not fresh and (order.status is not OrderStatus.PENDING_NEW or order.broker_order_id):
            return PlaceResult(order.id, monitor=True)  # already placed: a redelivery
        request = PlaceOrderRequest(
            client_order_id=order.client_order_id, symbol=order.symbol, side=order.side,
            quantity=order.quantity, order_type=order.order_type,
            time_in_force=order.time_in_force, limit_price=order.limit_price,
            stop_price=order.stop_price,
        )  # fmt: skip
        adapter = ctx.adapter(account)
        order_id = order.id
    # The monitor chain starts (and the order is due) before the broker hears of it: if
    # this task dies after submitting, revive_monitors still finds the order.
    chain = start_chain(ctx, order_id)

    with priority(Priority.PLACEMENT):  # a placement outranks monitors and sweeps
        outcome = submit(adapter, request, look_first=not fresh)
    if isinstance(outcome, Reported):
        apply_in_new_session(ctx, order_id, outcome.report, ReportSource.PLACEMENT,
                             submitted=True)  # fmt: skip
        adopt_parked(ctx, account.id, outcome.report.broker_order_id)
        return PlaceResult(order_id, monitor=True, chain=chain)
    if isinstance(outcome, Deferred) and not last_attempt:
        _note_error(ctx, order_id, f"broker did not take the order, retrying: {outcome.reason}")
        return PlaceResult(order_id, monitor=False, retry=True)
    if isinstance(outcome, Refused | Deferred):
        reason = (
            outcome.reason
            if isinstance(outcome, Refused)
            else (f"broker never took the order: {outcome.reason}")
        )
        logger.error("order %s (%s) rejected: %s", order_id, request.client_order_id, reason)
        _reject(ctx, order_id, reason)
        return PlaceResult(order_id, monitor=False)
    assert isinstance(outcome, Unknown)
    _note_error(ctx, order_id, outcome.reason)
    return PlaceResult(order_id, monitor=True, chain=chain)  # the monitor keeps looking


def _note_error(ctx: WorkerContext, order_id: str, error: str) -> None:
    """Where an operator sees why the placement is not done (on fresh state if it raced)."""

    def note(_: Session, order: Order) -> None:
        order.last_error = error[:2000]
        order.updated_at = ctx.now()

    write_order(ctx.sessions, order_id, note, what="noting a placement error")


def _reject(ctx: WorkerContext, order_id: str, reason: str) -> None:
    """REJECTED by the table, unless a concurrent report has moved the order on meanwhile."""

    def reject(session: Session, order: Order) -> None:
        if order.status is not OrderStatus.PENDING_NEW:
            return
        now = ctx.now()
        applied = local_transition(load_state(session, order), OrderStatus.REJECTED, now=now,
                                   detail=reason)  # fmt: skip
        record_applied(session, order, applied, now=now, source=ReportSource.PLACEMENT)
        order.last_error = reason[:2000]

    write_order(ctx.sessions, order_id, reject, what="rejecting", for_update=True)
