"""Which events a change produces (no I/O), and how an event carries an order's data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.enums import OrderStatus, Side
from core.reports import FillReport
from models.outbox import PRIORITY, EventKind, OutboxEvent, add_event, order_event_kinds
from models.state_machine import (
    Applied,
    HistoryEntry,
    HistoryKind,
    OrderState,
    Verdict,
    apply_report,
    local_transition,
)
from tests.models.factories import fill, report

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
S = OrderStatus


def applied(
    *entries: tuple[HistoryKind, OrderStatus, OrderStatus],
    state: OrderState = OrderState(S.NEW, Decimal(5)),
    new_fills: int = 0,
) -> Applied:
    history = tuple(HistoryEntry(kind, a, b, Decimal(0), None, detail=f"d{i}")
                    for i, (kind, a, b) in enumerate(entries))  # fmt: skip
    fills = tuple(FillReport(f"f{i}", "b1", "AAPL", Side.BUY, Decimal(1), Decimal(10), T0)
                  for i in range(new_fills))  # fmt: skip
    return Applied(state, Verdict.APPLIED, history=history, new_fills=fills)


def kinds(change: Applied, *, was_filled: bool = False) -> list[EventKind]:
    return list(order_event_kinds(change, was_filled=was_filled))


@pytest.mark.parametrize(
    ("to", "kind"),
    [
        (S.NEW, EventKind.ORDER_ACCEPTED),
        (S.CANCELED, EventKind.ORDER_CANCELLED),
        (S.REPLACED, EventKind.ORDER_CANCELLED),
        (S.REJECTED, EventKind.ORDER_REJECTED),
        (S.EXPIRED, EventKind.ORDER_EXPIRED),
    ],
)
def test_each_status_reached_is_announced(to: OrderStatus, kind: EventKind) -> None:
    assert kinds(applied((HistoryKind.TRANSITION, S.PENDING_NEW, to))) == [kind]


def test_a_pending_cancel_says_nothing_yet() -> None:
    assert kinds(applied((HistoryKind.TRANSITION, S.NEW, S.PENDING_CANCEL))) == []


def test_fill_events_wait_for_the_recorded_fills() -> None:
    gap = OrderState(S.FILLED, Decimal(5), broker_filled_quantity=Decimal(5))
    assert kinds(applied((HistoryKind.TRANSITION, S.NEW, S.FILLED), state=gap)) == []
    partly = OrderState(S.FILLED, Decimal(5), filled_quantity=Decimal(2),
                        broker_filled_quantity=Decimal(5))  # fmt: skip
    assert kinds(applied(state=partly, new_fills=2)) == [EventKind.ORDER_PARTIALLY_FILLED]
    whole = OrderState(S.FILLED, Decimal(5), filled_quantity=Decimal(5),
                       broker_filled_quantity=Decimal(5))  # fmt: skip
    assert kinds(applied(state=whole, new_fills=3)) == [EventKind.ORDER_FILLED]
    assert kinds(applied(state=whole), was_filled=True) == []  # announced once


def test_a_report_with_its_fills_is_announced_in_order() -> None:
    whole = OrderState(S.FILLED, Decimal(5), filled_quantity=Decimal(5),
                       broker_filled_quantity=Decimal(5))  # fmt: skip
    change = applied(
        (HistoryKind.TRANSITION, S.PENDING_NEW, S.NEW),
        (HistoryKind.TRANSITION, S.NEW, S.FILLED),
        state=whole,
        new_fills=1,
    )
    assert kinds(change) == [EventKind.ORDER_ACCEPTED, EventKind.ORDER_FILLED]


def test_a_late_fill_on_a_canceled_order_is_a_partial_fill() -> None:
    canceled = OrderState(S.CANCELED, Decimal(5), filled_quantity=Decimal(1),
                          broker_filled_quantity=Decimal(1))  # fmt: skip
    change = applied((HistoryKind.LATE_FILL, S.CANCELED, S.CANCELED), state=canceled,
                     new_fills=1)  # fmt: skip
    assert kinds(change) == [EventKind.ORDER_PARTIALLY_FILLED]


def test_an_anomaly_is_an_error_event_unless_it_was_announced_before() -> None:
    change = applied((HistoryKind.ANOMALY, S.NEW, S.NEW))
    assert kinds(change) == [EventKind.ORDER_ERROR]
    assert list(order_event_kinds(change, was_filled=False, repeated_anomaly=True)) == []


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        (S.PENDING_NEW, "0", [EventKind.ORDER_ACCEPTED]),
        (S.NEW, "0", [EventKind.ORDER_ACCEPTED]),  # once, though it passes PENDING_NEW
        (S.PARTIALLY_FILLED, "2", [EventKind.ORDER_ACCEPTED, EventKind.ORDER_PARTIALLY_FILLED]),
        (S.FILLED, "5", [EventKind.ORDER_ACCEPTED, EventKind.ORDER_FILLED]),
        (S.CANCELED, "0", [EventKind.ORDER_ACCEPTED, EventKind.ORDER_CANCELLED]),
        (S.REJECTED, "0", []),  # the broker confirms what was announced
    ],
)
def test_the_broker_overturning_our_rejection_is_announced(
    status: OrderStatus, filled: str, expected: list[EventKind]
) -> None:
    """After the ORDER_REJECTED of our own conclusion, what the broker says of the order."""
    rejected = local_transition(OrderState(S.PENDING_NEW, Decimal(5)), S.REJECTED, now=T0,
                                detail="never reached the broker")  # fmt: skip
    assert kinds(rejected) == [EventKind.ORDER_REJECTED]
    fills = tuple(fill(f"f{i}", "1") for i in range(int(filled)))
    change = apply_report(rejected.state, report(status, filled, quantity="5", fills=fills),
                          now=T0)  # fmt: skip
    assert kinds(change) == expected


def test_every_kind_has_a_priority_and_seed_003s_order_holds() -> None:
    assert set(PRIORITY) == set(EventKind)
    p = PRIORITY
    assert p[EventKind.ORDER_ERROR] > p[EventKind.ORDER_FILLED] > p[EventKind.ORDER_PLACED]
    assert p[EventKind.ORDER_PLACED] > p[EventKind.ORDER_CANCELLED]


class Collect:
    def __init__(self) -> None:
        self.added: list[object] = []

    def add(self, item: object) -> None:
        self.added.append(item)


def test_event_data_keeps_decimals_exact_and_times_in_utc() -> None:
    session = Collect()
    event = add_event(session, EventKind.ORDER_FILLED,  # type: ignore[arg-type]
                      {"price": Decimal("0.1000000001"), "at": T0, "side": Side.BUY}, now=T0,
                      order_id="o1")  # fmt: skip
    assert session.added == [event]
    assert isinstance(event, OutboxEvent)
    assert json.loads(event.payload) == {
        "price": "0.1000000001", "at": "2026-11-21T12:00:00+00:00", "side": "buy",
    }  # fmt: skip
    assert (event.kind, event.priority, event.order_id) == ("ORDER_FILLED", 8, "o1")


def test_event_data_refuses_what_it_cannot_carry() -> None:
    with pytest.raises(TypeError, match="not serializable in an event: object"):
        add_event(Collect(), EventKind.ORDER_ERROR, {"x": object()}, now=T0)  # type: ignore[arg-type]
