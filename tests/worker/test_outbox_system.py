"""Events never lost, with the real parts: worker and beat processes, the paper exchange,
and a Redis for the event stream that the test stops while orders fill and starts again."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from models.outbox import OutboxEvent
from ordersync.embedded_redis import EmbeddedRedis
from tests.worker.conftest import TrackingSystem, wait_for
from worker.outbox import STREAM

pytestmark = pytest.mark.integration

GROUPS = ("positions-service", "notifier")


def filled(system: TrackingSystem, n: int) -> bool:
    orders = system.orders()
    return len(orders) == n and all(
        o.status is OrderStatus.FILLED and o.filled_quantity == o.quantity for o in orders
    )


def waiting(system: TrackingSystem) -> int:
    with Session(system.engine) as session:
        query = select(func.count()).select_from(OutboxEvent)
        return int(session.scalar(query.where(OutboxEvent.published_at.is_(None))) or 0)


def outbox(system: TrackingSystem) -> list[OutboxEvent]:
    with Session(system.engine) as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


def read_group(client: redis.Redis, group: str) -> list[dict[str, str]]:
    """Everything the group has not yet read, acknowledged as a consumer would."""
    seen: list[dict[str, str]] = []
    while True:
        answer = client.xreadgroup(group, "c1", {STREAM: ">"}, count=100)
        if not answer:
            return seen
        for entry_id, fields in answer[0][1]:
            seen.append(fields)
            client.xack(STREAM, group, entry_id)


def test_events_wait_while_the_stream_is_down_and_arrive_once_per_group_in_order(
    system: TrackingSystem, tmp_path: Path
) -> None:
    events_redis = EmbeddedRedis(tmp_path / "events-redis", persist=True)
    events_redis.start()
    try:
        client = redis.Redis.from_url(events_redis.url, decode_responses=True)
        for group in GROUPS:
            client.xgroup_create(STREAM, group, id="$", mkstream=True)
        system.env["ORDERSYNC_EVENTS_REDIS_URL"] = events_redis.url
        system.start_worker("w1")
        system.start_beat()

        for i in range(3):
            system.place(symbol="AAPL", side="buy", quantity="2", decision_id=f"up-{i}")
        wait_for(lambda: filled(system, 3), 60, "the first orders filled")
        wait_for(lambda: waiting(system) == 0, 60, "their events published")

        events_redis.stop()  # the stream is down; orders keep filling
        for i in range(3):
            system.place(symbol="MSFT", side="sell", quantity="1", decision_id=f"down-{i}")
        wait_for(lambda: filled(system, 6), 60, "the later orders filled")
        wait_for(lambda: waiting(system) >= 6, 30, "their events waiting in the outbox")
        wait_for(lambda: "Redis refused a batch" in system.log("w1"), 30, "the relay's warning")

        events_redis.start()  # same port and data: the stream and its groups come back
        wait_for(lambda: waiting(system) == 0, 60, "the waiting events published")

        written = outbox(system)
        per_order: dict[str, list[str]] = {}
        for event in written:
            per_order.setdefault(str(event.order_id), []).append(event.event_id)
        for group in GROUPS:
            received = read_group(client, group)
            ids = [fields["event_id"] for fields in received]
            assert sorted(ids) == sorted(e.event_id for e in written), group  # each, once
            for order_id, expected in per_order.items():  # in order per order
                assert [i for i, f in zip(ids, received, strict=True)
                        if f["order_id"] == order_id] == expected  # fmt: skip
        for order_id in per_order:
            kinds = [e.kind for e in written if e.order_id == order_id]
            assert kinds[0] == "ORDER_PLACED", kinds
            assert kinds[-1] == "ORDER_FILLED", kinds
            assert kinds.count("ORDER_FILLED") == 1, kinds
        client.close()
    finally:
        events_redis.stop()
