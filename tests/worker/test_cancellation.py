"""Cancelling (SQLite, fakeredis, a stub broker): a cancel that arrives before the broker
order id is known waits for it, visibly, and is sent once the id is there; a wait that
never ends is abandoned loudly; a concurrent writer makes the local half start again."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from celery.exceptions import Retry
from sqlalchemy import select

from brokers.errors import BrokerUnavailable
from core.enums import OrderStatus
from models.orders import Order, OrderEvent
from tests.worker.conftest import UnitWorker
from worker import tasks
from worker.args import CancelOrderArgs
from worker.cancellation import (
    ABANDONED,
    MAX_RETRY_DELAY_S,
    WAITING,
    CancelAbandoned,
    cancel_order,
    give_up_after_s,
    waited_s,
)


class StubBroker:
    """Records cancels; fails the first ``failures`` of them as unavailable."""

    refuses_reused_client_ids = True  # as Alpaca: a second send is refused

    def __init__(self, failures: int = 0) -> None:
        self.cancels: list[str] = []
        self.failures = failures

    def cancel(self, broker_order_id: str) -> None:
        self.cancels.append(broker_order_id)
        if len(self.cancels) <= self.failures:
            raise BrokerUnavailable("503 from the stub", broker_order_id=broker_order_id)


def args(order_id: str) -> CancelOrderArgs:
    return CancelOrderArgs(account="a", order_id=order_id)


def events(unit: UnitWorker, order_id: str, kind: str) -> list[OrderEvent]:
    with unit.ctx.sessions() as session:
        return list(session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order_id, OrderEvent.kind == kind)
        ))  # fmt: skip


def acknowledge(unit: UnitWorker, order_id: str, broker_order_id: str) -> None:
    """What the placement's answer (or a monitor's lookup) does: the id is known, NEW."""
    with unit.ctx.sessions.begin() as session:
        order = session.get(Order, order_id)
        assert order is not None
        order.broker_order_id, order.status = broker_order_id, OrderStatus.NEW


def test_a_cancel_before_the_broker_id_waits_visibly_then_goes_out(
    unit: UnitWorker, caplog: pytest.LogCaptureFixture
) -> None:
    unit.adapter = broker = StubBroker()
    order_id = unit.add_order("c-early")

    first = cancel_order(unit.ctx, args(order_id), attempt=0)
    second = cancel_order(unit.ctx, args(order_id), attempt=1)
    assert (first.waiting, first.retry_after_s) == (True, 1.0)
    assert (second.waiting, second.retry_after_s) == (True, 1.5)  # a growing delay
    assert broker.cancels == []
    [waiting] = events(unit, order_id, WAITING)  # recorded once, where an operator looks
    assert "sent as soon as the broker order id is known" in str(waiting.detail)
    assert len([r for r in caplog.records if "waiting for the broker order id" in r.message]) == 1

    acknowledge(unit, order_id, "b-early")
    done = cancel_order(unit.ctx, args(order_id), attempt=2)
    assert (done.retry_reason, done.waiting) == (None, False)
    assert broker.cancels == ["b-early"]
    assert unit.order(order_id).status is OrderStatus.PENDING_CANCEL


def test_a_wait_ends_quietly_when_the_order_ends_without_an_id(unit: UnitWorker) -> None:
    unit.adapter = broker = StubBroker()
    order_id = unit.add_order("c-never", status=OrderStatus.REJECTED)
    result = cancel_order(unit.ctx, args(order_id), attempt=7)
    assert (result.retry_reason, result.monitor) == (None, False)
    assert broker.cancels == []


def test_the_wait_outlasts_twenty_tries_and_deep_reconciliation(unit: UnitWorker) -> None:
    """Twenty tries of about a second each was the old limit: far too short for a lost answer
    that only a sweep or the deep reconciliation resolves."""
    settings = unit.ctx.settings
    limit = give_up_after_s(settings)
    assert limit >= settings.pending_new_grace_s + 3 * settings.deep_reconcile_interval_s
    unit.adapter = StubBroker()
    order_id = unit.add_order("c-slow")
    tries = next(n for n in range(10_000) if waited_s(settings, n) >= limit)
    assert tries > 20
    result = cancel_order(unit.ctx, args(order_id), attempt=tries - 1)
    assert result.waiting
    assert result.retry_after_s == MAX_RETRY_DELAY_S


def test_a_wait_past_the_limit_is_abandoned_loudly(
    unit: UnitWorker, caplog: pytest.LogCaptureFixture
) -> None:
    unit.adapter = broker = StubBroker()
    order_id = unit.add_order("c-silent")
    tries = next(n for n in range(10_000) if waited_s(unit.ctx.settings, n) >= give_up_after_s(
        unit.ctx.settings))  # fmt: skip
    with pytest.raises(CancelAbandoned) as raised:
        cancel_order(unit.ctx, args(order_id), attempt=tries)
    assert raised.value.order_id == order_id
    assert raised.value.client_order_id == "c-silent"
    assert order_id in str(raised.value)
    [abandoned] = events(unit, order_id, ABANDONED)
    assert "never acknowledged" in str(abandoned.detail)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert order_id in errors[0].getMessage()
    assert broker.cancels == []
    assert unit.order(order_id).status is OrderStatus.PENDING_NEW  # nothing forced


def test_a_failing_cancel_request_is_tried_again_then_abandoned_loudly(
    unit: UnitWorker,
) -> None:
    unit.adapter = broker = StubBroker(failures=1000)
    order_id = unit.add_order("c-down", broker_order_id="b-down", status=OrderStatus.NEW)
    result = cancel_order(unit.ctx, args(order_id), attempt=0)
    assert result.retry_reason is not None
    assert "503" in result.retry_reason
    tries = next(n for n in range(10_000) if waited_s(unit.ctx.settings, n) >= give_up_after_s(
        unit.ctx.settings))  # fmt: skip
    with pytest.raises(CancelAbandoned, match="refused every cancel request"):
        cancel_order(unit.ctx, args(order_id), attempt=tries)
    assert len(events(unit, order_id, ABANDONED)) == 1
    assert broker.cancels == ["b-down", "b-down"]


def test_a_concurrent_writer_makes_the_cancel_start_again_on_fresh_state(
    unit: UnitWorker,
) -> None:
    unit.adapter = broker = StubBroker()
    order_id = unit.add_order("c-race", broker_order_id="b-race", status=OrderStatus.NEW)
    other = unit.concurrent_writer(order_id)
    result = cancel_order(unit.ctx, args(order_id))
    assert len(other) == 1  # the other writer did get in first
    assert result.retry_reason is None
    order = unit.order(order_id)
    assert order.status is OrderStatus.PENDING_CANCEL
    assert order.check_count == 1  # the other writer's change is kept, not overwritten
    assert broker.cancels == ["b-race"]


def test_the_task_keeps_waiting_past_twenty_retries(
    unit: UnitWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Celery task itself: its 25th retry is scheduled, not refused by a retry limit."""
    unit.adapter = StubBroker()
    order_id = unit.add_order("c-task")
    watched: list[str] = []
    scheduled: list[dict[str, Any]] = []

    class Sent:
        args: tuple[Any, ...] = ()
        kwargs: dict[str, Any] = {}

        def apply_async(self, *_: Any, **__: Any) -> None:
            pass

    def signature(*_: Any, **options: Any) -> Sent:
        scheduled.append(options)
        return Sent()

    task = tasks.cancel_order
    monkeypatch.setattr(tasks, "context", lambda: unit.ctx)
    monkeypatch.setattr(tasks, "_watch", watched.append)
    monkeypatch.setattr(task, "signature_from_request", signature)
    task.push_request(id="task-1", retries=25, called_directly=False, is_eager=False)
    try:
        with pytest.raises(Retry):
            task.run(account="a", order_id=order_id)
    finally:
        task.pop_request()
    assert [options["countdown"] for options in scheduled] == [MAX_RETRY_DELAY_S]
    assert watched == [order_id]
