"""The beat-driven safety nets end to end, on real parts: worker and beat processes, Redis,
the paper exchange over HTTP, a webhook receiver; tasks sent by name as a trading service
sends them. Sweep and report intervals are shortened to a second or two by settings."""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderStatus, ReportSource
from models.orders import Order, OrderEvent
from tests.worker.conftest import Hook, TrackingSystem, wait_for
from tests.worker.test_reconcile_system import FAST_SWEEPS
from tests.worker.truth import mismatches
from worker.stale import MARKET_NOT_TERMINAL
from worker.stale_report import REPORT_KEY

pytestmark = pytest.mark.integration


def _local(system: TrackingSystem, client_order_id: str) -> list[Order]:
    with Session(system.engine) as session:
        return list(session.scalars(
            select(Order).where(Order.client_order_id == client_order_id)
        ))  # fmt: skip


def _at_exchange(system: TrackingSystem, client_order_id: str) -> list[dict[str, Any]]:
    return [o for o in system.exchange.truth() if o["client_order_id"] == client_order_id]


def test_a_placement_whose_answer_was_lost_ends_as_one_tracked_order(
    system: TrackingSystem,
) -> None:
    """The exchange takes the order and loses its answer; the worker placing it dies while
    waiting for that answer, so the write-ahead row has no broker id, the task is not
    redelivered within the test on Redis (visibility timeout), and the dead monitor chain is
    not revived (its overdue limit is pushed out of reach): only the sweeps can resolve it
    there."""
    system.env.update(FAST_SWEEPS)
    cid = "lost-answer-1"
    system.exchange.set_faults(next_lose_response=1, timeout_s=30, routes=["POST /v2/orders"])
    # The placer waits for the withheld answer far longer than the test takes to kill it.
    usual_timeout = system.env["ORDERSYNC_BROKER_TIMEOUT_S"]
    system.env["ORDERSYNC_BROKER_TIMEOUT_S"] = "60"
    placer = system.start_worker("placer", concurrency=1)
    system.env["ORDERSYNC_BROKER_TIMEOUT_S"] = usual_timeout

    placing = system.place(client_order_id=cid, symbol="AAPL", side="buy", quantity="2")
    wait_for(lambda: _at_exchange(system, cid), 90, "the order taken by the exchange")
    os.killpg(placer.pid, signal.SIGKILL)  # right after the exchange took it, answer unsent
    placer.wait(timeout=30)

    [row] = _local(system, cid)
    assert (row.status, row.broker_order_id) == (OrderStatus.PENDING_NEW, None)
    assert placing.state == "PENDING"  # the task never finished

    system.env["ORDERSYNC_MONITOR_REVIVE_OVERDUE_S"] = "3600"
    system.start_worker("rescuer")
    system.start_beat()
    try:
        wait_for(lambda: not mismatches(system, [cid]), 120, "the order equal to the truth")
    except AssertionError:
        raise AssertionError(f"{mismatches(system, [cid])}") from None

    [truth] = _at_exchange(system, cid)  # one order at the exchange, never a second submit
    [row] = _local(system, cid)  # and one row here, tracked to the exchange's truth
    assert row.broker_order_id == truth["id"]
    assert row.status.value.lower() == truth["status"] == "filled"
    assert row.filled_quantity == Decimal(truth["filled_qty"]) == Decimal(2)
    with Session(system.engine) as session:
        resolved_by = session.scalar(
            select(OrderEvent.source).where(
                OrderEvent.order_id == row.id,
                OrderEvent.from_status == OrderStatus.PENDING_NEW,
                OrderEvent.kind == "transition",
            )
        )
    # On Redis only the sweeps can resolve it. RabbitMQ hands the dead placer's message to
    # the rescuer at once: that redelivered placement may get there first, sending again
    # under the same client order id (the exchange refuses it as taken) and looking the
    # order up, which is as right: still one order at the exchange.
    resolvers, posts = {ReportSource.SWEEP, ReportSource.DEEP}, {1}
    if system.broker_url is not None:
        resolvers, posts = resolvers | {ReportSource.PLACEMENT}, {1, 2}
    assert resolved_by in resolvers
    assert system.exchange.requests()["by_route"].get("POST /v2/orders") in posts


COOLDOWN_S = 10.0


def _stale_reports_with(client: redis.Redis, order_id: str, seen: set[datetime]) -> None:
    """Note the time of the stored stale report when it lists the order as stale."""
    raw = client.get(REPORT_KEY)
    if raw is None:
        return
    report = json.loads(raw)
    if order_id in report["order_ids"].get(MARKET_NOT_TERMINAL, []):
        seen.add(datetime.fromisoformat(report["at"]))


def test_a_stale_order_gives_one_alert_per_cooldown_with_its_id(
    system: TrackingSystem, hook_factory: type[Hook]
) -> None:
    hook = hook_factory()
    system.env.update(FAST_SWEEPS)
    system.env.update({
        "ORDERSYNC_ALERT_WEBHOOK_URL": hook.url,
        "ORDERSYNC_ALERT_COOLDOWN_S": str(COOLDOWN_S),
        "ORDERSYNC_STALE_REPORT_INTERVAL_S": "1",
        "ORDERSYNC_STALE_MARKET_AFTER_S": "1",
        # Only the market class: the order is in no other, so every alert is that one.
        "ORDERSYNC_STALE_PENDING_AFTER_S": "3600",
        "ORDERSYNC_STALE_UNCHECKED_AFTER_S": "3600",
    })  # fmt: skip
    # A market order the exchange takes but does not fill for an hour.
    system.exchange.set_faults(fill_delay_ms=[3_600_000, 3_600_000], partial_fill_probability=0)
    system.start_worker("w1")
    system.start_beat()
    order_id = str(system.place(symbol="AAPL", side="buy", quantity="1").get(timeout=60))
    client = redis.Redis.from_url(system.redis_url, decode_responses=True)
    reports: set[datetime] = set()

    def alerts() -> list[dict[str, Any]]:
        _stale_reports_with(client, order_id, reports)
        return [body for body in hook.delivered
                if body["kind"] == "stale_orders" and order_id in body["order_ids"]]  # fmt: skip

    [first] = wait_for(alerts, 90, "a first alert for the stale order")
    first_at = datetime.fromisoformat(first["at"])
    assert first["class"] == MARKET_NOT_TERMINAL
    assert order_id in first["new_order_ids"]
    assert first["count"] >= 1

    both = wait_for(lambda: len(alerts()) >= 2 and alerts(), COOLDOWN_S + 90,
                    "a second alert, after the cooldown")  # fmt: skip
    client.close()
    first_again, second = both[:2]
    second_at = datetime.fromisoformat(second["at"])
    assert first_again == first
    assert second["class"] == MARKET_NOT_TERMINAL
    assert order_id in second["new_order_ids"]
    assert second_at - first_at >= timedelta(seconds=COOLDOWN_S)
    # Several reports saw the order stale within that cooldown; none of them alerted again.
    within = [at for at in reports if first_at < at < first_at + timedelta(seconds=COOLDOWN_S)]
    assert len(within) >= 3, sorted(reports)
    assert len([b for b in both if datetime.fromisoformat(b["at"]) < second_at]) == 1
    [row] = [o for o in system.orders() if o.id == order_id]
    assert row.status is OrderStatus.NEW  # still open at the exchange: stale, not resolved
