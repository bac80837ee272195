"""A trading service consuming ordersync's events: nothing of ordersync imported, only Redis.

    python examples/consume_events.py redis://127.0.0.1:6379/0 my-service

Each service reads the stream ``ordersync:events`` through its own consumer group, so it
receives every event once even across restarts; an entry is acknowledged only after it was
handled. Delivery is at least once, so the handler dedupes on ``event_id`` (here a set; a
real service keeps the ids it handled next to what it did with them). Entries a crashed
consumer of the group took but never acknowledged are claimed again after ``idle_ms``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import redis

STREAM = "ordersync:events"


def ensure_group(client: redis.Redis, group: str) -> None:
    """Create the group at the stream's start (every event still kept), once."""
    try:
        client.xgroup_create(STREAM, group, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def consume_once(
    client: redis.Redis, group: str, consumer: str, handle: Callable[[dict[str, Any]], None],
    seen: set[str], *, block_ms: int = 5000, idle_ms: int = 60_000,
) -> int:  # fmt: skip
    """Handle what is waiting (a crashed consumer's entries first); returns how many."""
    reclaimed: Any = client.xautoclaim(STREAM, group, consumer, min_idle_time=idle_ms, count=100)
    fresh: Any = client.xreadgroup(group, consumer, {STREAM: ">"}, count=100, block=block_ms)
    entries = list(reclaimed[1]) + [entry for _, batch in fresh or () for entry in batch]
    for entry_id, fields in entries:
        event = {**fields, "data": json.loads(fields["data"])}
        if event["event_id"] not in seen:  # at least once: a repeat is skipped
            handle(event)
            seen.add(event["event_id"])
        client.xack(STREAM, group, entry_id)
    return len(entries)


def print_event(event: dict[str, Any]) -> None:
    data = event["data"]
    print(f"{event['created_at']} {event['kind']:<24} order {event['order_id']} "
          f"{data.get('symbol', '')} {data.get('status', '')} "
          f"filled {data.get('filled_quantity', '')}")  # fmt: skip


def main(url: str, group: str) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    ensure_group(client, group)
    seen: set[str] = set()
    while True:
        consume_once(client, group, f"{group}-1", print_event, seen)


if __name__ == "__main__":
    main(*sys.argv[1:3])
