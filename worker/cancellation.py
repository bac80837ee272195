"""Cancelling: PENDING_CANCEL locally by the table, then the request to the broker; the
outcome (canceled, or filled first: cancels race fills) arrives through the monitor."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from brokers.errors import BrokerError, OrderNotCancelable, OrderNotFound
from models.accounts import UnknownAccount, get_account
from models.enums import OrderStatus, ReportSource
from models.orders import Order
from models.repository import load_state, record_applied
from models.state_machine import can_transition, local_transition
from worker.args import CancelOrderArgs, InvalidTaskArguments
from worker.context import WorkerContext

logger = logging.getLogger(__name__)
TASK = "ordersync.cancel_order"


@dataclass(frozen=True, slots=True)
class CancelResult:
    order_id: str
    monitor: bool
    retry_reason: str | None = None


def cancel_order(ctx: WorkerContext, args: CancelOrderArgs) -> CancelResult:
    with ctx.sessions.begin() as session:
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
        if order.status.is_terminal:
            return CancelResult(order.id, monitor=False)
        if order.broker_order_id is None:
            return CancelResult(order.id, monitor=True, retry_reason="not acknowledged yet")
        if can_transition(order.status, OrderStatus.PENDING_CANCEL):
            now = ctx.now()
            applied = local_transition(load_state(session, order), OrderStatus.PENDING_CANCEL,
                                       now=now, detail="cancel requested")  # fmt: skip
            record_applied(session, order, applied, now=now, source=ReportSource.MANUAL)
        adapter = ctx.adapter(account)
        order_id, broker_order_id = order.id, order.broker_order_id

    try:
        adapter.cancel(broker_order_id)
    except OrderNotCancelable:
        logger.info("order %s was no longer cancelable; its report will say why", order_id)
    except OrderNotFound as error:
        logger.warning("cancel: order %s not found at the broker: %s", order_id, error)
    except BrokerError as error:
        return CancelResult(order_id, monitor=True, retry_reason=str(error))
    return CancelResult(order_id, monitor=True)
