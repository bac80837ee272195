"""Tracking an order the trading service placed itself (seed 000 hands over its order id):
registered idempotently from the broker's own report, then monitored like ours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from brokers.errors import BrokerError, OrderNotFound
from core.enums import OrderOrigin, OrderStatus, ReportSource
from models.accounts import UnknownAccount, get_account
from models.base import new_id
from models.ledger import annotate_intent
from models.orders import Order
from models.outbox import EventKind, add_order_event
from worker.args import InvalidTaskArguments, TrackOrderArgs
from worker.context import WorkerContext
from worker.fills import adopt_parked
from worker.legs import pass_on, register_legs
from worker.locks import write_order
from worker.reports import apply_in_new_session

TASK = "ordersync.track_order"


@dataclass(frozen=True, slots=True)
class TrackResult:
    order_id: str | None
    retry_reason: str | None = None  # the broker could not answer yet; try again later


def track_order(
    ctx: WorkerContext, args: TrackOrderArgs, *, last_attempt: bool = False
) -> TrackResult:
    with ctx.sessions() as session:
        try:
            account = get_account(session, args.account)
        except UnknownAccount as error:
            raise InvalidTaskArguments(TASK, str(error)) from None
        known = _find(session, account.id, args)
        known_id = None if known is None else known.id
        account_id, broker = account.id, account.broker
    if known_id is not None:  # on fresh state: a monitor may be writing the row meanwhile
        write_order(ctx.sessions, known_id,
                    lambda session, order: _annotate(session, order, args, ctx.now()),
                    what="annotating a tracked order", for_update=True)  # fmt: skip
        return TrackResult(known_id)
    adapter = ctx.adapter(account)
    if args.broker_order_id is None and args.symbol is None and adapter.lists_by_symbol:
        raise InvalidTaskArguments(TASK, (
            f"account {args.account!r} is on {broker.value}, which finds an order by client "
            "order id only within its symbol: give symbol (or broker_order_id)"
        ))  # fmt: skip

    try:
        report = (
            adapter.get_order(args.broker_order_id)
            if args.broker_order_id
            else adapter.get_order_by_client_id(str(args.client_order_id), symbol=args.symbol)
        )
    except OrderNotFound:
        if last_attempt:
            ids = args.broker_order_id or args.client_order_id
            raise InvalidTaskArguments(TASK, f"the broker does not know order {ids!r}") from None
        return TrackResult(None, "not found at the broker yet")
    except BrokerError as error:
        if last_attempt:
            raise
        return TrackResult(None, str(error))

    now = ctx.now()
    with ctx.sessions() as session:
        order = Order(
            id=new_id(), account_id=account_id, broker=broker, origin=OrderOrigin.TRACKED,
            client_order_id=report.client_order_id or f"broker-{report.broker_order_id}",
            broker_order_id=report.broker_order_id, symbol=report.symbol, side=report.side,
            order_type=report.order_type, time_in_force=report.time_in_force,
            quantity=report.quantity, notional=report.notional, limit_price=report.limit_price,
            stop_price=report.stop_price, requested_price=args.requested_price,
            intent=args.intent, decision_id=args.decision_id, trade_id=args.trade_id,
            status=OrderStatus.PENDING_NEW, created_at=report.created_at, updated_at=now,
            submitted_at=report.submitted_at or report.created_at,
            order_class=report.order_class,
        )  # fmt: skip
        session.add(order)
        add_order_event(session, order, EventKind.ORDER_PLACED, now=now)
        try:
            session.commit()
        except IntegrityError:  # a concurrent call registered it first
            session.rollback()
            existing = _find(session, account_id, args)
            if existing is None:
                raise
            return TrackResult(existing.id)
        order_id = order.id
    apply_in_new_session(ctx, order_id, report, ReportSource.MONITOR, checked=True)
    adopt_parked(ctx, account_id, report.broker_order_id)
    register_legs(ctx, order_id, report, ReportSource.MONITOR)
    return TrackResult(order_id)


def _find(session: Session, account_id: str, args: TrackOrderArgs) -> Order | None:
    keys = []
    if args.broker_order_id:
        keys.append(Order.broker_order_id == args.broker_order_id)
    if args.client_order_id:
        keys.append(Order.client_order_id == args.client_order_id)
    return session.scalar(select(Order).where(Order.account_id == account_id, or_(*keys)))


def _annotate(session: Session, order: Order, args: TrackOrderArgs, now: datetime) -> None:
    """Fill in what the service tells us and we did not know; never overwrite. An order
    adopted before this call has its recorded fills replayed into its trade now (the
    ledger's locks come after the order's row: hence ``for_update`` above)."""
    order.requested_price = order.requested_price or args.requested_price
    annotate_intent(session, order, intent=args.intent, decision_id=args.decision_id,
                    trade_id=args.trade_id, now=now)  # fmt: skip
    pass_on(session, order, now)  # its exit legs, if it has any, close what it opens
