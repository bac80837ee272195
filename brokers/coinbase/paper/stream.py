"""Coinbase Advanced Trade's user WebSocket (``advanced-trade-ws-user``), served at
``/ws/user`` on the paper exchange's host: ``subscribe`` and ``unsubscribe`` to ``user``
(a JWT without ``uri``, checked as REST's are) and ``heartbeats`` (one a second, no JWT
needed), each answered by a ``subscriptions`` message listing every channel subscribed; a
``user`` subscription first gets the snapshot of the key's open orders, then an update
per change (``hub.UserHub``).

Refusals are ``{"type": "error", "message": ...}`` and keep the connection open (Coinbase's
own, as its SDK's users logged them). Everything goes through the connection's queue, so
messages leave in the order they were numbered.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from fastapi import APIRouter, WebSocket
from starlette.types import Message

from brokers.coinbase.paper.auth import verify
from brokers.coinbase.paper.errors import Unauthorized
from brokers.coinbase.paper.hub import UserConnection, UserHub
from brokers.paper.model import to_us
from brokers.paper.state import Sim
from brokers.paper.streaming import Json, serve_beating

PATH = "/ws/user"
HEARTBEAT_S = 1.0
CHANNELS = frozenset({"user", "heartbeats"})
AUTH_FAILURE = "authentication failure"  # Coinbase's words for any refused JWT
# [U] Coinbase's words for a message it cannot read and for a channel it does not serve
# here (futures_balance_summary, or a market data channel) are not documented.
UNREADABLE = "failure to parse message"
NOT_SERVED = "Failed to subscribe"


class Refused(Exception):
    """A message refused with Coinbase's error message."""


def decode(frame: Message) -> tuple[str, str, Json]:
    """(type, channel, message) of a frame the client sent: JSON text with a ``type`` of
    subscribe or unsubscribe and a ``channel``."""
    text = frame.get("text")
    if text is None:
        raise Refused(UNREADABLE)
    try:
        message = json.loads(text, parse_float=Decimal)
    except ValueError:
        raise Refused(UNREADABLE) from None
    if not isinstance(message, dict):
        raise Refused(UNREADABLE)
    kind, channel = message.get("type"), message.get("channel")
    if kind not in ("subscribe", "unsubscribe") or not isinstance(channel, str):
        raise Refused(UNREADABLE)
    if channel not in CHANNELS:
        raise Refused(NOT_SERVED)
    return kind, channel, message


def products(message: Json) -> frozenset[str] | None:
    """The ``product_ids`` a subscription names; none (absent or empty): every product."""
    found = message.get("product_ids")
    if found is None:
        return None
    if not isinstance(found, list) or not all(isinstance(p, str) for p in found):
        raise Refused(UNREADABLE)
    return frozenset(found) or None


class Session:
    """One user WebSocket connection from accept to close."""

    def __init__(self, sim: Sim, hub: UserHub, websocket: WebSocket) -> None:
        self.sim = sim
        self.hub = hub
        self.websocket = websocket
        self.conn: UserConnection = hub.open()

    async def run(self) -> None:
        await serve_beating(self._beat, self.hub, self.conn, self.websocket, self._receive,
                            self._send)  # fmt: skip

    def _receive(self, frame: Message) -> None:
        try:
            kind, channel, message = decode(frame)
            if kind == "subscribe":
                self._subscribe(channel, message)
            else:
                self._unsubscribe(channel)
        except Refused as refused:
            self.hub.queue(self.conn, {"type": "error", "message": str(refused)})
            return
        now_us = self._now_us()
        ack: list[Json] = [{"subscriptions": self.conn.subscriptions()}]
        self.hub.queue(self.conn, self.hub.envelope(self.conn, "subscriptions", now_us, ack))

    def _subscribe(self, channel: str, message: Json) -> None:
        if channel == "heartbeats":
            self.conn.heartbeats = True
            return
        wanted = products(message)
        self.conn.account = self._authenticate(message.get("jwt"))
        self.conn.user, self.conn.products = True, wanted
        self.sim.engine.advance()  # the snapshot shows the orders as they stand now
        self.sim.coinbase.expire_due(self.sim.engine.now_us)
        for batch in self.hub.snapshot(self.conn, self._now_us()):
            self.hub.queue(self.conn, batch)

    def _unsubscribe(self, channel: str) -> None:
        if channel == "heartbeats":
            self.conn.heartbeats = False
        else:
            self.conn.user = False

    def _authenticate(self, token: object) -> str:
        """The key the subscription's JWT was signed by, as strictly as REST checks one."""
        stats = self.hub.stats
        try:
            if not isinstance(token, str) or not token:
                raise Unauthorized("no JWT")
            key_name = verify(token, self.sim.coinbase.keys, self.sim.now_s(), None)
            if self.sim.faults.take_refuse_auth():
                stats.refused_auth += 1
                raise Unauthorized("refused by stream_next_refuse_auth")
        except Unauthorized:
            stats.unauthorized += 1
            raise Refused(AUTH_FAILURE) from None
        stats.authorized += 1
        self.sim.coinbase.account(key_name)
        return key_name

    async def _beat(self) -> None:
        """One heartbeat a second while subscribed to heartbeats."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            if self.conn.heartbeats and self.conn.open:
                now = self.sim.clock()
                self.hub.queue(self.conn, self.hub.heartbeat(self.conn, now, to_us(now)))

    def _now_us(self) -> int:
        return to_us(self.sim.clock())

    async def _send(self, message: Json) -> None:
        await self.websocket.send_text(json.dumps(message, separators=(",", ":")))


def build_user_stream_router(sim: Sim) -> APIRouter:
    router = APIRouter()

    @router.websocket(PATH)
    async def user_stream(websocket: WebSocket) -> None:
        await websocket.accept()
        await Session(sim, sim.coinbase_stream, websocket).run()

    return router
