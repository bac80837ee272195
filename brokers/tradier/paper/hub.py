"""Tradier's account events stream on the paper exchange: its sessions and connections,
fed by the engine's listener hook. Each change to a Tradier order becomes an ``order``
event for every connection subscribed with a session of a token that acts for the order's
account (less the accounts it excludes), through the stream faults
(``brokers.paper.streaming``).

Sessions follow Tradier's docs: one per token at a time (a new one ends the old one, and
the connection using it [U: what Tradier does to that connection]), to be connected within
``tradier_stream_session_s`` (5 minutes). A session serves one connection; once that
connection ends, it is spent [U].
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from brokers.paper.events import OrderEvent, TradeEvent
from brokers.paper.faults import Faults
from brokers.paper.streaming import CloseCause, Closing, Connection, Hub
from brokers.tradier.paper.venue import TradierOrder, TradierVenue
from brokers.tradier.paper.wire import event_json

logger = logging.getLogger(__name__)
POLICY_CODE = 1008  # [U] how Tradier closes a connection whose session it ended
# The engine's events that change what Tradier shows of an order; the others (pending
# cancels and replaces, refused cancels) leave it as it was.
UPDATES = frozenset({
    TradeEvent.PENDING_NEW, TradeEvent.NEW, TradeEvent.PARTIAL_FILL, TradeEvent.FILL,
    TradeEvent.CALCULATED, TradeEvent.CANCELED, TradeEvent.EXPIRED, TradeEvent.DONE_FOR_DAY,
    TradeEvent.REJECTED,
})  # fmt: skip


@dataclass(slots=True)
class StreamSession:
    id: str
    token: str = field(repr=False)
    created_s: float
    connection: int | None = None  # the connection it subscribed, once it has


class EventsConnection(Connection):
    """One connection to ``/v1/accounts/events``: the token its session was made by, and
    the accounts it excludes, once subscribed."""

    def __init__(self, number: int, epoch: int) -> None:
        super().__init__(number, epoch)
        self.token: str | None = None
        self.session_id: str | None = None
        self.excluded: frozenset[str] = frozenset()


class EventsHub(Hub[EventsConnection]):
    def __init__(self, faults: Faults, venue: TradierVenue) -> None:
        super().__init__(faults)
        self.venue = venue
        self.sessions: dict[str, StreamSession] = {}  # token -> its current session

    def open(self) -> EventsConnection:
        return self.add(EventsConnection(self.next_number(), self.epoch))

    def new_session(self, token: str, now_s: float) -> StreamSession:
        """A session for the token; its previous one ends, with the connection using it."""
        old = self.sessions.get(token)
        if old is not None and old.connection is not None:
            conn = self.live.get(old.connection)
            if conn is not None:
                conn.kill(Closing(CloseCause.UNAUTHORIZED, POLICY_CODE, "session replaced"))
        session = StreamSession(str(uuid.uuid4()), token, now_s)
        self.sessions[token] = session
        return session

    def take(self, conn: EventsConnection, session_id: str, now_s: float) -> str | None:
        """The token of the session ``conn`` subscribes with, if the session is current and
        connected in time, and unused by any other connection; None otherwise."""
        session = next((s for s in self.sessions.values() if s.id == session_id), None)
        if session is None:
            return None
        if session.connection is None:
            if now_s - session.created_s > self.faults.settings.tradier_stream_session_s:
                return None
            session.connection = conn.number
        elif session.connection != conn.number:
            return None
        return session.token

    def on_event(self, event: OrderEvent) -> None:
        """The engine's listener: serialize the order now, before it changes again."""
        placed = self.venue.by_engine_id.get(event.order.id)
        if placed is not None and event.event in UPDATES:
            self.publish(placed)

    def publish(self, placed: TradierOrder) -> None:
        """The order as it stands, to every connection listening for its account."""
        try:
            targets = list(self._subscribers(placed))
            if targets:
                message = event_json(placed)
                for conn in targets:
                    self.send_event(conn, message)
        except Exception:  # a stream bug must not break the engine in mid-advance
            logger.exception("paper exchange: streaming Tradier order %s failed", placed.id)

    def reset(self) -> None:
        super().reset()
        self.sessions = {}

    def _subscribers(self, placed: TradierOrder) -> Iterator[EventsConnection]:
        number = placed.account_number
        for conn in self.live.values():
            if (
                conn.open
                and conn.token is not None
                and number not in conn.excluded
                and (number in self.venue.accounts_of(conn.token))
            ):
                yield conn
