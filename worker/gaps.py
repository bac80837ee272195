"""Closing a fill gap the forward sync left open: the broker reports an order more filled
than its recorded fills, and the account's listing after the cursor does not show the rest.

The order's own time window is re-read (the missing activity may sort below the cursor, or
have become visible late), at most ``fill_gap_max_rereads`` times with a doubling delay;
after the last one the gap is alerted once and left to deep reconciliation's slow cadence,
so one unexplained gap never drains the request budget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from models.orders import Order
from ordersync.metrics import record
from worker.alerts import Alert, AlertKind, send_alert
from worker.context import WorkerContext
from worker.fills import (
    WINDOW_MARGIN,
    adopt_parked,
    gap_key,
    gap_state,
    note_reread,
    reread_window,
)

logger = logging.getLogger(__name__)
GIVEN_UP_KEY = "ordersync:stats:fill_gaps_given_up"


class Gap(StrEnum):
    CLOSED = "closed"  # no gap (any more)
    WAITING = "waiting"  # not due for a re-read yet
    REREAD = "reread"  # re-read now, still open
    GIVEN_UP = "given_up"  # every re-read done: alerted, left to deep reconciliation


@dataclass(frozen=True, slots=True)
class _Window:
    """The order's life at the broker: its missing fills happened within it."""

    account_id: str
    broker_order_id: str | None
    client_order_id: str
    created_at: datetime
    last_seen_at: datetime | None
    gap: bool
    symbol: str = ""


def _window(ctx: WorkerContext, order_id: str) -> _Window | None:
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        if order is None:
            return None
        return _Window(order.account_id, order.broker_order_id, order.client_order_id,
                       order.created_at, order.broker_updated_at or order.closed_at,
                       bool(order.fill_gap), order.symbol)  # fmt: skip


def _closed(ctx: WorkerContext, order_id: str) -> Gap:
    """A later gap of the order starts with a fresh count (and may be alerted again)."""
    if ctx.redis.delete(gap_key(order_id)):  # a gap that was re-read: now closed
        record.fill_gap("closed")
    return Gap.CLOSED


def close_gap(ctx: WorkerContext, order_id: str,
              keep_alive: Callable[[], object] | None = None) -> Gap:  # fmt: skip
    """One step towards closing the order's gap (its forward sync has just run)."""
    window = _window(ctx, order_id)
    if window is None or not window.gap:
        return _closed(ctx, order_id)
    if window.broker_order_id:
        adopt_parked(ctx, window.account_id, window.broker_order_id)
        window = _window(ctx, order_id)
        if window is None or not window.gap:
            return _closed(ctx, order_id)
    state = gap_state(ctx, order_id)
    if state.alerted:
        return Gap.GIVEN_UP
    if ctx.now().timestamp() < state.next_at:
        return Gap.WAITING
    until = None
    if window.last_seen_at is not None:
        until = min(ctx.now(), window.last_seen_at + WINDOW_MARGIN)
    reread_window(ctx, window.account_id, window.created_at - WINDOW_MARGIN, until,
                  keep_alive=keep_alive, symbols=(window.symbol,))  # fmt: skip
    window = _window(ctx, order_id)
    if window is None or not window.gap:
        logger.info("fill gap of order %s closed by re-reading its window", order_id)
        return _closed(ctx, order_id)
    last = state.rereads + 1 >= ctx.settings.fill_gap_max_rereads
    note_reread(ctx, order_id, state, alerted=last)
    record.fill_gap("given_up" if last else "opened" if state.rereads == 0 else "reread")
    if not last:
        return Gap.REREAD
    ctx.redis.incr(GIVEN_UP_KEY)
    detail = (f"order {order_id} ({window.client_order_id}): the broker reports fills that "
              f"{state.rereads + 1} re-reads of its window did not show")  # fmt: skip
    logger.error("fill gap given up: %s", detail)
    send_alert(ctx.redis, ctx.settings, Alert(AlertKind.FILL_GAP, "fill_gap", 1, (order_id,),
                                              ctx.now(), detail=detail))  # fmt: skip
    return Gap.GIVEN_UP
