"""Tradier lists no executions: the worker derives them from the cumulative figures its
reports carry (models.reconciliation.derived_fill). These reports are enough for that."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from brokers.tradier import parse
from core.enums import OrderStatus
from models.reconciliation import derived_fill
from models.state_machine import OrderState
from tests.brokers.tradier.test_parse import order

T0 = datetime(2024, 3, 5, 15, tzinfo=UTC)


def test_cumulative_changes_become_fills_with_ids_a_replay_repeats() -> None:
    partial = parse.parse_order(order(status="partially_filled", exec_quantity="20",
                                      avg_fill_price="21.95", duration="gtc"))  # fmt: skip
    full = parse.parse_order(order(status="filled", exec_quantity="50", avg_fill_price="22.00",
                                   transaction_date="2018-06-01T12:31:00.000Z"))  # fmt: skip
    state = OrderState(OrderStatus.NEW, Decimal(50), broker_order_id="228175")

    first = derived_fill(state, partial, now=T0)
    assert first is not None
    after_first = OrderState(OrderStatus.PARTIALLY_FILLED, Decimal(50),
                             filled_quantity=Decimal(20), fill_notional=Decimal("439.00"),
                             broker_order_id="228175")  # fmt: skip
    second = derived_fill(after_first, full, now=T0)
    assert second is not None

    assert (first.broker_fill_id, first.quantity, first.price) == (
        "derived-228175-20", Decimal(20), Decimal("21.95"),
    )  # fmt: skip
    assert (second.broker_fill_id, second.quantity, second.price) == (
        "derived-228175-50", Decimal(30), Decimal("22.0333333333"),
    )  # fmt: skip
    assert second.filled_at == datetime(2018, 6, 1, 12, 31, tzinfo=UTC)  # transaction_date
    assert second.fee == 0  # Tradier's orders carry no commission
    assert derived_fill(state, partial, now=T0) == first  # the same report, the same fill


def test_an_order_with_nothing_filled_implies_no_fill() -> None:
    state = OrderState(OrderStatus.NEW, Decimal(50))

    assert derived_fill(state, parse.parse_order(order(status="open")), now=T0) is None
