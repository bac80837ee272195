"""Builders for reports and states used across the model tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import FillReport, OrderReport

T0 = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
BROKER_ID = "b-1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def report(
    status: OrderStatus,
    filled: str | Decimal = "0",
    *,
    quantity: str = "10",
    updated: float | None = 1,
    avg: str | None = None,
    fills: tuple[FillReport, ...] = (),
    broker_order_id: str = BROKER_ID,
    raw_status: str | None = None,
    notional: str | None = None,
) -> OrderReport:
    """A report of an order for ``quantity``, or with ``notional`` of a notional order."""
    return OrderReport(
        broker_order_id=broker_order_id,
        client_order_id="c-1",
        symbol="AAPL",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.DAY,
        quantity=None if notional is not None else Decimal(quantity),
        notional=None if notional is None else Decimal(notional),
        status=status,
        raw_status=raw_status or status.value.lower(),
        filled_quantity=Decimal(filled),
        average_fill_price=Decimal(avg) if avg else None,
        created_at=T0,
        updated_at=at(updated) if updated is not None else None,
        fills=fills,
    )


def fill(
    fill_id: str,
    quantity: str,
    price: str = "100",
    *,
    fee: str = "0",
    broker_order_id: str = BROKER_ID,
    seconds: float = 1,
) -> FillReport:
    return FillReport(
        broker_fill_id=fill_id,
        broker_order_id=broker_order_id,
        symbol="AAPL",
        side=Side.BUY,
        quantity=Decimal(quantity),
        price=Decimal(price),
        fee=Decimal(fee),
        filled_at=at(seconds),
    )
