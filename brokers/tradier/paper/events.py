"""Tradier's account events stream as the paper exchange serves it on its own host:
``POST /v1/accounts/events/session`` (the bearer token, checked and rate-limited as the
account routes are) answers ``{"stream": {"url", "sessionid"}}``; then the WebSocket at
``/v1/accounts/events`` takes ``{"events": ["order"], "sessionid", "excludeAccounts"}``
(sent again on the same connection, it changes what is excluded) and streams an ``order``
event per change to the token's accounts' orders (``hub.EventsHub``) and a heartbeat
every ``tradier_heartbeat_s``. Tradier acknowledges nothing.

A payload it cannot read, or a session unknown, expired, replaced or used by another
connection, is answered ``{"error": ...}`` and the connection closed (1008) [U: the
market stream's ``{"error": "session not found"}`` as its clients logged it; the account
stream's words and whether it closes are not documented].
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

from fastapi import APIRouter, Request, Response, WebSocket
from starlette.types import Message

from brokers.paper.state import Sim
from brokers.paper.streaming import CloseCause, Closing, Json, Outgoing, serve_beating
from brokers.tradier.paper.hub import POLICY_CODE, EventsConnection, EventsHub
from brokers.tradier.paper.wire import answer, event_text

PATH = "/v1/accounts/events"
EVENTS_SESSION = PATH + "/session"
SESSION_NOT_FOUND = "session not found"  # [U]
INVALID_PAYLOAD = "invalid payload"  # [U]
BEAT_CHECK_S = 0.5
EVENTS = frozenset({"order"})  # "only order is supported at the moment"


class Refused(Exception):
    """A subscription refused with Tradier's error message."""


def decode(frame: Message) -> tuple[str, frozenset[str]]:
    """(sessionid, excluded accounts) of a subscription payload."""
    try:
        message = json.loads(frame.get("text") or "", parse_float=Decimal)
    except ValueError:
        raise Refused(INVALID_PAYLOAD) from None
    if not isinstance(message, dict):
        raise Refused(INVALID_PAYLOAD)
    events, session_id = message.get("events"), message.get("sessionid")
    excluded = message.get("excludeAccounts", [])
    if not isinstance(events, list) or not events or not set(events) <= EVENTS:
        raise Refused(INVALID_PAYLOAD)
    if not isinstance(session_id, str) or not session_id:
        raise Refused(SESSION_NOT_FOUND)
    if not isinstance(excluded, list) or not all(isinstance(a, str) for a in excluded):
        raise Refused(INVALID_PAYLOAD)
    return session_id, frozenset(excluded)


class Listener:
    """One account events connection from accept to close."""

    def __init__(self, sim: Sim, websocket: WebSocket) -> None:
        self.sim = sim
        self.hub: EventsHub = sim.tradier_stream
        self.websocket = websocket
        self.conn: EventsConnection = self.hub.open()

    async def run(self) -> None:
        await serve_beating(self._beat, self.hub, self.conn, self.websocket, self._receive,
                            self._send)  # fmt: skip

    def _receive(self, frame: Message) -> None:
        stats = self.hub.stats
        try:
            session_id, excluded = decode(frame)
            token = self.hub.take(self.conn, session_id, self.sim.now_s())
            if token is None:
                stats.unauthorized += 1
                raise Refused(SESSION_NOT_FOUND)
            if self.conn.token is None and self.sim.faults.take_refuse_auth():
                stats.refused_auth += 1
                raise Refused(SESSION_NOT_FOUND)
        except Refused as refused:
            self.hub.send(self.conn, Outgoing({"error": str(refused)}))
            self.hub.send(self.conn, Closing(CloseCause.UNAUTHORIZED, POLICY_CODE, str(refused)))
            return
        if self.conn.token is None:
            stats.authorized += 1
            self.sim.engine.advance()  # events from here on show the orders as they stand
        accounts = sorted(self.sim.tradier.accounts_of(token))
        self.conn.token, self.conn.session_id, self.conn.excluded = token, session_id, excluded
        self.conn.account = ",".join(accounts) or None

    async def _beat(self) -> None:
        """A heartbeat every ``tradier_heartbeat_s`` while subscribed (the setting read
        every BEAT_CHECK_S, so a change applies to connections already open)."""
        last = time.monotonic()
        while True:
            every = self.sim.faults.settings.tradier_heartbeat_s
            await asyncio.sleep(max(0.0, min(BEAT_CHECK_S, last + every - time.monotonic())))
            if time.monotonic() - last < self.sim.faults.settings.tradier_heartbeat_s:
                continue
            last = time.monotonic()
            if self.conn.token is not None and self.conn.open:
                now = self.sim.clock()
                stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"  # as the docs' sample
                beat: Json = {"event": "heartbeat", "status": "active", "timestamp": stamp}
                self.hub.send(self.conn, Outgoing(beat))

    async def _send(self, message: Json) -> None:
        await self.websocket.send_text(event_text(message))


def stream_location(request: Request) -> str:
    """Where the stream is, on the host the session was asked of."""
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.netloc}{PATH}"


def build_session_router(sim: Sim, gate: Callable[[Request], Awaitable[str]]) -> APIRouter:
    """``POST /v1/accounts/events/session``, mounted under the account routes' prefix."""
    router = APIRouter()

    @router.post(EVENTS_SESSION.removeprefix("/v1/accounts"))
    async def create_session(request: Request) -> Response:
        token = await gate(request)
        session = sim.tradier_stream.new_session(token, sim.now_s())
        body: Json = {"stream": {"url": stream_location(request), "sessionid": session.id}}
        return answer(body, request.headers.get("accept"))

    return router


def build_events_router(sim: Sim) -> APIRouter:
    router = APIRouter()

    @router.websocket(PATH)
    async def account_events(websocket: WebSocket) -> None:
        await websocket.accept()
        await Listener(sim, websocket).run()

    return router
