"""A WebSocket client wired straight to an ASGI app (no sockets), every wait with a deadline.

It speaks the ASGI websocket messages the server would get from uvicorn; an app that ends
the connection without a close frame (an abrupt close) is reported as code 1006, as a real
client would see it.
"""

from __future__ import annotations

import asyncio
import json
from types import TracebackType
from typing import Any, Self

import msgpack
from starlette.types import ASGIApp, Message

DEADLINE_S = 5.0
ABNORMAL = 1006  # RFC 6455: closed without a close frame


class Closed(Exception):
    """The server closed the connection: ``code`` from its close frame, or 1006."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"closed with {code} {reason!r}")
        self.code = code
        self.reason = reason


class NoMessage(AssertionError):
    """Nothing arrived before the deadline."""


class AsgiWebSocket:
    """``async with AsgiWebSocket(app) as ws``: connected and accepted, closed on exit."""

    def __init__(
        self, app: ASGIApp, *, path: str = "/stream", headers: dict[str, str] | None = None
    ) -> None:
        self._app = app
        self._path = path
        self._headers = headers or {}
        self.msgpack = self._headers.get("Content-Type") == "application/msgpack"
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.closed: Closed | None = None

    async def __aenter__(self) -> Self:
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("paper.test", 80),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
            "path": self._path,
            "raw_path": self._path.encode(),
            "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in self._headers.items()],
            "subprotocols": [],
            "state": {},
            "extensions": {},
        }
        self._task = asyncio.create_task(self._run(scope))
        await self._to_app.put({"type": "websocket.connect"})
        accepted = await self._next(DEADLINE_S)
        assert accepted["type"] == "websocket.accept", accepted
        return self

    async def _run(self, scope: dict[str, Any]) -> None:
        await self._app(scope, self._to_app.get, self._from_app.put)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self, code: int = 1000) -> None:
        """The client goes away; waits for the app to finish."""
        task = self._task
        if task is None:
            return
        if not task.done():
            await self._to_app.put({"type": "websocket.disconnect", "code": code})
            await asyncio.wait_for(task, DEADLINE_S)
        elif task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def _next(self, timeout: float) -> Message:
        """The app's next message; Closed when it closed or ended without closing."""
        if self.closed is not None:
            raise self.closed
        assert self._task is not None
        if self._from_app.empty() and not self._task.done():
            getter = asyncio.ensure_future(self._from_app.get())
            done, _ = await asyncio.wait(
                {getter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if getter in done:
                return self._check(getter.result())
            getter.cancel()
            if not done:
                raise NoMessage(f"no message within {timeout} s")
        if not self._from_app.empty():
            return self._check(self._from_app.get_nowait())
        if self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]
        self.closed = Closed(ABNORMAL, "")
        raise self.closed

    def _check(self, message: Message) -> Message:
        if message["type"] == "websocket.close":
            self.closed = Closed(message.get("code", 1000), message.get("reason") or "")
            raise self.closed
        return message

    async def receive_frame(self, timeout: float = DEADLINE_S) -> bytes:
        """The next frame's payload; fails unless it is binary, as Alpaca's paper sends."""
        message = await self._next(timeout)
        assert message["type"] == "websocket.send", message
        assert message.get("bytes") is not None, f"a text frame: {message}"
        payload: bytes = message["bytes"]
        return payload

    async def receive_text(self, timeout: float = DEADLINE_S) -> dict[str, Any]:
        """The next frame's JSON object; fails unless it is a text frame, as Binance sends."""
        message = await self._next(timeout)
        assert message["type"] == "websocket.send", message
        assert message.get("text") is not None, f"a binary frame: {message}"
        body = json.loads(message["text"])
        assert isinstance(body, dict)
        return body

    async def receive(self, timeout: float = DEADLINE_S) -> dict[str, Any]:
        payload = await self.receive_frame(timeout)
        body = msgpack.unpackb(payload, raw=False) if self.msgpack else json.loads(payload)
        assert isinstance(body, dict)
        return body

    async def expect_closed(self, timeout: float = DEADLINE_S) -> Closed:
        """Wait for the close; fails if a message comes first."""
        try:
            message = await self._next(timeout)
        except Closed as closed:
            return closed
        raise AssertionError(f"expected a close, got {message}")

    async def send_json(self, body: object, *, binary: bool = False) -> None:
        text = json.dumps(body)
        if binary:
            await self._to_app.put({"type": "websocket.receive", "bytes": text.encode()})
        else:
            await self._to_app.put({"type": "websocket.receive", "text": text})

    async def send_bytes(self, payload: bytes) -> None:
        await self._to_app.put({"type": "websocket.receive", "bytes": payload})

    async def send_text(self, text: str) -> None:
        await self._to_app.put({"type": "websocket.receive", "text": text})

    async def authenticate(self, key_id: str, secret_key: str) -> dict[str, Any]:
        message = {"action": "authenticate", "data": {"key_id": key_id, "secret_key": secret_key}}
        if self.msgpack:
            await self.send_bytes(msgpack.packb(message))
        else:
            await self.send_json(message)
        return await self.receive()

    async def listen(self, *streams: str) -> dict[str, Any]:
        message = {"action": "listen", "data": {"streams": list(streams)}}
        if self.msgpack:
            await self.send_bytes(msgpack.packb(message))
        else:
            await self.send_json(message)
        return await self.receive()

    async def event(self, timeout: float = DEADLINE_S) -> dict[str, Any]:
        """The next trade_updates message's ``data``."""
        message = await self.receive(timeout)
        assert message["stream"] == "trade_updates", message
        data: dict[str, Any] = message["data"]
        return data

    async def events_until(
        self, last: str, order_id: str | None = None, timeout: float = DEADLINE_S
    ) -> list[dict[str, Any]]:
        """Events up to and including the first ``last`` event (of ``order_id``, if given)."""
        seen: list[dict[str, Any]] = []
        while True:
            data = await self.event(timeout)
            seen.append(data)
            if data["event"] == last and order_id in (None, data["order"]["id"]):
                return seen
