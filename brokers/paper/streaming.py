"""What every venue's order-update stream on the paper exchange shares: live connections,
their queues, the stream faults drawn per event, the close causes and the figures.

Everything here runs on the event loop that drives the engine (listeners are called from
``Engine.advance``), so the per-connection queues need no locks. The stream faults are
drawn as each event is queued, so their decisions follow the engine's order of events (and
the faults' seeded rng), never the scheduling of the connections' writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import count
from typing import Any, Generic, TypeVar

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from brokers.paper.faults import Faults

logger = logging.getLogger(__name__)
Json = dict[str, object]
SLOW_CONSUMER_CODE = 1008  # policy violation: the client does not read fast enough
RESET_CODE = 1012  # service restart: every order the client knew is gone
ERROR_CODE = 1011
CLOSE_TIMEOUT_S = 2.0  # a client that reads nothing cannot hold a closing connection


class CloseCause(StrEnum):
    """Why a connection ended, as counted in ``GET /_sim/stream``."""

    CLIENT = "client"  # the client closed or went away
    FAULT = "fault"  # stream_next_disconnect / stream_p_disconnect
    CONTROL = "control"  # POST /_sim/stream/disconnect
    SLOW_CONSUMER = "slow_consumer"
    UNAUTHORIZED = "unauthorized"  # refused authentication, or a message before it
    RESET = "reset"  # POST /_sim/reset
    ERROR = "error"  # a bug in the exchange (logged)


@dataclass(frozen=True, slots=True)
class Closing:
    """How the server ends a connection: a close frame with ``code``, or, without a code,
    abruptly (the TCP connection closes with no close frame: the client sees 1006)."""

    cause: CloseCause
    code: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message waiting in a connection's queue, with what the stream faults decided for it
    (events only): wait ``stall_s`` first, send ``copies`` times, or ``hold`` it back until
    the next event has been sent."""

    message: Json
    event: bool = False
    stall_s: float = 0.0
    copies: int = 1
    hold: bool = False


class Connection:
    """One WebSocket client: its account once authenticated, its queue, how it ended."""

    def __init__(self, number: int, epoch: int) -> None:
        self.number = number
        self.epoch = epoch  # the hub's reset count when it opened
        self.account: str | None = None
        self.queue: asyncio.Queue[Outgoing | Closing] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.end: Closing | None = None
        self.closing = False  # a close is queued: nothing more is queued behind it
        self.holding = False  # an event is held back (reorder) until the next one
        self.sent = 0

    def kill(self, closing: Closing) -> None:
        """End the connection now; unsent messages are lost. The first reason given wins."""
        if self.end is None:
            self.end = closing
            self.ended.set()

    @property
    def open(self) -> bool:
        """Neither ended nor closing: events may still be queued for it."""
        return self.end is None and not self.closing

    def as_json(self) -> Json:
        return {"id": self.number, "account": self.account, "queued": self.queue.qsize(),
                "sent": self.sent}  # fmt: skip


@dataclass(slots=True)
class StreamStats:
    """Counters since start-up or the last reset."""

    opened: int = 0
    events: int = 0  # events queued, one per listening connection
    sent: int = 0  # frames written: answers, events and their duplicates
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    stalled: int = 0
    authorized: int = 0
    unauthorized: int = 0
    refused_auth: int = 0  # valid credentials refused by stream_next_refuse_auth
    disconnects: Counter[str] = field(default_factory=Counter)


C = TypeVar("C", bound=Connection)


class Hub(Generic[C]):
    """A venue's live connections; the venue's hub routes engine events to them."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._numbers = count(1)
        self.epoch = 0
        self.live: dict[int, C] = {}
        self.stats = StreamStats()

    def add(self, conn: C) -> C:
        self.live[conn.number] = conn
        self.stats.opened += 1
        return conn

    def next_number(self) -> int:
        return next(self._numbers)

    def forget(self, conn: C) -> None:
        """The connection's socket is gone: count why, unless it predates the last reset."""
        if self.live.pop(conn.number, None) is None:
            return
        if conn.epoch == self.epoch:
            cause = CloseCause.CLIENT if conn.end is None else conn.end.cause
            self.stats.disconnects[cause.value] += 1

    def send(self, conn: C, item: Outgoing | Closing) -> None:
        """Queue for the connection's writer; a queue over stream_max_queue ends it (1008)."""
        if not conn.open:
            return
        conn.closing = isinstance(item, Closing)
        conn.queue.put_nowait(item)
        limit = self.faults.settings.stream_max_queue
        if conn.queue.qsize() > limit:
            reason = f"slow consumer: more than {limit} unsent messages"
            conn.kill(Closing(CloseCause.SLOW_CONSUMER, SLOW_CONSUMER_CODE, reason))

    def send_event(self, conn: C, message: Json) -> None:
        """Queue one event through the stream faults: a disconnect closes the connection
        abruptly where the event would have been sent; a dropped event is never queued."""
        stats = self.stats
        stats.events += 1
        fate = self.faults.draw_stream_message(holding=conn.holding)
        if fate.disconnect:
            self.send(conn, Closing(CloseCause.FAULT))
            return
        if fate.drop:
            stats.dropped += 1
            return
        stats.stalled += fate.stall_s > 0
        stats.duplicated += fate.duplicate
        stats.reordered += fate.reorder
        conn.holding = fate.reorder  # set by a reorder; the next event sent releases it
        copies = 2 if fate.duplicate else 1
        self.send(conn, Outgoing(message, True, fate.stall_s, copies, fate.reorder))

    def disconnect_all(self, closing: Closing) -> int:
        """End every live connection now; returns how many."""
        ended = [conn for conn in self.live.values() if conn.end is None]
        for conn in ended:
            conn.kill(closing)
        return len(ended)

    def reset(self) -> None:
        """Close every connection (1012: the orders they knew are gone), zero the counters."""
        self.disconnect_all(Closing(CloseCause.RESET, RESET_CODE, "paper exchange reset"))
        self.epoch += 1
        self.stats = StreamStats()

    def as_json(self) -> Json:
        stats = self.stats
        return {
            "connections": [conn.as_json() for conn in self.live.values()],
            "opened": stats.opened,
            "messages": {
                "events": stats.events,
                "sent": stats.sent,
                "dropped": stats.dropped,
                "duplicated": stats.duplicated,
                "reordered": stats.reordered,
                "stalled": stats.stalled,
            },
            "auth": {
                "authorized": stats.authorized,
                "unauthorized": stats.unauthorized,
                "refused": stats.refused_auth,
            },
            "disconnects": dict(stats.disconnects),
        }


async def drain(hub: Hub[C], conn: C, send: Callable[[Json], Awaitable[None]]) -> None:
    """A connection's writer: its queue in order, each message ``send`` as one frame, doing
    what the stream faults decided for each event, until a Closing ends the connection."""

    async def out(item: Outgoing) -> None:
        for _ in range(item.copies):
            await send(item.message)
            conn.sent += 1
            hub.stats.sent += 1

    held: Outgoing | None = None  # a reordered event: it goes after the next event
    while True:
        item = await conn.queue.get()
        if isinstance(item, Closing):
            conn.kill(item)
            return
        if item.stall_s:
            await asyncio.sleep(item.stall_s)  # real time: the client hears nothing
        if item.hold:
            held = item
            continue
        await out(item)
        if item.event and held is not None:
            await out(held)
            held = None


async def serve(hub: Hub[C], conn: C, websocket: WebSocket, handle: Callable[[Message], None],
                send: Callable[[Json], Awaitable[None]]) -> None:  # fmt: skip
    """One accepted connection until it ends: its reader (each frame the client sends
    ``handle``d) and its writer (``drain``, each message ``send`` as a frame) run until
    either stops or the connection is ended; then the close frame its end calls for."""

    async def read() -> None:
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            handle(frame)
            if conn.closing:
                await conn.ended.wait()  # the writer sends the answers, then closes

    tasks = (
        asyncio.ensure_future(read()),
        asyncio.ensure_future(drain(hub, conn, send)),
        asyncio.create_task(conn.ended.wait()),
    )
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, Exception) and not isinstance(outcome, WebSocketDisconnect):
                message = "paper exchange: stream connection %d failed"
                logger.error(message, conn.number, exc_info=outcome)
                conn.kill(Closing(CloseCause.ERROR, ERROR_CODE, "internal error"))
        hub.forget(conn)
    end = conn.end
    if end is None or end.code is None:
        return  # the client is gone, or the socket is to close abruptly: no close frame
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
        await asyncio.wait_for(websocket.close(end.code, end.reason), CLOSE_TIMEOUT_S)


async def serve_beating(beat: Callable[[], Coroutine[Any, Any, None]], hub: Hub[C], conn: C,
                        websocket: WebSocket, handle: Callable[[Message], None],
                        send: Callable[[Json], Awaitable[None]]) -> None:  # fmt: skip
    """``serve`` with a heartbeat task beside it (``beat``), ended with the connection."""
    beating = asyncio.create_task(beat())
    try:
        await serve(hub, conn, websocket, handle, send)
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
