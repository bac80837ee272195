"""Placement against a broker that refuses duplicate client order ids, as Alpaca does: sent
again until the broker has the order or the deadline passes; past it nothing is sent, and
only an order that provably never reached the broker is REJECTED, with the reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from brokers.errors import (
    AnswerLost,
    DuplicateClientOrderId,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import OrderReport, PlaceOrderRequest
from models.orders import Order
from models.outbox import OutboxEvent
from tests.worker.conftest import T0, UnitWorker
from worker import monitoring, placement
from worker.args import PlaceOrderArgs
from worker.budget import DeadlinePassed
from worker.monitoring import Snapshot
from worker.placement import Step, place_order


class Broker:
    """Keeps orders by client order id and refuses a duplicate. ``place_script`` and
    ``lookup_script`` say what the next calls do (then: behave)."""

    refuses_reused_client_ids = True  # as Alpaca: a second send is refused

    def __init__(self) -> None:
        self.orders: dict[str, OrderReport] = {}
        self.calls: list[str] = []
        self.place_script: list[str] = []
        self.lookup_script: list[str] = []

    def _create(self, request: PlaceOrderRequest) -> OrderReport:
        report = OrderReport(
            broker_order_id=f"b-{request.client_order_id}",
            client_order_id=request.client_order_id, symbol=request.symbol, side=request.side,
            order_type=request.order_type, time_in_force=request.time_in_force,
            quantity=request.quantity, status=OrderStatus.NEW, raw_status="new",
            filled_quantity=Decimal(0), average_fill_price=None, created_at=T0, updated_at=T0,
        )  # fmt: skip
        self.orders[request.client_order_id] = report
        return report

    def place(self, request: PlaceOrderRequest) -> OrderReport:
        self.calls.append("place")
        action = self.place_script.pop(0) if self.place_script else "ok"
        cid = request.client_order_id
        if action == "503":  # nothing created; the answer is a 503
            raise AnswerLost("503 service unavailable", client_order_id=cid)
        if action == "429":
            raise RateLimited("rate limited", client_order_id=cid)
        if action == "deadline":
            raise DeadlinePassed("acct", T0)
        if action == "refuse":
            raise OrderRejected("insufficient buying power", client_order_id=cid)
        if cid in self.orders:
            raise DuplicateClientOrderId("client_order_id must be unique", client_order_id=cid)
        report = self._create(request)
        if action == "lost":  # created, but the answer never arrives
            raise AnswerLost("504 gateway timeout", client_order_id=cid)
        return report

    def get_order_by_client_id(self, client_order_id: str, **_: Any) -> OrderReport:
        self.calls.append("lookup")
        action = self.lookup_script.pop(0) if self.lookup_script else "ok"
        if action == "429":
            raise RateLimited("rate limited", client_order_id=client_order_id)
        if client_order_id not in self.orders or action == "hide":
            raise OrderNotFound("order not found", client_order_id=client_order_id)
        return self.orders[client_order_id]

    def get_order(self, broker_order_id: str) -> OrderReport:
        self.calls.append("get")
        for report in self.orders.values():
            if report.broker_order_id == broker_order_id:
                return report
        raise OrderNotFound("order not found", broker_order_id=broker_order_id)


def market(cid: str, **extra: object) -> PlaceOrderArgs:
    return PlaceOrderArgs.model_validate(
        {"account": "a", "symbol": "AAPL", "side": "buy", "quantity": "2",
         "client_order_id": cid, **extra}
    )  # fmt: skip


@pytest.fixture
def broker(unit: UnitWorker) -> Broker:
    unit.adapter = stub = Broker()
    return stub


def later(unit: UnitWorker, seconds: float) -> None:
    unit.clock[0] += timedelta(seconds=seconds)


def rejected_events(unit: UnitWorker, order_id: str) -> list[dict[str, object]]:
    with unit.ctx.sessions() as session:
        rows = session.scalars(
            select(OutboxEvent.payload).where(
                OutboxEvent.order_id == order_id, OutboxEvent.kind == "ORDER_REJECTED"
            )
        )
        return [json.loads(row) for row in rows]


def test_a_503_is_sent_again_until_the_broker_has_the_order(
    unit: UnitWorker, broker: Broker
) -> None:
    broker.place_script = ["503"]
    first = place_order(unit.ctx, market("m-1"), task_id="t")
    assert first.retry_after_s == unit.ctx.settings.place_retry_delay_s
    assert unit.order(first.order_id).status is OrderStatus.PENDING_NEW
    again = place_order(unit.ctx, market("m-1"), task_id="t")  # the task's retry
    assert again.retry_after_s is None
    assert broker.calls == ["place", "lookup", "place"]
    assert unit.order(first.order_id).broker_order_id == "b-m-1"
    assert len(broker.orders) == 1


def test_a_rate_limited_lookup_proves_nothing_and_the_order_is_sent_again(
    unit: UnitWorker, broker: Broker
) -> None:
    broker.place_script = ["lost"]  # created, answer lost
    broker.lookup_script = ["429"]
    first = place_order(unit.ctx, market("m-2"), task_id="t")
    assert first.retry_after_s is not None
    place_order(unit.ctx, market("m-2"), task_id="t")
    # the resend is refused as a duplicate, and the lookup then finds the one order
    assert broker.calls == ["place", "lookup", "place", "lookup"]
    assert unit.order(first.order_id).broker_order_id == "b-m-2"
    assert len(broker.orders) == 1


def test_never_sent_by_the_deadline_is_rejected_with_the_reason_and_no_lookup(
    unit: UnitWorker, broker: Broker
) -> None:
    broker.place_script = ["429", "429"]
    first = place_order(unit.ctx, market("m-3"), task_id="t")
    assert first.retry_after_s is not None
    assert unit.order(first.order_id).sent_at is None  # that send never went out
    later(unit, 31)  # market orders: 30 s
    done = place_order(unit.ctx, market("m-3"), task_id="t")
    assert done.retry_after_s is None
    order = unit.order(first.order_id)
    assert order.status is OrderStatus.REJECTED
    assert "placement deadline" in (order.last_error or "")
    assert "never reached the broker" in (order.last_error or "")
    assert broker.calls == ["place"]
    events = rejected_events(unit, first.order_id)
    assert len(events) == 1
    assert "never reached the broker" in str(events[0]["last_error"])


def test_past_the_deadline_an_unclear_send_is_looked_up_before_the_order_is_rejected(
    unit: UnitWorker, broker: Broker
) -> None:
    """A send from just before the deadline may still land: a not-found rejects the order
    only once that time (``settle_s``) has passed too."""
    broker.place_script = ["503"]
    first = place_order(unit.ctx, market("m-4"), task_id="t")
    later(unit, 31)
    soon = placement.attempt(unit.ctx, first.order_id)
    assert soon.step is Step.UNRESOLVED
    assert unit.order(first.order_id).status is OrderStatus.PENDING_NEW
    later(unit, placement.settle_s(unit.ctx.settings))
    place_order(unit.ctx, market("m-4"), task_id="t")
    assert broker.calls == ["place", "lookup", "lookup", "lookup"]  # none sent past it
    order = unit.order(first.order_id)
    assert order.status is OrderStatus.REJECTED
    assert "has no order with client order id 'm-4'" in (order.last_error or "")


def test_an_order_the_broker_called_a_duplicate_is_never_rejected_on_a_not_found(
    unit: UnitWorker, broker: Broker
) -> None:
    broker.place_script = ["503"]
    first = place_order(unit.ctx, market("m-15"), task_id="t")
    broker.orders["m-15"] = broker._create(  # it got there after all, but the broker's
        PlaceOrderRequest("m-15", "AAPL", Side.BUY, Decimal(2))
    )  # lookup cannot show it
    broker.lookup_script = ["hide"]
    place_order(unit.ctx, market("m-15"), task_id="t")  # a duplicate, then a not-found
    assert broker.calls[-2:] == ["place", "lookup"]
    del broker.orders["m-15"]
    later(unit, 31 + placement.settle_s(unit.ctx.settings))
    assert placement.attempt(unit.ctx, first.order_id).step is Step.UNRESOLVED
    assert unit.order(first.order_id).status is OrderStatus.PENDING_NEW


def test_a_refusal_after_an_earlier_unclear_send_looks_the_order_up_first(
    unit: UnitWorker, broker: Broker
) -> None:
    """A broker may check buying power before it checks the client order id: a refusal of
    the second send says nothing about the first one."""
    broker.place_script = ["lost", "refuse"]
    broker.lookup_script = ["429"]
    first = place_order(unit.ctx, market("m-16"), task_id="t")
    place_order(unit.ctx, market("m-16"), task_id="t")
    assert broker.calls == ["place", "lookup", "place", "lookup"]
    assert unit.order(first.order_id).status is OrderStatus.NEW


def test_an_attempt_that_lost_the_order_lock_writes_nothing(
    unit: UnitWorker, broker: Broker
) -> None:
    """Another attempt may hold the order now (Redis lost the lock): only it decides."""
    broker.place_script = ["429"]
    first = place_order(unit.ctx, market("m-17"), task_id="t")  # sent_at cleared
    lock = f"ordersync:lock:order:{first.order_id}"

    class Thief(Broker):
        def place(self, request: PlaceOrderRequest) -> OrderReport:
            unit.ctx.redis.set(lock, "another-attempt", px=30_000)
            raise RateLimited("rate limited", client_order_id=request.client_order_id)

    unit.adapter = Thief()
    busy = placement.attempt(unit.ctx, first.order_id)
    assert busy.step is Step.BUSY
    assert unit.order(first.order_id).sent_at is not None  # not cleared: maybe not ours


def test_past_the_deadline_a_lookup_that_finds_the_order_places_it(
    unit: UnitWorker, broker: Broker
) -> None:
    broker.place_script = ["lost"]
    broker.lookup_script = ["429"]
    first = place_order(unit.ctx, market("m-5"), task_id="t")
    later(unit, 31)
    place_order(unit.ctx, market("m-5"), task_id="t")
    assert broker.calls == ["place", "lookup", "lookup"]
    assert unit.order(first.order_id).status is OrderStatus.NEW


def test_past_the_deadline_a_failing_lookup_leaves_the_order_unresolved_not_rejected(
    unit: UnitWorker, broker: Broker
) -> None:
    broker.place_script = ["lost"]
    broker.lookup_script = ["429", "429"]
    first = place_order(unit.ctx, market("m-6"), task_id="t")
    later(unit, 31)
    done = placement.attempt(unit.ctx, first.order_id)
    assert done.step is Step.UNRESOLVED
    assert unit.order(first.order_id).status is OrderStatus.PENDING_NEW


def test_a_refusal_rejects_at_once(unit: UnitWorker, broker: Broker) -> None:
    broker.place_script = ["refuse"]
    result = place_order(unit.ctx, market("m-7"), task_id="t")
    assert result.retry_after_s is None
    order = unit.order(result.order_id)
    assert order.status is OrderStatus.REJECTED
    assert "insufficient buying power" in (order.last_error or "")


def test_an_order_whose_deadline_has_passed_before_it_is_written_is_never_sent(
    unit: UnitWorker, broker: Broker
) -> None:
    result = place_order(unit.ctx, market("m-8", expires_at=(T0 - timedelta(seconds=1))
                                             .isoformat()), task_id="t")  # fmt: skip
    assert broker.calls == []
    assert unit.order(result.order_id).status is OrderStatus.REJECTED


def test_the_budget_giving_up_at_the_deadline_is_never_sent(
    unit: UnitWorker, broker: Broker
) -> None:
    broker.place_script = ["deadline"]
    result = place_order(unit.ctx, market("m-9"), task_id="t")
    assert unit.order(result.order_id).sent_at is None
    later(unit, 31)
    place_order(unit.ctx, market("m-9"), task_id="t")
    assert broker.calls == ["place"]
    assert unit.order(result.order_id).status is OrderStatus.REJECTED


@pytest.mark.parametrize(
    ("extra", "seconds"),
    [
        ({}, 30.0),
        ({"order_type": "limit", "limit_price": "10", "time_in_force": "gtc"}, 300.0),
        ({"order_type": "limit", "limit_price": "10", "time_in_force": "ioc"}, 30.0),
        ({"valid_for_s": 5}, 5.0),
        ({"expires_at": "2026-11-21T13:00:00+01:00"}, 0.0),
    ],
)
def test_the_deadline_comes_from_the_call_or_the_default_for_the_kind_of_order(
    unit: UnitWorker, broker: Broker, extra: dict[str, object], seconds: float
) -> None:
    result = place_order(unit.ctx, market("m-10", **extra), task_id="t")
    assert unit.order(result.order_id).place_deadline == T0 + timedelta(seconds=seconds)


def test_expires_at_and_valid_for_s_together_are_refused() -> None:
    with pytest.raises(ValueError, match="expires_at or valid_for_s, not both"):
        market("m-11", valid_for_s=5, expires_at=datetime(2027, 1, 1, tzinfo=UTC).isoformat())


def snapshot(unit: UnitWorker, order_id: str) -> Snapshot:
    order = unit.order(order_id)
    return Snapshot(order.account_id, order.broker_order_id, order.client_order_id,
                    order.symbol, False, False, placement.awaiting_broker(order))  # fmt: skip


def test_a_monitor_waits_while_the_placement_task_holds_its_lease_then_takes_over(
    unit: UnitWorker, broker: Broker
) -> None:
    broker.place_script = ["503"]
    first = place_order(unit.ctx, market("m-12"), task_id="t")
    assert placement.placement_leased(unit.ctx, first.order_id)
    calls = list(broker.calls)
    waited = monitoring.check_order(unit.ctx, first.order_id, snapshot(unit, first.order_id), 1)
    assert waited.reason == "placement in progress"
    assert broker.calls == calls  # no request while the task is on it
    unit.ctx.redis.delete(placement.placing_key(first.order_id))  # its worker died
    took = monitoring.check_order(unit.ctx, first.order_id, snapshot(unit, first.order_id), 2)
    assert took.delay_s is not None
    assert broker.calls == [*calls, "place"]
    assert unit.order(first.order_id).broker_order_id == "b-m-12"


def test_an_attempt_while_another_holds_the_order_is_busy_and_sends_nothing(
    unit: UnitWorker, broker: Broker
) -> None:
    broker.place_script = ["503"]
    first = place_order(unit.ctx, market("m-13"), task_id="t")
    held = unit.ctx.redis.set(f"ordersync:lock:order:{first.order_id}", "other", px=30_000)
    assert held
    calls = list(broker.calls)
    assert placement.attempt(unit.ctx, first.order_id).step is Step.BUSY
    assert broker.calls == calls


def test_a_settled_order_is_not_placed_again(unit: UnitWorker, broker: Broker) -> None:
    first = place_order(unit.ctx, market("m-14"), task_id="t")
    assert placement.attempt(unit.ctx, first.order_id).step is Step.DONE
    assert broker.calls == ["place"]
    with unit.ctx.sessions() as session:
        assert session.scalar(select(Order.status).where(Order.id == first.order_id)) is (
            OrderStatus.NEW
        )


def test_deadline_of_an_order_written_before_deadlines_existed(unit: UnitWorker) -> None:
    order_id = unit.add_order("old", order_type=OrderType.MARKET)
    order = unit.order(order_id)
    assert order.place_deadline is None
    assert placement.deadline_of(order, unit.ctx.settings) == T0 + timedelta(seconds=30)
    assert (order.time_in_force, order.side) == (TimeInForce.GTC, Side.BUY)
