"""Server-sent events from the outbox: every event committed with its change, in id order,
each with its id so a reconnecting client (``Last-Event-ID``) misses nothing still kept."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio import to_thread
from fastapi import Request
from sqlalchemy import func, select

from api.deps import ApiState
from api.event_log import EventCursor, read_events
from models.outbox import OutboxEvent

POLL_S = 0.25
HEARTBEAT_S = 15.0
BATCH = 200


def _last_id(state: ApiState) -> int:
    with state.ctx.sessions() as session:
        return int(session.scalar(select(func.max(OutboxEvent.id))) or 0)


def _batch(state: ApiState, account_id: str, cursor: EventCursor) -> list[dict[str, Any]]:
    with state.ctx.sessions() as session:
        return read_events(session, account_id, cursor, BATCH)


def frame(event: dict[str, Any]) -> str:
    data = json.dumps(event, default=str, separators=(",", ":"))
    return f"id: {event['id']}\nevent: {event['kind']}\ndata: {data}\n\n"


async def event_stream(
    request: Request, state: ApiState, account_id: str, after: int | None
) -> AsyncIterator[str]:
    """Poll the outbox (an indexed range read) and send what is new, never past an id that
    may still commit (api/event_log.py); a comment now and then keeps proxies from closing
    an idle stream."""
    if after is None:
        after = await to_thread.run_sync(_last_id, state)
    cursor = EventCursor(after)
    # The position as an id without data: a reconnecting client resumes from it even
    # before its first event (``Last-Event-ID``).
    yield f"retry: 2000\nid: {after}\n: events after {after}\n\n"
    beat = time.monotonic() + HEARTBEAT_S
    while not await request.is_disconnected():
        sent = cursor.after
        events = await to_thread.run_sync(_batch, state, account_id, cursor)
        for event in events:
            yield frame(event)
        if cursor.after > (events[-1]["id"] if events else sent):
            yield f"id: {cursor.after}\n\n"  # past other accounts' events: resume there
        if time.monotonic() >= beat:
            beat = time.monotonic() + HEARTBEAT_S
            yield ": keep-alive\n\n"
        if len(events) < BATCH:
            await anyio.sleep(POLL_S)
