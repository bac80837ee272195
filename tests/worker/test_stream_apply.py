"""Stream events into the record (SQLite, fakeredis): the state machine's path, executions
recorded once whatever path saw them first, and only when they add up; reordering and
duplicates change nothing; an update before the placement's answer finds its row."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from core.enums import OrderStatus, OrderType, ReportSource, Side, TimeInForce
from core.reports import FillReport, OrderReport, StreamEvent
from models.orders import Fill, Order
from tests.worker.conftest import T0, UnitWorker
from worker.reports import apply_fills, record_derived_fill
from worker.stream_apply import apply_event


def report(status: OrderStatus, filled: str, *, broker_id: str = "b-1",
           client_id: str = "c-1", seconds: float = 1) -> OrderReport:  # fmt: skip
    at = T0 + timedelta(seconds=seconds)
    return OrderReport(
        broker_order_id=broker_id, client_order_id=client_id, symbol="AAPL", side=Side.BUY,
        order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, quantity=Decimal(5),
        status=status, raw_status=status.value.lower(), filled_quantity=Decimal(filled),
        average_fill_price=Decimal(10) if Decimal(filled) else None, created_at=T0,
        updated_at=at, limit_price=Decimal(10),
    )  # fmt: skip


def filled(execution: str, qty: str, cum: str, *, seconds: float = 1) -> StreamEvent:
    status = OrderStatus.FILLED if cum == "5" else OrderStatus.PARTIALLY_FILLED
    order = report(status, cum, seconds=seconds)
    fill = FillReport(broker_fill_id=execution, broker_order_id="b-1", symbol="AAPL",
                      side=Side.BUY, quantity=Decimal(qty), price=Decimal(10),
                      filled_at=order.updated_at or T0, cum_quantity=Decimal(cum))  # fmt: skip
    kind = "fill" if cum == "5" else "partial_fill"
    return StreamEvent(kind, order, order.updated_at or T0, execution, fill)


def fills(unit: UnitWorker) -> list[tuple[str, Decimal]]:
    with unit.ctx.sessions() as session:
        rows = session.execute(select(Fill.broker_fill_id, Fill.quantity).order_by(Fill.id))
        return [(i, Decimal(q)) for i, q in rows]


def test_executions_that_add_up_are_recorded_and_settle_the_order(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    first = apply_event(unit.ctx, unit.account_id, filled("e-1", "2", "2"))
    last = apply_event(unit.ctx, unit.account_id, filled("e-2", "3", "5", seconds=2))
    assert (first.order_id, first.fill_recorded, first.fill_gap) == (order_id, True, False)
    assert (last.fill_recorded, last.terminal) == (True, True)
    assert fills(unit) == [("e-1", Decimal(2)), ("e-2", Decimal(3))]
    order = unit.order(order_id)
    assert (order.status, order.filled_quantity) == (OrderStatus.FILLED, Decimal(5))
    with unit.ctx.sessions() as session:
        sources = set(session.scalars(select(Fill.source)))
    assert sources == {ReportSource.STREAM}


def test_a_dropped_execution_leaves_a_gap_for_the_listing_never_a_wrong_fill(
    unit: UnitWorker,
) -> None:
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    # e-1 (2 of 5) never arrived; e-2 says 3 more, 5 in all: it does not add up
    result = apply_event(unit.ctx, unit.account_id, filled("e-2", "3", "5", seconds=2))
    assert (result.fill_recorded, result.fill_gap) == (False, True)
    assert fills(unit) == []
    order = unit.order(order_id)
    assert (order.status, order.broker_filled_quantity) == (OrderStatus.FILLED, Decimal(5))
    # the listing's activities (other ids, the same cumulative quantities) close the gap
    listed = [FillReport(broker_fill_id=f"20261121::{n}", broker_order_id="b-1", symbol="AAPL",
                         side=Side.BUY, quantity=Decimal(q), price=Decimal(10), filled_at=T0,
                         cum_quantity=Decimal(c))
              for n, q, c in (("a", "2", "2"), ("b", "3", "5"))]  # fmt: skip
    assert apply_fills(unit.ctx, unit.account_id, listed, ReportSource.SWEEP) == (2, [])
    assert unit.order(order_id).filled_quantity == Decimal(5)


def test_duplicates_reordering_and_the_listing_change_nothing_twice(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    partial, full = filled("e-1", "2", "2"), filled("e-2", "3", "5", seconds=2)
    for event in (partial, partial, full, partial, full):  # duplicated and reordered
        apply_event(unit.ctx, unit.account_id, event)
    listed = [dataclasses.replace(e.fill, broker_fill_id=f"activity-{e.event_id}")
              for e in (partial, full) if e.fill is not None]  # fmt: skip
    assert apply_fills(unit.ctx, unit.account_id, listed, ReportSource.SWEEP) == (0, [])
    assert fills(unit) == [("e-1", Decimal(2)), ("e-2", Decimal(3))]
    order = unit.order(order_id)
    assert (order.status, order.filled_quantity, order.anomaly_count) == (
        OrderStatus.FILLED, Decimal(5), 0)  # fmt: skip


def test_an_update_before_the_placements_answer_finds_the_row_by_client_id(
    unit: UnitWorker,
) -> None:
    order_id = unit.add_order("c-1")  # PENDING_NEW, no broker id yet
    result = apply_event(unit.ctx, unit.account_id,
                         StreamEvent("new", report(OrderStatus.NEW, "0"), T0, "x-1"))  # fmt: skip
    assert result.order_id == order_id
    order = unit.order(order_id)
    assert (order.status, order.broker_order_id) == (OrderStatus.NEW, "b-1")


def test_an_order_not_known_here_is_left_to_the_caller(unit: UnitWorker) -> None:
    result = apply_event(unit.ctx, unit.account_id, filled("e-1", "2", "2"))
    assert result.order_id is None
    with unit.ctx.sessions() as session:
        assert session.scalar(select(Order.id)) is None


def test_an_execution_whose_price_does_not_make_the_average_is_left_to_the_listing(
    unit: UnitWorker,
) -> None:
    """Were an event's ``price`` the order's average and not its execution's, recording it
    would be wrong: it must make the broker's average with the recorded fills."""
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    apply_event(unit.ctx, unit.account_id, filled("e-1", "2", "2"))  # 2 @ 10
    second = filled("e-2", "3", "5", seconds=2)
    assert second.fill is not None
    averaged = dataclasses.replace(  # 3 @ 12 makes an average of 11.2: the event says 11.2
        second, report=dataclasses.replace(second.report, average_fill_price=Decimal("11.2")),
        fill=dataclasses.replace(second.fill, price=Decimal("11.2")),
    )  # fmt: skip
    result = apply_event(unit.ctx, unit.account_id, averaged)
    assert (result.fill_recorded, result.fill_gap) == (False, True)
    assert fills(unit) == [("e-1", Decimal(2))]
    assert unit.order(order_id).broker_filled_quantity == Decimal(5)


def termless(status: OrderStatus, cum: str, average: str, *, seconds: float) -> StreamEvent:
    """A Tradier event: the order's figures, no terms (placeholders), no execution."""
    order = dataclasses.replace(
        report(status, cum, seconds=seconds), symbol="", side=Side.SELL, quantity=Decimal(cum),
        average_fill_price=Decimal(average) if Decimal(cum) else None, states_terms=False,
    )  # fmt: skip
    return StreamEvent("order", order, order.updated_at or T0)


def test_a_broker_without_a_fill_listing_gets_each_fill_derived_once_from_its_events(
    unit: UnitWorker,
) -> None:
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    first = termless(OrderStatus.PARTIALLY_FILLED, "2", "10", seconds=1)
    done = apply_event(unit.ctx, unit.account_id, first, derive_fills=True)
    again = apply_event(unit.ctx, unit.account_id, first, derive_fills=True)  # a duplicate
    # The REST path derives the next one first (it reads the order as 4 filled)...
    rest = dataclasses.replace(report(OrderStatus.PARTIALLY_FILLED, "4", seconds=2),
                               average_fill_price=Decimal("10.5"))  # fmt: skip
    assert record_derived_fill(unit.ctx, order_id, rest, ReportSource.MONITOR)
    # ...the stream's older event of 4 changes nothing, its last one brings the rest.
    apply_event(unit.ctx, unit.account_id, termless(OrderStatus.PARTIALLY_FILLED, "4", "10.5",
                seconds=2), derive_fills=True)  # fmt: skip
    last = apply_event(unit.ctx, unit.account_id, termless(OrderStatus.FILLED, "5", "10.6",
                       seconds=3), derive_fills=True)  # fmt: skip

    assert (done.fill_recorded, done.fill_gap, again.fill_recorded) == (True, False, False)
    assert (last.fill_recorded, last.terminal) == (True, True)
    assert fills(unit) == [("derived-b-1-2", Decimal(2)), ("derived-b-1-4", Decimal(2)),
                           ("derived-b-1-5", Decimal(1))]  # fmt: skip
    order = unit.order(order_id)
    assert (order.status, order.filled_quantity, order.side) == (
        OrderStatus.FILLED, Decimal(5), Side.BUY)  # fmt: skip
    assert order.anomaly_count == 0
    # The events' placeholders never reached the record: it shows our terms.
    with unit.ctx.sessions() as session:
        shown = json.loads(session.scalar(select(Order.last_report)) or "{}")
    assert (shown["symbol"], shown["side"], shown["quantity"]) == ("AAPL", "buy", "5")


def test_without_derivation_a_termless_event_leaves_the_gap_for_the_fill_listing(
    unit: UnitWorker,
) -> None:
    unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    result = apply_event(unit.ctx, unit.account_id,
                         termless(OrderStatus.FILLED, "5", "10", seconds=1))  # fmt: skip
    assert (result.fill_recorded, result.fill_gap) == (False, True)
    assert fills(unit) == []


def test_a_termless_working_report_with_all_of_our_quantity_filled_settles_the_order(
    unit: UnitWorker,
) -> None:
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    part = apply_event(unit.ctx, unit.account_id, termless(OrderStatus.PARTIALLY_FILLED, "3",
                       "10", seconds=1), derive_fills=True)  # fmt: skip
    assert (part.terminal, unit.order(order_id).status) == (False, OrderStatus.PARTIALLY_FILLED)
    rest = apply_event(unit.ctx, unit.account_id, termless(OrderStatus.PARTIALLY_FILLED, "5",
                       "10", seconds=2), derive_fills=True)  # fmt: skip
    assert (rest.terminal, unit.order(order_id).status) == (True, OrderStatus.FILLED)


def test_nothing_is_derived_for_a_simple_order_whose_legs_carry_the_fills(
    unit: UnitWorker,
) -> None:
    """Tradier's multileg: the parent's average is a net of its legs' prices."""
    parent = unit.add_order("spread", broker_order_id="b-1", status=OrderStatus.NEW)
    leg = unit.add_order("leg", broker_order_id="b-2", status=OrderStatus.NEW)
    with unit.ctx.sessions.begin() as session:
        session.get_one(Order, leg).parent_id = parent
    result = apply_event(unit.ctx, unit.account_id, termless(OrderStatus.PARTIALLY_FILLED, "2",
                         "1.35", seconds=1), derive_fills=True)  # fmt: skip
    assert result.fill_recorded is False
    assert fills(unit) == []
    assert unit.order(parent).status is OrderStatus.PARTIALLY_FILLED
