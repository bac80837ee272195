"""The documented consumer works: every event once per group, repeats skipped, a crashed
consumer's unacknowledged entries claimed by the next (fakeredis streams)."""

from __future__ import annotations

import json
from typing import Any

import fakeredis

from examples.consume_events import STREAM, consume_once, ensure_group


def publish(client: fakeredis.FakeRedis, event_id: str) -> None:
    client.xadd(STREAM, {"event_id": event_id, "kind": "ORDER_FILLED", "order_id": "o1",
                         "created_at": "2026-11-21T12:00:00+00:00",
                         "data": json.dumps({"status": "FILLED"})})  # fmt: skip


def test_each_group_gets_every_event_once_and_repeats_are_skipped() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    publish(client, "e1")
    ensure_group(client, "a")
    ensure_group(client, "a")  # a restart: the group is kept
    ensure_group(client, "b")
    publish(client, "e2")
    publish(client, "e1")  # redelivered by the relay (at least once)
    handled: dict[str, list[str]] = {"a": [], "b": []}
    for group, ids in handled.items():
        seen: set[str] = set()

        def handle(event: dict[str, Any], ids: list[str] = ids) -> None:
            assert event["data"] == {"status": "FILLED"}
            ids.append(event["event_id"])

        assert consume_once(client, group, "c1", handle, seen, block_ms=1) == 3
        assert consume_once(client, group, "c1", handle, seen, block_ms=1) == 0
    assert handled == {"a": ["e1", "e2"], "b": ["e1", "e2"]}


def test_a_crashed_consumers_entries_are_claimed_by_the_next() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    ensure_group(client, "a")
    publish(client, "e1")
    client.xreadgroup("a", "crashed", {STREAM: ">"}, count=10)  # read, never acknowledged
    got: list[str] = []
    consume_once(client, "a", "c2", lambda e: got.append(e["event_id"]), set(), block_ms=1,
                 idle_ms=0)  # fmt: skip
    assert got == ["e1"]
    assert client.xpending(STREAM, "a")["pending"] == 0
