"""Helpers for the API tests beyond ``tests/api/conftest.py``: orders of any shape, reports
applied through the real repository path (so trades, positions and outcomes move as they do
in the workers), outbox events and history rows, row counts, other client addresses."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.enums import (
    BrokerKind,
    Intent,
    OrderOrigin,
    OrderStatus,
    OrderType,
    ReportSource,
    Side,
    TimeInForce,
)
from core.reports import FillReport, OrderReport
from models.ledger import Position, Trade, TradeOutcome
from models.orders import Fill, InvalidTaskCall, Order, OrderEvent
from models.outbox import EventKind, OutboxEvent, add_event
from models.repository import apply_to_order
from tests.api.conftest import T0, ApiWorld

D = Decimal


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_order(
    api: ApiWorld, account: str, client_order_id: str, *, side: Side = Side.BUY,
    order_type: OrderType = OrderType.MARKET, quantity: str = "10",
    limit_price: str | None = None, status: OrderStatus = OrderStatus.NEW,
    intent: Intent | None = None, trade_id: str | None = None, decision_id: str | None = None,
    symbol: str = "AAPL", created_at: datetime = T0, broker_order_id: str | None = None,
    notional: str | None = None,
) -> str:  # fmt: skip
    """An order row of any side and type (``notional``: for that amount of money, with no
    quantity), without fills (``apply`` brings them)."""
    with Session(api.engine) as session:
        order = Order(
            account_id=api.account_ids[account], broker=BrokerKind.ALPACA,
            client_order_id=client_order_id,
            broker_order_id=broker_order_id or f"b-{client_order_id}",
            origin=OrderOrigin.PLACED, symbol=symbol, side=side, order_type=order_type,
            time_in_force=TimeInForce.DAY, quantity=None if notional else D(quantity),
            notional=D(notional) if notional else None,
            limit_price=None if limit_price is None else D(limit_price), status=status,
            intent=intent, trade_id=trade_id, decision_id=decision_id,
            created_at=created_at, updated_at=created_at,
        )  # fmt: skip
        session.add(order)
        session.commit()
        return order.id


def apply(
    api: ApiWorld, order_id: str, status: OrderStatus, filled: str, *fills: tuple[str, str, str],
    second: float, raw_status: str | None = None,
) -> None:  # fmt: skip
    """The broker's view of the order (fills as (fill id, quantity, price)), applied through
    the state machine and the ledger as a worker applies it, and committed."""
    with Session(api.engine) as session:
        order = session.get(Order, order_id)
        assert order is not None
        assert order.broker_order_id is not None
        reports = tuple(
            FillReport(broker_fill_id=fill_id, broker_order_id=order.broker_order_id,
                       symbol=order.symbol, side=order.side, quantity=D(quantity),
                       price=D(price), fee=D("0.5"), filled_at=at(second))
            for fill_id, quantity, price in fills
        )  # fmt: skip
        prices = [D(p) * D(q) for _, q, p in fills]
        report = OrderReport(
            broker_order_id=order.broker_order_id, client_order_id=order.client_order_id,
            symbol=order.symbol, side=order.side, order_type=order.order_type,
            time_in_force=order.time_in_force, quantity=order.quantity, status=status,
            raw_status=raw_status or status.value.lower(), filled_quantity=D(filled),
            average_fill_price=sum(prices, D(0)) / D(filled) if D(filled) else None,
            created_at=order.created_at, updated_at=at(second), fills=reports,
            notional=order.notional,
        )  # fmt: skip
        apply_to_order(session, order, report, now=at(second), source=ReportSource.MONITOR)
        session.commit()


def closed_trade(api: ApiWorld, account: str, trade_id: str) -> tuple[str, str]:
    """An entry (buy 10 at 100) and its exit (sell 10 at 110), both filled: a CLOSED trade
    with its outcome. Returns (entry id, exit id)."""
    entry = make_order(api, account, f"{trade_id}-entry", intent=Intent.ENTRY,
                       trade_id=trade_id, created_at=at(0))  # fmt: skip
    apply(api, entry, OrderStatus.FILLED, "10", (f"{trade_id}-e1", "10", "100"), second=1)
    exit_ = make_order(api, account, f"{trade_id}-exit", side=Side.SELL, intent=Intent.EXIT,
                       trade_id=trade_id, created_at=at(30))  # fmt: skip
    apply(api, exit_, OrderStatus.FILLED, "10", (f"{trade_id}-x1", "10", "110"), second=60)
    return entry, exit_


def open_trade(api: ApiWorld, account: str, trade_id: str, symbol: str = "MSFT") -> str:
    """An entry (buy 4 at 50) filled, no exit: an OPEN trade. Returns the entry's id."""
    entry = make_order(api, account, f"{trade_id}-entry", intent=Intent.ENTRY,
                       trade_id=trade_id, symbol=symbol, quantity="4",
                       created_at=at(100))  # fmt: skip
    apply(api, entry, OrderStatus.FILLED, "4", (f"{trade_id}-e1", "4", "50"), second=101)
    return entry


def add_outbox_event(
    api: ApiWorld, order_id: str | None, kind: EventKind = EventKind.ORDER_ACCEPTED, **data: Any
) -> int:
    with Session(api.engine) as session:
        event = add_event(session, kind, {"order_id": order_id, **data}, now=at(5),
                          order_id=order_id)  # fmt: skip
        session.commit()
        return event.id


def add_history(api: ApiWorld, order_id: str, *, report: str | None, detail: str,
                second: float, to_status: OrderStatus | None = None) -> None:  # fmt: skip
    with Session(api.engine) as session:
        session.add(OrderEvent(order_id=order_id, kind="REPORT", from_status=OrderStatus.NEW,
                               to_status=to_status, filled_quantity=D(0), raw_status="new",
                               source=ReportSource.MONITOR, detail=detail, report=report,
                               at=at(second)))  # fmt: skip
        session.commit()


COUNTED = (Order, OrderEvent, Fill, OutboxEvent, Trade, TradeOutcome, Position,
           InvalidTaskCall)  # fmt: skip


def row_counts(api: ApiWorld) -> dict[str, int]:
    """Rows in every table a request could write, and the tasks sent: a refused request
    changes none of them."""
    with Session(api.engine) as session:
        counts = {m.__tablename__: int(session.scalar(select(func.count()).select_from(m)) or 0)
                  for m in COUNTED}  # fmt: skip
    counts["tasks sent"] = len(api.sent())
    return counts


def random_order_id() -> str:
    return str(uuid.uuid4())


def client_from(api: ApiWorld, host: str) -> TestClient:
    """Another client of the same running app, calling from ``host`` (the ASGI client
    address the failure counters key on). Not entered: the app's state is the fixture's."""
    return TestClient(api.client.app, client=(host, 50000))


def without(body: dict[str, Any], text: str, instead: str) -> dict[str, Any]:
    """``body`` with ``text`` in its detail replaced: two 404s compared apart from the name
    or id they echo back."""
    return {**body, "detail": str(body["detail"]).replace(text, instead)}


def postgresql_only(api: ApiWorld) -> None:
    if api.engine.dialect.name == "sqlite":
        pytest.skip("SQLite: one writer at a time, ids commit in order")


@contextmanager
def held_event(api: ApiWorld, order_id: str) -> Iterator[Callable[[], None]]:
    """An event whose id is taken now and committed only when the test says (PostgreSQL:
    ids come from a sequence, so a later event can commit first)."""
    session = Session(api.engine)
    try:
        add_event(session, EventKind.ORDER_ACCEPTED, {"held": True},
                          now=datetime.now(UTC), order_id=order_id)  # fmt: skip
        session.flush()
        yield session.commit
    finally:
        session.close()
