"""Replacing a working order (``ordersync.replace_order``).

The replacing order is a new order: its row is written first, linked to the order it
replaces and inheriting that order's account, intent, decision and trade, then the broker
is asked to replace. From there it is settled exactly as a placement is
(``worker/placement.py``: a deadline, lookups by its own client order id, take-over by its
monitor or a sweep). The replaced order ends REPLACED when the broker says so; if it fills
first, the broker rejects the replacement and the replaced order's fills stand.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.enums import (
    OPEN_STATUSES,
    Intent,
    OrderOrigin,
    OrderStatus,
    OrderType,
    ReportSource,
    TimeInForce,
)
from models.base import new_id
from models.ledger import ExitRefused, check_exit
from models.orders import Order, OrderEvent
from models.outbox import EventKind, add_order_event
from worker import placement
from worker.args import InvalidTaskArguments, ReplaceOrderArgs, ReplaceOrderTerms
from worker.chains import is_live, start_chain
from worker.context import WorkerContext
from worker.placement import PlaceResult
from worker.replacements import inherited_trade_id

TASK = "ordersync.replace_order"
REQUESTED = "replace_requested"  # the history row on the order being replaced


@dataclass(frozen=True, slots=True)
class ReplaceResult:
    placed: PlaceResult  # the replacing order's
    replaced_id: str


@dataclass(frozen=True, slots=True)
class Terms:
    """The replacing order's terms: what changes, and what it keeps of the working order."""

    quantity: Decimal
    time_in_force: TimeInForce
    limit_price: Decimal | None
    stop_price: Decimal | None


class NotReplaceable(ValueError):
    """Why an order cannot be replaced as asked; nothing is written."""


def new_client_order_id_for(account: str, args: ReplaceOrderArgs, task_id: str) -> str:
    """Deterministic: a redelivered or retried call maps to the same replacing order."""
    if args.new_client_order_id:
        return args.new_client_order_id
    basis = f"{account}|replace|{task_id}"
    return "os-" + hashlib.sha256(basis.encode()).hexdigest()[:32]


def replace_problem(order: Order, in_flight: str | None) -> str | None:
    """Why the order cannot be replaced now, if it cannot."""
    if order.status.is_terminal:
        return f"order {order.id} is {order.status.value}: only a working order can be replaced"
    if order.broker_order_id is None:
        return (f"order {order.id} is not acknowledged by the broker yet: replace it once it "
                "is")  # fmt: skip
    if order.status is OrderStatus.PENDING_CANCEL:
        return f"order {order.id} has a cancel pending"
    if in_flight is not None:
        return f"order {order.id} is being replaced already, by order {in_flight}"
    return None


def in_flight(session: Session, order_id: str) -> str | None:
    """A replacement of the order that has not settled yet, if there is one."""
    return session.scalar(
        select(Order.id).where(Order.replaces_id == order_id, Order.status.in_(OPEN_STATUSES))
    )


def replace_terms(order: Order, changes: ReplaceOrderTerms) -> Terms:
    """The working order's terms with ``changes``; ``NotReplaceable`` for changes that do
    not apply to it or change nothing. The quantity defaults to what it has left to fill."""
    if order.quantity is None:
        raise NotReplaceable(
            f"order {order.id} is a notional order (${order.notional}): it cannot be "
            "replaced; cancel it and place another"
        )
    limits = order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    stops = order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
    kind = order.order_type.value
    if changes.limit_price is not None and not limits:
        raise NotReplaceable(f"limit_price does not apply to a {kind} order")
    if changes.stop_price is not None and not stops:
        raise NotReplaceable(f"stop_price does not apply to a {kind} order")
    remaining = order.quantity - order.broker_filled_quantity
    kept = Terms(remaining, order.time_in_force, order.limit_price if limits else None,
                 order.stop_price if stops else None)  # fmt: skip
    terms = Terms(
        quantity=changes.quantity if changes.quantity is not None else remaining,
        time_in_force=changes.time_in_force or order.time_in_force,
        limit_price=changes.limit_price if changes.limit_price is not None else kept.limit_price,
        stop_price=changes.stop_price if changes.stop_price is not None else kept.stop_price,
    )
    if terms.quantity <= 0:
        raise NotReplaceable(f"order {order.id} has nothing left to fill")
    if terms == kept:
        raise NotReplaceable(f"the changes leave order {order.id} as it is")
    return terms


def replace_order(ctx: WorkerContext, args: ReplaceOrderArgs, *, task_id: str) -> ReplaceResult:
    """Write the replacing row (once), then one attempt; the task attempts again while
    asked to (a retry, like a redelivered message, finds the row and attempts on it)."""
    with ctx.sessions() as session:
        order, fresh = _write_ahead(ctx, session, args, task_id, ctx.now())
        order_id, replaced_id = order.id, str(order.replaces_id)
        waiting = placement.awaiting_broker(order)
        done = order.status.is_terminal and not order.fill_gap
    chain = start_chain(ctx, order_id) if fresh or not (done or is_live(ctx, order_id)) else None
    if not waiting:
        return ReplaceResult(PlaceResult(order_id, chain=chain), replaced_id)
    tried = placement.attempt(ctx, order_id, first=fresh)
    return ReplaceResult(placement.result_of(ctx, order_id, tried, chain), replaced_id)


def _write_ahead(
    ctx: WorkerContext, session: Session, args: ReplaceOrderArgs, task_id: str, now: datetime
) -> tuple[Order, bool]:
    """The committed replacing row, or the existing one for this client order id."""
    account = placement.trading_account(ctx, session, args.account, TASK)
    client_order_id = new_client_order_id_for(account.name, args, task_id)
    key = Order.id == args.order_id if args.order_id else (
        Order.client_order_id == args.client_order_id)  # fmt: skip
    old = session.scalar(select(Order).where(Order.account_id == account.id, key).with_for_update())
    if old is None:
        ids = args.order_id or args.client_order_id
        raise InvalidTaskArguments(TASK, f"no order {ids!r} in account {account.name!r}")
    existing = _by_client_id(session, account.id, client_order_id)
    if existing is not None:
        return _redelivered(existing, old, client_order_id), False
    try:
        problem = replace_problem(old, in_flight(session, old.id))
        if problem is not None:
            raise NotReplaceable(problem)
        terms = replace_terms(old, args)
        if old.intent is Intent.EXIT and old.trade_id is not None:
            check_exit(session, account_id=account.id, trade_id=old.trade_id,
                       symbol=old.symbol, side=old.side, quantity=terms.quantity,
                       replacing=old.id)  # fmt: skip
    except (NotReplaceable, ExitRefused) as error:
        session.rollback()
        raise InvalidTaskArguments(TASK, str(error)) from None
    seconds = args.valid_for_s or placement.default_deadline_s(
        ctx.settings, old.order_type, terms.time_in_force)  # fmt: skip
    new = _replacing_row(old, terms, args, client_order_id, now,
                         now + timedelta(seconds=float(seconds)))  # fmt: skip
    _stage(session, old, new, terms, now)
    try:
        session.commit()
        return new, True
    except IntegrityError:  # the same call, delivered twice at once
        session.rollback()
    existing = _by_client_id(session, account.id, client_order_id)
    if existing is None:
        raise RuntimeError(f"replacement {client_order_id!r} of order {old.id}: insert refused")
    return _redelivered(existing, old, client_order_id), False


def _by_client_id(session: Session, account_id: str, client_order_id: str) -> Order | None:
    query = select(Order).where(Order.account_id == account_id,
                                Order.client_order_id == client_order_id)  # fmt: skip
    return session.scalar(query)


def _redelivered(existing: Order, old: Order, client_order_id: str) -> Order:
    if existing.replaces_id != old.id:
        raise InvalidTaskArguments(
            TASK, f"client order id {client_order_id!r} is already used by a different order"
        )
    return existing


def _replacing_row(old: Order, terms: Terms, args: ReplaceOrderArgs, client_order_id: str,
                   now: datetime, deadline: datetime) -> Order:  # fmt: skip
    return Order(
        id=new_id(), account_id=old.account_id, broker=old.broker,
        client_order_id=client_order_id, origin=OrderOrigin.PLACED, symbol=old.symbol,
        side=old.side, intent=old.intent, decision_id=old.decision_id,
        trade_id=inherited_trade_id(old), order_type=old.order_type,
        time_in_force=terms.time_in_force, quantity=terms.quantity,
        limit_price=terms.limit_price, stop_price=terms.stop_price,
        requested_price=args.requested_price or old.requested_price,
        status=OrderStatus.PENDING_NEW, created_at=now, updated_at=now,
        place_deadline=deadline, sent_at=now if now < deadline else None, replaces_id=old.id,
    )  # fmt: skip


def _stage(session: Session, old: Order, new: Order, terms: Terms, now: datetime) -> None:
    """The new row, and on both rows the history that tells the chain."""
    asked = ", ".join(f"{name} {value}" for name, value in (
        ("quantity", terms.quantity), ("time_in_force", terms.time_in_force.value),
        ("limit_price", terms.limit_price), ("stop_price", terms.stop_price),
    ) if value is not None)  # fmt: skip
    deadline = new.place_deadline.isoformat() if new.place_deadline else "none"
    session.add(new)
    session.add(OrderEvent(
        order=new, kind="created", from_status=None, to_status=OrderStatus.PENDING_NEW,
        filled_quantity=Decimal(0), source=ReportSource.PLACEMENT, at=now,
        detail=f"replaces order {old.id} (broker order {old.broker_order_id}): {asked}; "
               f"placement deadline {deadline}",
    ))  # fmt: skip
    session.add(OrderEvent(
        order_id=old.id, kind=REQUESTED, from_status=old.status, to_status=old.status,
        filled_quantity=old.filled_quantity, source=ReportSource.MANUAL, at=now,
        detail=f"replacement requested: order {new.id} (client order id "
               f"{new.client_order_id}), {asked}",
    ))  # fmt: skip
    add_order_event(session, new, EventKind.ORDER_PLACED, now=now)
