"""Alpaca's order-update WebSocket at ``/stream``: authenticate, listen to trade_updates,
then every lifecycle change of the account's orders as it happens, in binary frames of JSON
(or MessagePack when the handshake asks for it), through the stream faults.

Per connection a reader handles the client's messages and a writer drains the connection's
queue (``brokers.paper.streaming.drain``); every answer goes through that queue, so answers
and events leave in the order they arose.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
from fastapi import APIRouter, WebSocket
from starlette.types import Message

from brokers.alpaca.paper.hub import (
    TRADE_UPDATES,
    CloseCause,
    Closing,
    Outgoing,
    TradeUpdatesConnection,
)
from brokers.alpaca.paper.wire import Json
from brokers.paper.state import Sim
from brokers.paper.streaming import serve

JSON, MSGPACK = "json", "msgpack"
MSGPACK_MEDIA_TYPE = "application/msgpack"
STREAMS = frozenset({TRADE_UPDATES})  # what a listen may ask for; others are left out
UNAUTHORIZED_CODE = 1008  # policy violation: closed after an "unauthorized" answer


class ProtocolError(Exception):
    """A client message the protocol cannot take, on connection ``connection``."""

    def __init__(self, connection: int, action: object, reason: str) -> None:
        super().__init__(f"stream connection {connection}: {reason}")
        self.connection = connection
        self.action = action if isinstance(action, str) else None
        self.reason = reason


def codec_of(websocket: WebSocket) -> str:
    """MessagePack when the handshake carries ``Content-Type: application/msgpack``."""
    media_type = websocket.headers.get("content-type", "").partition(";")[0]
    return MSGPACK if media_type.strip().lower() == MSGPACK_MEDIA_TYPE else JSON


def encode(message: Json, codec: str) -> bytes:
    """A binary frame's payload, as Alpaca's paper stream sends them."""
    if codec == MSGPACK:
        packed: bytes = msgpack.packb(message, use_bin_type=True)
        return packed
    return json.dumps(message, separators=(",", ":")).encode()


def decode(connection: TradeUpdatesConnection, frame: Message) -> dict[str, Any]:
    """A client's message: text frames are JSON, binary frames the connection's codec."""
    text, data = frame.get("text"), frame.get("bytes")
    try:
        if text is not None:
            body = json.loads(text)
        elif connection.codec == MSGPACK:
            body = msgpack.unpackb(data or b"", raw=False)
        else:
            body = json.loads(data or b"")
    except (ValueError, msgpack.UnpackException) as exc:
        raise ProtocolError(connection.number, None, f"unreadable {connection.codec}") from exc
    if not isinstance(body, dict):
        raise ProtocolError(connection.number, None, "a message must be an object")
    return body


def authorization(status: str, action: object = "authenticate", error: str | None = None) -> Json:
    data: Json = {"status": status, "action": action if isinstance(action, str) else None}
    if error is not None:
        data["error"] = error
    return {"stream": "authorization", "data": data}


def listening(streams: tuple[str, ...]) -> Json:
    return {"stream": "listening", "data": {"streams": list(streams)}}


def error_message(action: str | None, reason: str) -> Json:
    """The answer to a bad message after authentication (the connection stays open)."""
    return {"stream": "error", "data": {"action": action, "error": reason}}


class Session:
    """One connection from accept to close."""

    def __init__(self, sim: Sim, websocket: WebSocket, conn: TradeUpdatesConnection) -> None:
        self.sim = sim
        self.hub = sim.stream
        self.websocket = websocket
        self.conn = conn

    async def run(self) -> None:
        await serve(self.hub, self.conn, self.websocket, self._receive, self._send)

    # -- the client's messages -----------------------------------------------------------

    def _receive(self, frame: Message) -> None:
        try:
            self._handle(decode(self.conn, frame))
        except ProtocolError as exc:
            self._refuse(exc)

    def _handle(self, body: dict[str, Any]) -> None:
        conn = self.conn
        action, data = body.get("action"), body.get("data")
        if action == "authenticate":
            self._authenticate(data)
        elif conn.account is None:
            reason = "not authenticated: the first message must be authenticate"
            raise ProtocolError(conn.number, action, reason)
        elif action == "listen":
            self._listen(data)
        else:
            raise ProtocolError(conn.number, action, f"unknown action {action!r}")

    def _authenticate(self, data: object) -> None:
        conn, stats = self.conn, self.hub.stats
        account = None
        if isinstance(data, dict):
            key_id, secret = data.get("key_id"), data.get("secret_key")
            if isinstance(key_id, str) and isinstance(secret, str):
                account = self.sim.authenticate(key_id, secret)
        if account is not None and self.sim.faults.take_refuse_auth():
            stats.refused_auth += 1
            account = None
        if account is None:
            stats.unauthorized += 1
            conn.account = None
            self._answer_and_close(authorization("unauthorized"), "unauthorized")
            return
        stats.authorized += 1
        conn.account = account
        self.hub.send(conn, Outgoing(authorization("authorized")))

    def _listen(self, data: object) -> None:
        conn = self.conn
        streams = data.get("streams") if isinstance(data, dict) else None
        if not isinstance(streams, list) or not all(isinstance(s, str) for s in streams):
            raise ProtocolError(conn.number, "listen", "data.streams must be a list of names")
        conn.streams = tuple(dict.fromkeys(s for s in streams if s in STREAMS))
        self.hub.send(conn, Outgoing(listening(conn.streams)))

    def _refuse(self, error: ProtocolError) -> None:
        """Before authentication an error ends the connection; after it, it is answered."""
        if self.conn.account is None:
            answer = authorization("unauthorized", error.action, error.reason)
            self._answer_and_close(answer, "not authenticated")
        else:
            self.hub.send(self.conn, Outgoing(error_message(error.action, error.reason)))

    def _answer_and_close(self, answer: Json, reason: str) -> None:
        self.hub.send(self.conn, Outgoing(answer))
        self.hub.send(self.conn, Closing(CloseCause.UNAUTHORIZED, UNAUTHORIZED_CODE, reason))

    # -- what goes out -------------------------------------------------------------------

    async def _send(self, message: Json) -> None:
        await self.websocket.send_bytes(encode(message, self.conn.codec))


def build_stream_router(sim: Sim) -> APIRouter:
    router = APIRouter()

    @router.websocket("/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        conn = sim.stream.open(codec_of(websocket))
        await Session(sim, websocket, conn).run()

    return router
