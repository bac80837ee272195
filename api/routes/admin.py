"""The admin debug view: the broker's recent orders beside ours, mismatches named."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select

from api.auth import admin_only
from api.deps import ApiState, api_state
from api.routes.orders import order_out
from api.schemas import Money, OrderOut
from brokers.errors import BrokerError
from core.reports import OrderReport
from models.orders import Account, Order
from ordersync.positions import order_lifecycles
from ordersync.queries import OrderFilter, get_order, list_orders

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(admin_only)])
MAX_PAGES = 10


class BrokerOrderOut(BaseModel):
    broker_order_id: str
    client_order_id: str | None
    symbol: str
    side: str
    order_type: str
    quantity: Money | None
    notional: Money | None = None
    status: str
    raw_status: str
    filled_quantity: Money
    average_fill_price: Money | None
    created_at: Any
    updated_at: Any | None


class DebugRow(BaseModel):
    broker: BrokerOrderOut | None
    ours: OrderOut | None
    mismatches: list[str]


class DebugView(BaseModel):
    account: str
    since: Any
    rows: list[DebugRow]
    broker_error: str | None = None
    truncated: bool = False


def compare(report: OrderReport | None, ours: OrderOut | None) -> list[str]:
    """What differs between the broker's order and our record of it."""
    if report is None:
        return ["not listed by the broker in this window"]
    if ours is None:
        return ["unknown to ordersync"]
    found = []
    if report.status != ours.status:
        found.append(f"status: broker {report.status.value}, ours {ours.status.value}")
    if report.filled_quantity != ours.filled_quantity:
        found.append(f"filled: broker {report.filled_quantity}, ours {ours.filled_quantity}")
    if report.quantity != ours.quantity:
        found.append(f"quantity: broker {report.quantity}, ours {ours.quantity}")
    if report.notional != ours.notional:
        found.append(f"notional: broker {report.notional}, ours {ours.notional}")
    if report.symbol != ours.symbol or report.side != ours.side:
        found.append("symbol or side differ")
    return found


def _broker_out(report: OrderReport) -> BrokerOrderOut:
    return BrokerOrderOut(
        broker_order_id=report.broker_order_id, client_order_id=report.client_order_id,
        symbol=report.symbol, side=report.side.value, order_type=report.order_type.value,
        quantity=report.quantity, notional=report.notional, status=report.status.value,
        raw_status=report.raw_status,
        filled_quantity=report.filled_quantity, average_fill_price=report.average_fill_price,
        created_at=report.created_at, updated_at=report.updated_at,
    )  # fmt: skip


@router.get("/accounts/{account}/broker-orders", response_model=DebugView,
            summary="The broker's recent orders beside ours")  # fmt: skip
def broker_orders(
    account: str, state: Annotated[ApiState, Depends(api_state)],
    hours: Annotated[float, Query(gt=0, le=24 * 7)] = 24.0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> DebugView:  # fmt: skip
    since = state.now() - timedelta(hours=hours)
    with state.ctx.sessions() as session:
        row = session.scalar(select(Account).where(Account.name == account))
        if row is None:
            raise HTTPException(404, f"no account {account!r}")
        adapter = state.ctx.adapter(state.ctx.account(session, id=row.id))
        views = list_orders(session, row.id, OrderFilter(statuses=None, created_after=since),
                            limit=limit)  # fmt: skip
        texts = order_lifecycles(session, views)
        ours = {v.order_id: order_out(v, texts[v.order_id]) for v in views}
        # A broker that lists one symbol at a time is asked for the symbols of ours.
        symbols = sorted({v.symbol for v in views}) if adapter.lists_by_symbol else []
        reports, error, truncated = _broker_listing(adapter, since, limit, symbols)
        listed_ids = [r.broker_order_id for r in reports]
        extra = session.scalars(select(Order.id).where(
            Order.account_id == row.id, Order.broker_order_id.in_(listed_ids),
            Order.id.not_in(list(ours))))  # fmt: skip
        # Ours, created before the window, that the broker still lists.
        older = [v for i in extra if (v := get_order(session, i)) is not None]
        texts = order_lifecycles(session, older)
        ours |= {v.order_id: order_out(v, texts[v.order_id]) for v in older}
    by_broker_id = {o.broker_order_id: o for o in ours.values() if o.broker_order_id}
    rows = []
    for report in reports:
        mine = by_broker_id.get(report.broker_order_id)
        rows.append(DebugRow(broker=_broker_out(report), ours=mine,
                             mismatches=compare(report, mine)))  # fmt: skip
    listed = set(listed_ids)
    for mine in ours.values():
        if mine.broker_order_id not in listed:
            problems = [] if error or truncated else compare(None, mine)
            rows.append(DebugRow(broker=None, ours=mine, mismatches=problems))
    return DebugView(account=account, since=since, rows=rows, broker_error=error,
                     truncated=truncated)  # fmt: skip


def _broker_listing(adapter: Any, since: Any, limit: int, symbols: list[str]
                    ) -> tuple[list[OrderReport], str | None, bool]:  # fmt: skip
    reports: list[OrderReport] = []
    token: str | None = None
    try:
        for _ in range(MAX_PAGES):
            page = adapter.list_orders(status="all", after=since if token is None else None,
                                       page_token=token, symbols=symbols)  # fmt: skip
            reports.extend(page.items)
            token = page.next_token
            if token is None or len(reports) >= limit:
                break
    except BrokerError as error:
        return reports, str(error), False
    return reports[:limit], None, token is not None or len(reports) > limit
