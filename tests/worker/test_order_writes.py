"""Writes to an order row race other writers (a monitor, a sweep, a fill sync in another
process): the row's version counter catches it, and each write starts again on fresh
state instead of failing the task (SQLite, fakeredis; the other writer is a second
connection committing between our read and our write)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.enums import Intent, OrderStatus
from models.orders import Order
from tests.worker.conftest import UnitWorker
from worker import monitoring, placement, tracking
from worker.args import TrackOrderArgs
from worker.locks import WRITE_ATTEMPTS, OrderWriteConflict, write_order


def test_a_monitor_note_survives_a_concurrent_writer(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-note", broker_order_id="b-note", status=OrderStatus.NEW)
    other = unit.concurrent_writer(order_id)
    monitoring._note(unit.ctx, order_id, "not found at the broker (check 3)")
    assert len(other) == 1
    order = unit.order(order_id)
    assert order.last_error == "not found at the broker (check 3)"
    assert order.check_count == 2  # the other writer's check and ours: none lost
    assert order.last_checked_at == unit.clock[0]


def test_a_placement_error_note_survives_a_concurrent_writer(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-err")
    other = unit.concurrent_writer(order_id)
    placement._note_error(unit.ctx, order_id, "broker did not take the order, retrying: 429")
    assert len(other) == 1
    order = unit.order(order_id)
    assert order.last_error == "broker did not take the order, retrying: 429"
    assert order.check_count == 1


def test_a_placement_rejection_survives_a_concurrent_writer(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-rej")
    other = unit.concurrent_writer(order_id)
    placement._reject(unit.ctx, order_id, "insufficient buying power")
    assert len(other) == 1
    order = unit.order(order_id)
    assert (order.status, order.last_error) == (OrderStatus.REJECTED, "insufficient buying power")
    assert order.check_count == 1


def test_a_tracked_order_is_annotated_despite_a_concurrent_writer(unit: UnitWorker) -> None:
    order_id = unit.add_order("svc-1", broker_order_id="b-svc-1", status=OrderStatus.NEW)
    other = unit.concurrent_writer(order_id)
    result = tracking.track_order(unit.ctx, TrackOrderArgs(
        account="a", client_order_id="svc-1", intent=Intent.ENTRY, decision_id="d-1",
        requested_price="10.5",
    ))  # fmt: skip
    assert result.order_id == order_id
    assert len(other) == 1
    order = unit.order(order_id)
    assert (order.intent, order.decision_id, order.requested_price) == (
        Intent.ENTRY, "d-1", Decimal("10.5"),
    )  # fmt: skip
    assert order.check_count == 1


def test_a_write_that_always_loses_names_the_order(unit: UnitWorker) -> None:
    order_id = unit.add_order("c-hot")
    unit.concurrent_writer(order_id, times=WRITE_ATTEMPTS)

    def note(_: object, order: Order) -> None:
        order.last_error = "x"

    with pytest.raises(OrderWriteConflict) as raised:
        write_order(unit.ctx.sessions, order_id, note, what="noting")
    assert raised.value.order_id == order_id
    assert order_id in str(raised.value)


def test_a_write_to_a_missing_order_does_nothing(unit: UnitWorker) -> None:
    assert write_order(unit.ctx.sessions, "no-such-id", lambda *_: 1, what="noting") is None
