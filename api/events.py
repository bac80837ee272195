"""Server-sent events from the outbox: every event committed with its change, in id order,
each with its id so a reconnecting client (``Last-Event-ID``) misses nothing still kept.

The key that opened a stream is checked again every ``RECHECK_S``: a revoked key's stream
ends then, as its next request would be refused.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from anyio import to_thread
from fastapi import Request

from api.deps import ApiState
from api.event_log import EventCursor, read_events, start_now
from api.schemas import EventOut

POLL_S = 0.25
HEARTBEAT_S = 15.0
RECHECK_S = 5.0
BATCH = 200


def _batch(state: ApiState, account_id: str, cursor: EventCursor) -> list[dict[str, Any]]:
    with state.ctx.sessions() as session:
        return read_events(session, account_id, cursor, BATCH)


def _start(state: ApiState) -> EventCursor:
    with state.ctx.sessions() as session:
        return start_now(session)


def frame(event: dict[str, Any]) -> str:
    """One event as the pages show it (``EventOut``), with its id and kind as SSE fields."""
    data = EventOut.model_validate(event).model_dump_json()
    return f"id: {event['id']}\nevent: {event['kind']}\ndata: {data}\n\n"


async def event_stream(
    request: Request, state: ApiState, account_id: str, after: int | None,
    still_allowed: Callable[[], bool],
) -> AsyncIterator[str]:  # fmt: skip
    """Poll the outbox (an indexed range read) and send what is new, never past an id that
    may still commit (api/event_log.py); a comment now and then keeps proxies from closing
    an idle stream. ``still_allowed`` (blocking) says whether the key still reaches the
    account."""
    cursor = EventCursor(after) if after is not None else await to_thread.run_sync(_start, state)
    # The position as an id without data: a reconnecting client resumes from it even
    # before its first event (``Last-Event-ID``).
    yield f"retry: 2000\nid: {cursor.position}\n: events after {cursor.position}\n\n"
    beat = recheck = time.monotonic()
    while not await request.is_disconnected():
        if time.monotonic() - recheck >= RECHECK_S:
            recheck = time.monotonic()
            if not await to_thread.run_sync(still_allowed):
                yield 'event: revoked\ndata: {"detail": "the key was revoked"}\n\n'
                return
        sent = cursor.position
        events = await to_thread.run_sync(_batch, state, account_id, cursor)
        for event in events:
            yield frame(event)
        if cursor.position > (events[-1]["id"] if events else sent):
            yield f"id: {cursor.position}\n\n"  # past other accounts' events: resume there
        if time.monotonic() - beat >= HEARTBEAT_S:
            beat = time.monotonic()
            yield ": keep-alive\n\n"
        if len(events) < BATCH:
            await anyio.sleep(POLL_S)
