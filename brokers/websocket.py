"""What every venue's order stream does the same way over the ``websockets`` sync client:
connect with a timeout and keepalive pings, subscribe (the venue's part), then read frames
until the connection ends; a lost connection is ``BrokerUnavailable``, so the worker
reconnects and catches up by REST."""

from __future__ import annotations

import abc
import json
from collections.abc import Iterator
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from brokers.base import OrderStream, Unreadable
from brokers.errors import BrokerUnavailable
from core.reports import StreamEvent

MAX_FRAME_BYTES = 2**22


class WebSocketStream(OrderStream):
    """One connection to ``url``; a venue subclass subscribes and reads its frames."""

    kind: str  # the broker kind its errors name

    def __init__(self, url: str, *, open_timeout_s: float = 10.0, ping_interval_s: float = 5.0,
                 ping_timeout_s: float = 10.0) -> None:  # fmt: skip
        self.url = url
        self._open_timeout_s = open_timeout_s
        self._ping = (ping_interval_s, ping_timeout_s)
        self._ws: ClientConnection | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"  # never the credentials

    @abc.abstractmethod
    def _subscribe(self) -> None:
        """Authenticate and subscribe on the open connection (raise what refuses it)."""

    @abc.abstractmethod
    def _read(self, frame: bytes | str) -> Iterator[StreamEvent | Unreadable]:
        """What one frame says: events, or what could not be read; control frames, nothing."""

    def open(self) -> None:
        try:
            # Entered as a context manager, as websockets wants it (closed in ``close``).
            self._ws = connect(self.url, open_timeout=self._open_timeout_s,
                               ping_interval=self._ping[0], ping_timeout=self._ping[1],
                               max_size=MAX_FRAME_BYTES).__enter__()  # fmt: skip
            self._subscribe()
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
            self.close()
            raise BrokerUnavailable(f"stream {self.url}: {type(exc).__name__}: {exc}",
                                    broker=self.kind) from exc  # fmt: skip
        except BaseException:
            self.close()
            raise

    def events(self, idle_s: float) -> Iterator[StreamEvent | Unreadable | None]:
        ws = self._connected()
        while True:
            try:
                frame = ws.recv(timeout=idle_s)
            except TimeoutError:
                yield None
                continue
            except ConnectionClosed as exc:
                raise BrokerUnavailable(f"stream {self.url}: connection lost: {exc}",
                                        broker=self.kind) from exc  # fmt: skip
            yield from self._read(frame)

    def close(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            finally:
                self._ws = None

    def _connected(self) -> ClientConnection:
        if self._ws is None:
            raise BrokerUnavailable(f"stream {self.url}: not connected", broker=self.kind)
        return self._ws

    def _send(self, message: dict[str, Any]) -> None:
        self._connected().send(json.dumps(message))

    def _receive(self) -> bytes | str:
        """The next frame while subscribing (within the open timeout)."""
        return self._connected().recv(timeout=self._open_timeout_s)


def ws_url(base_url: str, path: str) -> str:
    """``path`` on the host of an http(s) base URL, over ws(s)."""
    for scheme, ws_scheme in (("https://", "wss://"), ("http://", "ws://")):
        if base_url.startswith(scheme):
            return ws_scheme + base_url.removeprefix(scheme).rstrip("/") + path
    raise ValueError(f"not an http(s) URL: {base_url!r}")
