"""Alpaca's statuses that occur "only on rare occasions", produced by chance: each comes
where Alpaca puts it in the lifecycle, with its stream event where Alpaca has one, and
never changes what the order trades."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from brokers.alpaca.paper.queries import list_orders
from brokers.alpaca.paper.replace import NotReplaceableError
from brokers.paper.engine import DEFAULT_ACCOUNT, Engine
from brokers.paper.events import OrderEvent
from brokers.paper.model import OrderChanges, PaperStatus
from core.enums import OrderType, TimeInForce
from tests.brokers.paper import FakeClock, make_engine, order, statuses

ACK_MS = 5
RARE_MS = 200
CANCEL_MS = 50


def _engine(clock: FakeClock, **config: object) -> tuple[Engine, list[tuple[str, str]]]:
    settings: dict[str, object] = {
        "ack_delay_ms": (ACK_MS, ACK_MS),
        "fill_delay_ms": (0, 0),
        "cancel_delay_ms": (CANCEL_MS, CANCEL_MS),
        "partial_fill_probability": 0.0,
        "rare_status_ms": (RARE_MS, RARE_MS),
        **config,
    }
    engine = make_engine(clock, **settings)
    engine.set_price("AAPL", Decimal("100.00"))
    events: list[tuple[str, str]] = []

    def record(event: OrderEvent) -> None:
        events.append((event.event.value, event.order.status.value))

    engine.listeners.append(record)
    return engine, events


def _later(engine: Engine, clock: FakeClock, ms: float) -> None:
    clock.tick(ms)
    engine.advance()


def test_pending_new_comes_between_routing_and_new_with_its_event(clock: FakeClock) -> None:
    engine, events = _engine(clock, p_pending_new=1.0)
    placed = engine.submit(order())
    _later(engine, clock, ACK_MS)
    assert placed.status is PaperStatus.PENDING_NEW
    assert placed.routed
    assert placed.fills == []
    with pytest.raises(NotReplaceableError):
        engine.replace(placed.id, DEFAULT_ACCOUNT, OrderChanges(qty=Decimal(3)))

    _later(engine, clock, RARE_MS)

    assert statuses(placed) == ["accepted", "pending_new", "new", "filled"]
    assert events == [("pending_new", "pending_new"), ("new", "new"), ("fill", "filled")]


@pytest.mark.parametrize(
    ("chance", "status"),
    [("p_accepted_for_bidding", "accepted_for_bidding"), ("p_pending_review", "pending_review")],
)
def test_statuses_without_a_stream_event_are_listed_but_not_streamed(
    clock: FakeClock, chance: str, status: str
) -> None:
    engine, events = _engine(clock, **{chance: 1.0})
    placed = engine.submit(order(type=OrderType.LIMIT, limit="50.00"))
    _later(engine, clock, ACK_MS)
    assert placed.status.value == status
    assert [o.id for o in list_orders(engine, status="open")] == [placed.id]
    assert events == []

    _later(engine, clock, RARE_MS)

    assert statuses(placed) == ["accepted", status, "new"]
    assert events == [("new", "new")]


def test_a_cancel_while_pending_new_cancels_the_order(clock: FakeClock) -> None:
    engine, events = _engine(clock, p_pending_new=1.0)
    placed = engine.submit(order(type=OrderType.LIMIT, limit="50.00"))
    _later(engine, clock, ACK_MS)
    engine.cancel(placed.id)
    _later(engine, clock, RARE_MS)

    assert placed.status is PaperStatus.CANCELED
    assert [event for event, _ in events] == ["pending_new", "pending_cancel", "canceled"]


def test_a_stopped_order_fills_as_scheduled(clock: FakeClock) -> None:
    engine, events = _engine(clock, p_stopped=1.0, fill_delay_ms=(100, 100))
    placed = engine.submit(order())
    _later(engine, clock, ACK_MS)
    assert placed.status is PaperStatus.STOPPED

    _later(engine, clock, 100)

    assert statuses(placed) == ["accepted", "new", "stopped", "filled"]
    assert events == [("new", "new"), ("stopped", "stopped"), ("fill", "filled")]


def test_a_suspended_order_does_not_trade_until_it_is_eligible_again(clock: FakeClock) -> None:
    engine, events = _engine(clock, p_suspended=1.0)
    placed = engine.submit(order())
    _later(engine, clock, ACK_MS)
    assert placed.status is PaperStatus.SUSPENDED
    engine.set_price("AAPL", Decimal("90.00"))
    assert placed.fills == []

    engine.config = replace(engine.config, p_suspended=0.0)  # eligible again, and stays so
    _later(engine, clock, RARE_MS)

    assert statuses(placed) == ["accepted", "new", "suspended", "new", "filled"]
    assert events == [("new", "new"), ("suspended", "suspended"), ("fill", "filled")]


def test_a_partially_filled_order_suspended_at_the_open_resumes_partially_filled(
    clock: FakeClock,
) -> None:
    engine, events = _engine(clock, session_s=3600.0, overnight_s=600.0)
    placed = engine.submit(order(type=OrderType.LIMIT, limit="50.00", tif=TimeInForce.GTC))
    _later(engine, clock, ACK_MS)
    engine.force_fill(placed.id, qty=Decimal(4), price=Decimal("50.00"))
    engine.close_day()
    engine.config = replace(engine.config, p_suspended=1.0)
    _later(engine, clock, 600_000)  # the open
    assert placed.status is PaperStatus.SUSPENDED

    engine.config = replace(engine.config, p_suspended=0.0)
    _later(engine, clock, RARE_MS)

    assert statuses(placed)[-4:] == [
        "done_for_day",
        "partially_filled",
        "suspended",
        "partially_filled",
    ]
    assert placed.resting == "limit"
    assert [event for event, _ in events][-2:] == ["done_for_day", "suspended"]


def test_a_cancel_of_a_suspended_order_cancels_it_and_it_never_resumes(clock: FakeClock) -> None:
    engine, _ = _engine(clock, p_suspended=1.0)
    placed = engine.submit(order())
    _later(engine, clock, ACK_MS)
    engine.cancel(placed.id)
    _later(engine, clock, RARE_MS)

    assert statuses(placed) == ["accepted", "new", "suspended", "pending_cancel", "canceled"]
    assert placed.fills == []


def test_a_suspended_gtc_order_is_worked_at_the_next_open(clock: FakeClock) -> None:
    engine, _ = _engine(clock, p_suspended=1.0, session_s=3600.0, overnight_s=600.0)
    placed = engine.submit(order(type=OrderType.LIMIT, limit="150.00", tif=TimeInForce.GTC))
    _later(engine, clock, ACK_MS)
    assert placed.status is PaperStatus.SUSPENDED
    engine.config = replace(engine.config, p_suspended=0.0)
    engine.close_day()
    _later(engine, clock, RARE_MS)  # the resume fell overnight: void
    assert placed.status is PaperStatus.SUSPENDED
    assert placed.parked

    _later(engine, clock, 600_000)

    assert statuses(placed)[-2:] == ["new", "filled"]


def test_calculated_follows_a_full_fill_and_the_order_stays_closed(clock: FakeClock) -> None:
    engine, events = _engine(clock, p_calculated=1.0)
    placed = engine.submit(order())
    _later(engine, clock, ACK_MS)
    assert placed.status is PaperStatus.FILLED

    _later(engine, clock, RARE_MS)
    assert placed.status is PaperStatus.CALCULATED
    assert placed.filled_qty == placed.qty
    assert list_orders(engine, status="open") == []
    assert [o.id for o in list_orders(engine, status="closed")] == [placed.id]
    assert events[-1] == ("calculated", "calculated")

    _later(engine, clock, RARE_MS)

    assert statuses(placed) == ["accepted", "new", "filled", "calculated", "filled"]
    assert [event for event, _ in events] == ["new", "fill", "calculated"]


def test_chances_at_zero_draw_nothing_so_seeds_give_what_they_gave(clock: FakeClock) -> None:
    runs = []
    for config in ({}, {"p_stopped": 0.0, "p_calculated": 0.0, "p_pending_new": 0.0}):
        engine, _ = _engine(clock, partial_fill_probability=0.5, **config)
        placed = engine.submit(order(qty="100"))
        _later(engine, clock, 1000)
        runs.append([(f.qty, f.price) for f in placed.fills])
    assert runs[0] == runs[1]
