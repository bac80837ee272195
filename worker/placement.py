"""Placing an order: the row first (PENDING_NEW, committed), then the broker, then the
outcome through the state machine. Re-running it for the same order is always safe.

Every placement has a deadline. Until it passes, an order the broker does not have yet is
sent again (the same client order id, which the broker refuses to duplicate); once it has
passed nothing is sent, and an order that provably never reached the broker ends REJECTED
with the reason. An attempt runs under the order's lock, by the placement task, or, when
the task's lease has lapsed (its worker died), by the order's monitor or a sweep.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from brokers import registry
from brokers.registry import CredentialsMissing
from core.enums import (
    BrokerKind,
    Intent,
    OrderOrigin,
    OrderStatus,
    OrderType,
    ReportSource,
    TimeInForce,
)
from core.reports import PlaceOrderRequest
from models.accounts import UnknownAccount
from models.base import new_id
from models.ledger import ExitRefused, Position, check_exit
from models.orders import Order, OrderEvent
from models.outbox import EventKind, add_order_event
from models.repository import load_state, record_applied
from models.state_machine import local_transition
from ordersync.metrics import record
from ordersync.settings import Settings
from worker.args import InvalidTaskArguments, PlaceOrderArgs
from worker.budget import Priority, priority, send_by
from worker.chains import is_live, start_chain
from worker.context import AccountInfo, WorkerContext
from worker.fills import adopt_parked
from worker.legs import register_legs
from worker.locks import HeldLock, order_lock_name, write_order
from worker.reports import apply_in_new_session
from worker.submission import NotSent, Refused, Reported, Unclear, look_up, submit

logger = logging.getLogger(__name__)
TASK = "ordersync.place_order"
LATE_KEY = "ordersync:stats:placements_past_deadline"
IMMEDIATE_TIFS = (TimeInForce.IOC, TimeInForce.FOK)


def placing_key(order_id: str) -> str:
    """Held while the placement task means to attempt again: nobody else takes over."""
    return f"ordersync:placing:{order_id}"


class Step(StrEnum):
    PLACED = "placed"  # the broker has the order
    REJECTED = "rejected"  # refused by the broker, or never reached it before the deadline
    RETRY = "retry"  # not there yet: attempt again after ``retry_after_s``
    UNRESOLVED = "unresolved"  # past the deadline, and no lookup could say yet
    BUSY = "busy"  # another attempt holds the order
    DONE = "done"  # nothing to place: the order was settled before


@dataclass(frozen=True, slots=True)
class Attempt:
    step: Step
    reason: str = ""
    retry_after_s: float = 0.0


@dataclass(frozen=True, slots=True)
class PlaceResult:
    order_id: str
    retry_after_s: float | None = None  # the task attempts again after this long
    chain: str | None = None  # a monitor chain started here, whose first check to enqueue


def client_order_id_for(account: str, args: PlaceOrderArgs, task_id: str) -> str:
    """Deterministic: a redelivered or retried call maps to the same broker order."""
    if args.client_order_id:
        return args.client_order_id
    if args.decision_id:
        basis = f"{account}|decision|{args.decision_id}|{args.intent or ''}"
    else:
        basis = f"{account}|task|{task_id}"
    return "os-" + hashlib.sha256(basis.encode()).hexdigest()[:32]


def default_deadline_s(settings: Settings, order_type: OrderType, tif: TimeInForce) -> float:
    """Market and immediate orders are worthless late; resting orders may wait longer."""
    if order_type is OrderType.MARKET or tif in IMMEDIATE_TIFS:
        return settings.place_deadline_market_s
    return settings.place_deadline_s


def deadline_of(order: Order, settings: Settings) -> datetime:
    """The row's deadline (rows written before deadlines existed: from their creation)."""
    if order.place_deadline is not None:
        return order.place_deadline
    seconds = default_deadline_s(settings, order.order_type, order.time_in_force)
    return order.created_at + timedelta(seconds=seconds)


def awaiting_broker(order: Order) -> bool:
    """A write-ahead row: placed by us, and the broker's acknowledgement not seen yet."""
    return (
        order.origin is OrderOrigin.PLACED
        and order.status is OrderStatus.PENDING_NEW
        and order.broker_order_id is None
    )


def fit_to_broker(broker: BrokerKind, args: PlaceOrderArgs) -> PlaceOrderArgs:
    """The terms as this broker takes them (its default time in force where none was
    named), or InvalidTaskArguments when it would refuse them outright."""
    if "time_in_force" not in args.model_fields_set:
        tif = registry.default_time_in_force(broker, args.symbol)
        if tif is not args.time_in_force:
            args = args.model_copy(update={"time_in_force": tif})
    problem = registry.terms_problem(
        broker, args.symbol, args.order_type, args.time_in_force, args.order_class,
        quantity=args.quantity, notional=args.notional, intent=args.intent,
    )  # fmt: skip
    if problem is not None:
        raise InvalidTaskArguments(TASK, problem)
    return args


def _requested_price(args: PlaceOrderArgs) -> object:
    if args.requested_price is not None:
        return args.requested_price
    if args.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return args.limit_price
    return args.stop_price  # stop orders aim at the stop; market orders have none


def _deadline(ctx: WorkerContext, args: PlaceOrderArgs, now: datetime) -> datetime:
    if args.expires_at is not None:
        return args.expires_at.astimezone(UTC)
    seconds = args.valid_for_s
    if seconds is None:
        seconds = default_deadline_s(ctx.settings, args.order_type, args.time_in_force)
    return now + timedelta(seconds=float(seconds))


def _new_order(
    account: AccountInfo, args: PlaceOrderArgs, client_order_id: str, now: datetime,
    deadline: datetime,
) -> Order:  # fmt: skip
    return Order(
        id=new_id(), account_id=account.id, broker=account.broker,
        client_order_id=client_order_id,
        origin=OrderOrigin.PLACED, symbol=args.symbol, side=args.side, intent=args.intent,
        decision_id=args.decision_id, trade_id=args.trade_id, order_type=args.order_type,
        time_in_force=args.time_in_force, quantity=args.quantity, notional=args.notional,
        limit_price=args.limit_price, stop_price=args.stop_price,
        requested_price=_requested_price(args),
        status=OrderStatus.PENDING_NEW, created_at=now, updated_at=now,
        place_deadline=deadline, sent_at=now if now < deadline else None,
        order_class=args.order_class,
        take_profit_limit_price=args.take_profit.limit_price if args.take_profit else None,
        stop_loss_stop_price=args.stop_loss.stop_price if args.stop_loss else None,
        stop_loss_limit_price=args.stop_loss.limit_price if args.stop_loss else None,
    )  # fmt: skip


def _same_order(order: Order, args: PlaceOrderArgs) -> bool:
    return (order.symbol, order.side, order.quantity, order.notional, order.order_type,
            order.limit_price, order.stop_price, order.order_class) == (
                args.symbol, args.side, args.quantity, args.notional, args.order_type,
                args.limit_price, args.stop_price, args.order_class)  # fmt: skip


def trading_account(ctx: WorkerContext, session: Session, name: str, task: str) -> AccountInfo:
    """The account a call places for: known, active, its credentials in the environment
    (all checked before anything is written)."""
    try:
        account = ctx.account(session, name=name)
    except UnknownAccount as error:
        raise InvalidTaskArguments(task, str(error)) from None
    if not account.is_active:
        raise InvalidTaskArguments(task, f"account {account.name!r} is not active")
    try:
        ctx.adapter(account)
    except CredentialsMissing as error:
        raise InvalidTaskArguments(task, str(error)) from None
    return account


def _write_ahead(
    ctx: WorkerContext, session: Session, args: PlaceOrderArgs, task_id: str, now: datetime
) -> tuple[Order, AccountInfo, bool]:
    """The committed PENDING_NEW row, or the existing one for this client order id."""
    account = trading_account(ctx, session, args.account, TASK)
    args = fit_to_broker(account.broker, args)
    client_order_id = client_order_id_for(account.name, args, task_id)
    _refuse_an_oversized_exit(session, account, args, client_order_id)
    order = _new_order(account, args, client_order_id, now, _deadline(ctx, args, now))
    session.add(order)
    session.add(OrderEvent(
        order=order, kind="created", from_status=None,
        to_status=OrderStatus.PENDING_NEW, filled_quantity=Decimal(0),
        source=ReportSource.PLACEMENT, at=now,
        detail=f"placement deadline {order.place_deadline.isoformat()}"
        if order.place_deadline else None,
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
    # (an EXIT names a quantity: a notional one is refused with the arguments)
    if args.intent is not Intent.EXIT or args.trade_id is None or args.quantity is None:
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


def place_order(ctx: WorkerContext, args: PlaceOrderArgs, *, task_id: str) -> PlaceResult:
    """Write the row (once), then one attempt; the task attempts again while asked to (a
    retry, like a redelivered message, finds the row and attempts on it)."""
    with ctx.sessions() as session:
        order, _, fresh = _write_ahead(ctx, session, args, task_id, ctx.now())
        order_id, waiting = order.id, awaiting_broker(order)
        done = order.status.is_terminal and not order.fill_gap
    # The monitor chain is due before the broker hears of the order: if this task dies,
    # revive_monitors restarts the chain, which takes the placement over once the order's
    # lock and the task's lease have lapsed (or a sweep does). A redelivered call whose
    # order has no live chain (its window ran out while the task kept trying) gets one.
    chain = start_chain(ctx, order_id) if fresh or not (done or is_live(ctx, order_id)) else None
    if not waiting:
        return PlaceResult(order_id, chain=chain)  # settled already
    return result_of(ctx, order_id, attempt(ctx, order_id, first=fresh), chain)


def result_of(ctx: WorkerContext, order_id: str, done: Attempt, chain: str | None) -> PlaceResult:
    """What the task does next after an attempt (and the lease that keeps others off)."""
    if done.step in (Step.RETRY, Step.BUSY):
        lease_s = done.retry_after_s + ctx.settings.place_lease_s
        ctx.redis.set(placing_key(order_id), 1, px=max(1, int(lease_s * 1000)))
        return PlaceResult(order_id, retry_after_s=done.retry_after_s, chain=chain)
    ctx.redis.delete(placing_key(order_id))
    return PlaceResult(order_id, chain=chain)


def placement_leased(ctx: WorkerContext, order_id: str) -> bool:
    """The placement task will attempt again soon: a monitor or sweep must not take over."""
    return bool(ctx.redis.exists(placing_key(order_id)))


@dataclass(frozen=True, slots=True)
class _Row:
    """What an attempt needs of the row, read under the order lock."""

    account: AccountInfo
    request: PlaceOrderRequest
    deadline: datetime
    sent_at: datetime | None
    last_error: str | None
    created_at: datetime
    replacing: bool = False  # a replacement: sent as one, never as an order of its own
    replaces: str | None = None  # the broker id of the order it replaces


def _load(ctx: WorkerContext, order_id: str) -> _Row | None:
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None or not awaiting_broker(order):
            return None
        account = ctx.account(session, id=order.account_id)
        request = PlaceOrderRequest(
            client_order_id=order.client_order_id, symbol=order.symbol, side=order.side,
            quantity=order.quantity, order_type=order.order_type,
            time_in_force=order.time_in_force, limit_price=order.limit_price,
            stop_price=order.stop_price, order_class=order.order_class,
            take_profit_limit_price=order.take_profit_limit_price,
            stop_loss_stop_price=order.stop_loss_stop_price,
            stop_loss_limit_price=order.stop_loss_limit_price, notional=order.notional,
            intent=order.intent, held=_held(session, order, account),
        )  # fmt: skip
        replaces = None
        if order.replaces_id is not None:
            replaced = session.get(Order, order.replaces_id)
            replaces = None if replaced is None else replaced.broker_order_id
        return _Row(account, request, deadline_of(order, ctx.settings), order.sent_at,
                    order.last_error, order.created_at, order.replaces_id is not None,
                    replaces)  # fmt: skip


def _held(session: Session, order: Order, account: AccountInfo) -> Decimal | None:
    """The account's recorded position in the order's symbol, where the broker's side words
    depend on it (None elsewhere: not read)."""
    if not registry.sides_say_open_or_close(account.broker):
        return None
    held = session.scalar(select(Position.quantity).where(
        Position.account_id == order.account_id, Position.symbol == order.symbol))  # fmt: skip
    return Decimal(0) if held is None else held


def attempt(
    ctx: WorkerContext, order_id: str, lock: HeldLock | None = None, *, first: bool = False
) -> Attempt:
    """One attempt under the order's lock (``lock``: the caller holds it already).

    ``first``: the row was just written, its ``sent_at`` marking this attempt's send."""
    if lock is not None:
        return _attempt(ctx, order_id, lock, first)
    # A shorter lock than a monitor step's: a worker killed mid-attempt holds the order
    # only that long before the placement can be taken over, well within a market deadline.
    own = HeldLock(ctx.redis, order_lock_name(order_id), ctx.settings.place_lock_ttl_s)
    with own as held:
        if not held:
            record.lock_skip("place_order")
            return Attempt(Step.BUSY, "another worker holds the order",
                           ctx.settings.place_retry_delay_s)  # fmt: skip
        return _attempt(ctx, order_id, own, first)


def _attempt(ctx: WorkerContext, order_id: str, lock: HeldLock, first: bool) -> Attempt:
    row = _load(ctx, order_id)
    if row is None:
        return Attempt(Step.DONE)
    now = ctx.now()
    # No request after half the lock's life: the lock must outlive the attempt (a second
    # attempt meanwhile would only be refused as a duplicate, but would cost a request).
    lock_bound = now + timedelta(seconds=lock.ttl_s / 2)
    if now >= row.deadline:
        return _past_deadline(ctx, order_id, row, lock_bound)
    if row.replacing and row.replaces is None:
        reason = "the order it replaces is no longer known here: nothing was sent"
        _reject(ctx, order_id, reason)
        return Attempt(Step.REJECTED, reason)
    marked_here = first or row.sent_at is None  # no earlier send may have reached the broker
    adapter = ctx.adapter(row.account)
    if not marked_here and not adapter.refuses_reused_client_ids:
        # An earlier send may have made the order, which may be done by now: this broker
        # would take the same client order id again as a second order. Send only once it
        # says it has none (an earlier send still under way cannot land by now: its answer
        # timed out, and Binance drops a request older than its recvWindow).
        why = "an earlier send may have reached the broker, which takes a used id again"
        looked = _look(ctx, order_id, row, lock_bound, unclear=Step.RETRY, why=why)
        if looked is not None:
            return looked
    if row.sent_at is None:
        _set_sent(ctx, order_id, now)
    with priority(Priority.PLACEMENT), send_by(min(row.deadline, lock_bound)):
        outcome = submit(adapter, row.request, row.replaces)
    if isinstance(outcome, Reported):  # the broker's truth: applied whoever holds the lock
        _placed(ctx, order_id, row, outcome)
        return Attempt(Step.PLACED)
    if not lock.renew():  # another attempt may hold the order now: it decides, not this one
        return Attempt(Step.BUSY, "lost the order's lock", ctx.settings.place_retry_delay_s)
    if isinstance(outcome, Refused):
        return _refused(ctx, order_id, row, outcome, marked_here, lock_bound)
    if isinstance(outcome, Unclear) and outcome.exists:
        ctx.redis.set(exists_key(order_id), 1, ex=EXISTS_TTL_S)
    # A send that never went out leaves the row as it was: if nothing else was ever sent
    # (and the lock was ours all along), the order provably never reached the broker.
    never_sent = isinstance(outcome, NotSent) and marked_here
    reason = outcome.reason
    _note_error(ctx, order_id, f"not placed yet, trying again: {reason}", clear_sent=never_sent)
    left_s = (row.deadline - ctx.now()).total_seconds()
    if left_s <= 0:
        return _past_deadline(ctx, order_id, _load(ctx, order_id) or row, lock_bound)
    return Attempt(Step.RETRY, reason, min(ctx.settings.place_retry_delay_s, left_s))


def exists_key(order_id: str) -> str:
    """Set once the broker has said the order's client id is taken: it exists, whatever a
    later lookup says, so it is never rejected as one that never reached the broker."""
    return f"ordersync:placing:exists:{order_id}"


EXISTS_TTL_S = 7 * 86400


def _placed(ctx: WorkerContext, order_id: str, row: _Row, outcome: Reported) -> None:
    apply_in_new_session(ctx, order_id, outcome.report, ReportSource.PLACEMENT, submitted=True)
    record.placement_acknowledged(row.account.broker.value, row.account.name, row.created_at,
                                  ctx.now(), row.deadline)  # fmt: skip
    adopt_parked(ctx, row.account.id, outcome.report.broker_order_id)
    try:  # the placement stands whatever happens here: the monitor registers them too
        register_legs(ctx, order_id, outcome.report, ReportSource.PLACEMENT)
    except Exception:
        logger.exception("order %s: its legs could not be recorded yet", order_id)


def _look(ctx: WorkerContext, order_id: str, row: _Row, lock_bound: datetime, *,
          unclear: Step, why: str) -> Attempt | None:  # fmt: skip
    """Look the order up: PLACED when the broker shows it, ``unclear`` (with ``why`` noted)
    when it could not say, None on a not-found."""
    with priority(Priority.PLACEMENT), send_by(lock_bound):
        found = look_up(ctx.adapter(row.account), row.request.client_order_id,
                        row.request.symbol)  # fmt: skip
    if isinstance(found, Reported):
        _placed(ctx, order_id, row, found)
        return Attempt(Step.PLACED)
    if isinstance(found, Unclear):
        _note_error(ctx, order_id, f"{why}; {found.reason}")
        return Attempt(unclear, found.reason, ctx.settings.place_retry_delay_s)
    return None


def _refused(ctx: WorkerContext, order_id: str, row: _Row, outcome: Refused,
             marked_here: bool, lock_bound: datetime) -> Attempt:  # fmt: skip
    """A refusal is final for this send; an earlier send that may have reached the broker
    is looked up first (a broker may check buying power before it checks the client id)."""
    if not marked_here:
        why = f"refused ({outcome.reason}), and an earlier send may have reached the broker"
        looked = _look(ctx, order_id, row, lock_bound, unclear=Step.RETRY, why=why)
        if looked is not None:
            return looked
    logger.error("order %s (%s) rejected by the broker: %s", order_id,
                 row.request.client_order_id, outcome.reason)  # fmt: skip
    _reject(ctx, order_id, outcome.reason)
    record.placement_rejected(row.account.broker.value, row.account.name)
    return Attempt(Step.REJECTED, outcome.reason)


def settle_s(settings: Settings) -> float:
    """How long after the deadline a send that went out just before it may still land."""
    return 2 * settings.broker_timeout_s + 5.0


def _past_deadline(ctx: WorkerContext, order_id: str, row: _Row,
                   lock_bound: datetime) -> Attempt:  # fmt: skip
    """Nothing is sent any more. A row that never sent anything is rejected at once; one
    that may have reached the broker is looked up, and rejected on a not-found only once a
    send from just before the deadline has had time to land, and never when the broker has
    said its client id is taken."""
    at = row.deadline.isoformat()
    if row.sent_at is None:
        last = f" (last attempt: {row.last_error})" if row.last_error else ""
        reason = f"placement deadline {at} passed; never reached the broker{last}"
    else:
        why = f"placement deadline {at} passed"
        looked = _look(ctx, order_id, row, lock_bound, unclear=Step.UNRESOLVED, why=why)
        if looked is not None:
            return looked
        wait_s = (row.deadline - ctx.now()).total_seconds() + settle_s(ctx.settings)
        if wait_s > 0 or ctx.redis.exists(exists_key(order_id)):
            why = "not found yet"
            _note_error(ctx, order_id, f"placement deadline {at} passed; {why}")
            return Attempt(Step.UNRESOLVED, why, max(wait_s, ctx.settings.place_retry_delay_s))
        cid = row.request.client_order_id
        reason = (f"placement deadline {at} passed; the broker has no order with client "
                  f"order id {cid!r}: never reached the broker")  # fmt: skip
    ctx.redis.incr(LATE_KEY)
    logger.error("order %s (%s) rejected: %s", order_id, row.request.client_order_id, reason)
    _reject(ctx, order_id, reason)
    dropped = "deadline_unsent" if row.sent_at is None else "not_at_broker_after_deadline"
    record.placement_dropped(row.account.broker.value, row.account.name, dropped)
    return Attempt(Step.REJECTED, reason)


def _set_sent(ctx: WorkerContext, order_id: str, now: datetime) -> None:
    """Before a send: from now on the order may exist at the broker."""

    def mark(_: Session, order: Order) -> None:
        order.sent_at = order.sent_at or now

    write_order(ctx.sessions, order_id, mark, what="marking a send")


def _note_error(ctx: WorkerContext, order_id: str, error: str, *, clear_sent: bool = False) -> None:
    """Where an operator sees why the placement is not done (on fresh state if it raced)."""

    def note(_: Session, order: Order) -> None:
        order.last_error = error[:2000]
        order.updated_at = ctx.now()
        if clear_sent:
            order.sent_at = None

    write_order(ctx.sessions, order_id, note, what="noting a placement error")


def _reject(ctx: WorkerContext, order_id: str, reason: str) -> None:
    """REJECTED by the table, unless a concurrent report has moved the order on meanwhile."""

    def reject(session: Session, order: Order) -> None:
        if order.status is not OrderStatus.PENDING_NEW:
            return
        now = ctx.now()
        order.last_error = reason[:2000]  # before the event is staged: it carries the reason
        applied = local_transition(load_state(session, order), OrderStatus.REJECTED, now=now,
                                   detail=reason)  # fmt: skip
        record_applied(session, order, applied, now=now, source=ReportSource.PLACEMENT)

    write_order(ctx.sessions, order_id, reject, what="rejecting", for_update=True)
