"""Sync one order now, on request (the HTTP API's "sync now"): the broker's view of it, applied
through the state machine, and its missing fills fetched: the monitor's path, under the same
order lock, recorded as a manual report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from brokers.errors import BrokerError, OrderNotFound
from core.enums import OrderStatus, ReportSource
from models.orders import Order
from worker import placement, replacements
from worker.budget import send_by
from worker.context import WorkerContext
from worker.fills import sync_now
from worker.locks import HeldLock, order_lock_name
from worker.reports import apply_in_new_session, record_derived_fill

logger = logging.getLogger(__name__)
LOCK_POLL_S = 0.05


class OrderBusy(RuntimeError):
    """Another worker holds the order (a monitor step, a placement) past the wait."""

    def __init__(self, order_id: str, why: str) -> None:
        self.order_id = order_id
        super().__init__(f"order {order_id} is busy: {why}; try again in a moment")


class BrokerNotAsked(RuntimeError):
    """The broker could not be asked (an error, a 429, an empty request budget)."""

    def __init__(self, order_id: str, error: BrokerError) -> None:
        self.order_id = order_id
        super().__init__(f"order {order_id}: the broker could not be asked: {error}")


class NoSuchOrder(LookupError):
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"no order {order_id!r}")


@dataclass(frozen=True, slots=True)
class SyncResult:
    order_id: str
    old_status: OrderStatus
    new_status: OrderStatus
    outcome: str  # "applied", "not found at the broker", "placement <step>"


def sync_order(
    ctx: WorkerContext, order_id: str, *, wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncResult:  # fmt: skip
    """Wait up to ``wait_s`` for the order's lock, then ask the broker and apply its answer."""
    lock = HeldLock(ctx.redis, order_lock_name(order_id), ctx.settings.order_lock_ttl_s)
    deadline = time.monotonic() + wait_s
    while not lock.__enter__():
        if time.monotonic() >= deadline:
            raise OrderBusy(order_id, "another worker is checking it")
        sleep(LOCK_POLL_S)
    try:
        return _sync(ctx, order_id, lock)
    finally:
        lock.__exit__(None, None, None)


def _sync(ctx: WorkerContext, order_id: str, lock: HeldLock) -> SyncResult:
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None:
            raise NoSuchOrder(order_id)
        before, awaiting = order.status, placement.awaiting_broker(order)
        account = ctx.account(session, id=order.account_id)
        broker_id, client_id, symbol = order.broker_order_id, order.client_order_id, order.symbol
    if awaiting:  # a write-ahead row: resolve its placement (a lookup first, never blind)
        if placement.placement_leased(ctx, order_id):
            raise OrderBusy(order_id, "its placement is in progress")
        done = placement.attempt(ctx, order_id, lock)
        return _result(ctx, order_id, before, f"placement {done.step.value}")
    adapter = ctx.adapter(account)
    bound = ctx.now() + timedelta(seconds=ctx.settings.order_lock_ttl_s / 2)
    try:
        with send_by(bound):
            report = (adapter.get_order(broker_id) if broker_id
                      else adapter.get_order_by_client_id(client_id, symbol=symbol))  # fmt: skip
            applied = apply_in_new_session(ctx, order_id, report, ReportSource.MANUAL,
                                           checked=True)  # fmt: skip
            if applied is not None and applied.state.broker_filled_quantity > (
                applied.state.filled_quantity
            ):
                if adapter.lists_fills:
                    sync_now(ctx, account.id, keep_alive=lambda: _renew(lock, order_id))
                else:
                    record_derived_fill(ctx, order_id, report, ReportSource.MANUAL)
            replaced = applied is not None and applied.state.status is OrderStatus.REPLACED
            if replaced and report.replaced_by:
                replacements.follow(ctx, order_id, report.replaced_by, ReportSource.MANUAL)
    except OrderNotFound as error:
        logger.info("sync: order %s not found at the broker: %s", order_id, error)
        return _result(ctx, order_id, before, "not found at the broker")
    except BrokerError as error:
        raise BrokerNotAsked(order_id, error) from error
    return _result(ctx, order_id, before, "applied")


def _renew(lock: HeldLock, order_id: str) -> None:
    if not lock.renew():
        raise OrderBusy(order_id, "its lock expired mid-sync")


def _result(ctx: WorkerContext, order_id: str, before: OrderStatus, outcome: str) -> SyncResult:
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        after = before if order is None else order.status
    return SyncResult(order_id, before, after, outcome)
