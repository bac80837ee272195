"""Reads the API serves beyond ``ordersync.queries``: one order with everything tied to it,
and the event log of one account. Plain functions over a session, scoped by account id."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.ledger import TradeOutcome
from models.orders import Fill, Order, OrderEvent
from models.outbox import OutboxEvent
from ordersync.metrics.readings import LatencySummary, summarize_latency
from ordersync.positions import order_lifecycles, trades
from ordersync.queries import OrderView, get_order

ORDER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class BadCursor(ValueError):
    def __init__(self) -> None:
        super().__init__("cursor is not one this API returned")


def encode_cursor(view: OrderView) -> str:
    raw = json.dumps([view.created_at.isoformat(), view.order_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at in UTC, order id) a page ended on; ``BadCursor`` for anything this API
    would not have written (a naive or out-of-range time, an id that is not a UUID)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, order_id = json.loads(raw)
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError("no UTC offset")
        parsed = parsed.astimezone(UTC)  # OverflowError: out of range once in UTC
    except (binascii.Error, ValueError, TypeError, OverflowError) as error:
        raise BadCursor() from error
    if not isinstance(order_id, str) or not ORDER_ID.fullmatch(order_id):
        raise BadCursor()  # e.g. a NUL, which PostgreSQL cannot even compare
    return parsed, order_id


def find_order_id(session: Session, account_id: str, *, order_id: str | None = None,
                  broker_order_id: str | None = None, client_order_id: str | None = None
                  ) -> str | None:  # fmt: skip
    """The order's id in this account by one of its three ids; None when the account has none
    (another account's order answers the same)."""
    query = select(Order.id).where(Order.account_id == account_id)
    if order_id is not None:
        query = query.where(Order.id == order_id)
    elif broker_order_id is not None:
        query = query.where(Order.broker_order_id == broker_order_id)
    else:
        query = query.where(Order.client_order_id == client_order_id)
    return session.scalar(query)


@dataclass(frozen=True, slots=True)
class OrderDetails:
    view: OrderView
    lifecycle: str
    history: list[OrderEvent]
    fills: list[Fill]
    trade: Any | None  # ordersync.positions.TradeView
    outcome: TradeOutcome | None
    last_report: dict[str, Any] | None
    legs: list[str]  # the exit legs made with it, by ordersync's ids


def order_details(session: Session, order_id: str) -> OrderDetails | None:
    view = get_order(session, order_id)
    if view is None:
        return None
    history = list(session.scalars(
        select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
    ))  # fmt: skip
    fills = list(session.scalars(
        select(Fill).where(Fill.order_id == order_id).order_by(Fill.filled_at, Fill.id)
    ))  # fmt: skip
    trade = outcome = None
    if view.trade_id is not None:
        found = trades(session, view.account, trade_id=view.trade_id)
        trade = found[0] if found else None
        outcome = session.scalar(select(TradeOutcome).where(
            TradeOutcome.account_id == view.account_id, TradeOutcome.trade_id == view.trade_id
        ))  # fmt: skip
    legs = list(session.scalars(
        select(Order.id).where(Order.parent_id == order_id).order_by(Order.created_at, Order.id)
    ))  # fmt: skip
    return OrderDetails(view, order_lifecycles(session, [view])[order_id], history, fills, trade,
                        outcome, _parsed(_last_report(session, order_id, history)),
                        legs)  # fmt: skip


def _last_report(session: Session, order_id: str, history: list[OrderEvent]) -> str | None:
    """The newer of the order's last applied report and the last one its history keeps
    (a report with an anomaly, or one written before orders kept their last)."""
    kept, kept_at = session.execute(
        select(Order.last_report, Order.last_report_at).where(Order.id == order_id)
    ).one()
    logged = next((e for e in reversed(history) if e.report), None)
    if logged is not None and (kept_at is None or logged.at > kept_at):
        return logged.report
    return kept


def _parsed(report: str | None) -> dict[str, Any] | None:
    if report is None:
        return None
    try:
        value = json.loads(report)
    except ValueError:
        return {"unparsed": report}
    return value if isinstance(value, dict) else {"value": value}


def event_json(event: OutboxEvent) -> dict[str, Any]:
    return {
        "id": event.id, "event_id": event.event_id, "kind": event.kind,
        "order_id": event.order_id, "trade_id": event.trade_id,
        "created_at": event.created_at, "data": json.loads(event.payload),
    }  # fmt: skip


LATENCY_POINTS_MAX = 2000
LATENCY_SCAN_MAX = 50_000  # the newest fills (of every account) looked at


@dataclass(frozen=True, slots=True)
class AccountLatency:
    points: list[tuple[datetime, float]]  # (recorded at, seconds), oldest first
    summary: LatencySummary


def account_latency(session: Session, account_id: str, now: datetime, window_s: float
                    ) -> AccountLatency:  # fmt: skip
    """Fill detection latency (commit here minus the broker's fill time) of the account's
    fills recorded in the last ``window_s``, the last ``LATENCY_POINTS_MAX`` of them."""
    newest = select(func.max(Fill.id)).scalar_subquery()
    rows = session.execute(  # a range of the primary key, however large the table
        select(Fill.recorded_at, Fill.filled_at)
        .join(Order, Order.id == Fill.order_id)
        .where(
            Fill.id > newest - LATENCY_SCAN_MAX,
            Order.account_id == account_id,
            Fill.recorded_at >= now - timedelta(seconds=window_s),
        )
        .order_by(Fill.recorded_at.desc())
        .limit(LATENCY_POINTS_MAX)
    ).all()
    points = [(recorded, max((recorded - filled).total_seconds(), 0.0))
              for recorded, filled in reversed(rows)]  # fmt: skip
    return AccountLatency(points, summarize_latency([p[1] for p in points], window_s))
