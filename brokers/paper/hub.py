"""The live trade_updates connections, fed by the engine's listener hook: who listens for
which account, what each still has to send, and the stream's figures.

Everything here runs on the event loop that drives the engine (the listener is called from
``Engine.advance``), so the per-connection queues need no locks. The stream faults are
drawn here, as each event is queued, so their decisions follow the engine's order of events
(and the faults' seeded rng), never the scheduling of the connections' writers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import count

from brokers.paper.events import OrderEvent
from brokers.paper.faults import Faults
from brokers.paper.wire import Json, trade_update_json

logger = logging.getLogger(__name__)
TRADE_UPDATES = "trade_updates"
SLOW_CONSUMER_CODE = 1008  # policy violation: the client does not read fast enough
RESET_CODE = 1012  # service restart: every order the client knew is gone


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
    """One WebSocket client: its account once authenticated, its streams, its queue."""

    def __init__(self, number: int, codec: str, epoch: int) -> None:
        self.number = number
        self.codec = codec
        self.epoch = epoch  # the hub's reset count when it opened
        self.account: str | None = None
        self.streams: tuple[str, ...] = ()
        self.queue: asyncio.Queue[Outgoing | Closing] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.end: Closing | None = None
        self.closing = False  # a close is queued: nothing more is queued behind it
        self.holding = False  # an event is held back (reorder) until the next one
        self.sent = 0

    @property
    def listening(self) -> bool:
        return self.account is not None and TRADE_UPDATES in self.streams

    def kill(self, closing: Closing) -> None:
        """End the connection now; unsent messages are lost. The first reason given wins."""
        if self.end is None:
            self.end = closing
            self.ended.set()

    def as_json(self) -> Json:
        return {
            "id": self.number,
            "account": self.account,
            "streams": list(self.streams),
            "codec": self.codec,
            "queued": self.queue.qsize(),
            "sent": self.sent,
        }


@dataclass(slots=True)
class StreamStats:
    """Counters since start-up or the last reset."""

    opened: int = 0
    events: int = 0  # trade_updates messages queued, one per listening connection
    sent: int = 0  # frames written: answers, events and their duplicates
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    stalled: int = 0
    authorized: int = 0
    unauthorized: int = 0
    refused_auth: int = 0  # valid credentials refused by stream_next_refuse_auth
    disconnects: Counter[str] = field(default_factory=Counter)


class StreamHub:
    """Routes each engine event to the connections authenticated as the order's account and
    listening to trade_updates; nothing is kept for clients not connected."""

    def __init__(self, faults: Faults, rng: random.Random) -> None:
        self.faults = faults
        self._rng = rng  # execution ids only: fault decisions use the faults' own rng
        self._numbers = count(1)
        self.epoch = 0
        self.live: dict[int, Connection] = {}
        self.stats = StreamStats()

    def open(self, codec: str) -> Connection:
        conn = Connection(next(self._numbers), codec, self.epoch)
        self.live[conn.number] = conn
        self.stats.opened += 1
        return conn

    def forget(self, conn: Connection) -> None:
        """The connection's socket is gone: count why, unless it predates the last reset."""
        if self.live.pop(conn.number, None) is None:
            return
        if conn.epoch == self.epoch:
            cause = CloseCause.CLIENT if conn.end is None else conn.end.cause
            self.stats.disconnects[cause.value] += 1

    def send(self, conn: Connection, item: Outgoing | Closing) -> None:
        """Queue for the connection's writer; a queue over stream_max_queue ends it (1008)."""
        if conn.end is not None or conn.closing:
            return
        conn.closing = isinstance(item, Closing)
        conn.queue.put_nowait(item)
        limit = self.faults.settings.stream_max_queue
        if conn.queue.qsize() > limit:
            reason = f"slow consumer: more than {limit} unsent messages"
            conn.kill(Closing(CloseCause.SLOW_CONSUMER, SLOW_CONSUMER_CODE, reason))

    def on_event(self, event: OrderEvent) -> None:
        """The engine's listener: serialize the order now, before it changes again."""
        try:
            account = event.order.account
            targets = [
                conn
                for conn in self.live.values()
                if conn.end is None
                and not conn.closing
                and conn.listening
                and conn.account == account
            ]
            if not targets:
                return
            message = trade_update_json(event, self._execution_id())
            for conn in targets:
                self.stats.events += 1
                self._send_event(conn, message)
        except Exception:  # a stream bug must not break the engine in mid-advance
            logger.exception("paper exchange: streaming order %s failed", event.order.id)

    def _send_event(self, conn: Connection, message: Json) -> None:
        """Queue one event through the stream faults: a disconnect closes the connection
        abruptly where the event would have been sent; a dropped event is never queued."""
        stats = self.stats
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

    def _execution_id(self) -> str:
        """A fresh uuid4 per event, unrelated to the FILL activity id."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
