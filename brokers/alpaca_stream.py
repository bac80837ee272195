"""Alpaca's ``trade_updates`` stream: its frames as normalized events, and one connection
(authenticate, listen, receive) over the ``websockets`` sync client.

Frames come as text or binary JSON (Alpaca's paper endpoint sends binary) or MessagePack;
each is read without floats. An event's ``price`` and ``qty`` are taken as the execution's
own and its order's ``filled_qty`` as the cumulative quantity with it; whether Alpaca's
``qty`` is per execution is not documented, so the consumer records a streamed execution
only when it adds up with the fills recorded before it (else the REST listing decides).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import msgpack
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from brokers import alpaca_parse as parse
from brokers.base import FillReport, StreamEvent
from brokers.errors import AuthenticationFailed, BrokerUnavailable, MalformedResponse

KIND = "alpaca"
FILL_EVENTS = frozenset({"fill", "partial_fill"})


def decode_frame(frame: bytes | str) -> dict[str, object]:
    """One frame as a message object: JSON (text or bytes) or a MessagePack map."""
    if isinstance(frame, str):
        raw: object = parse.loads(frame.encode())
    else:
        try:
            raw = parse.loads(frame)
        except parse.ParseError:
            try:
                raw = msgpack.unpackb(frame, raw=False, strict_map_key=False)
            except (ValueError, msgpack.UnpackException) as exc:
                raise parse.ParseError(f"frame is neither JSON nor MessagePack: {exc}") from None
    return parse.as_object(raw, "message")


def parse_event(data: dict[str, object]) -> StreamEvent:
    """A ``trade_updates`` message's ``data`` as a StreamEvent (ParseError if unreadable)."""
    kind = data.get("event")
    if not isinstance(kind, str) or not kind:
        raise parse.ParseError(f"event is {kind!r}, expected a non-empty string")
    report = parse.parse_order(data.get("order"))
    at = parse.to_datetime(data.get("timestamp"), "timestamp") if data.get("timestamp") else (
        report.updated_at or report.created_at)  # fmt: skip
    event_id = data.get("execution_id")
    fill = None
    if kind in FILL_EVENTS:
        if not isinstance(event_id, str) or not event_id:
            raise parse.ParseError(f"{kind} event without an execution_id")
        quantity = parse.to_decimal(data.get("qty"), "qty")
        price = parse.to_decimal(data.get("price"), "price")
        if quantity <= 0 or price <= 0:
            raise parse.ParseError(f"{kind} event with qty {quantity} and price {price}")
        fill = FillReport(
            broker_fill_id=event_id, broker_order_id=report.broker_order_id,
            symbol=report.symbol, side=report.side, quantity=quantity, price=price,
            filled_at=at, client_order_id=report.client_order_id,
            cum_quantity=report.filled_quantity,
        )  # fmt: skip
    return StreamEvent(kind, report, at, event_id if isinstance(event_id, str) else None, fill)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A frame or event that could not be read: kept so it is never silently lost."""

    reason: str
    excerpt: str


class AlpacaStream:
    """One authenticated connection listening to ``trade_updates``; ``events`` yields what
    arrives, and None after ``idle_s`` of silence so the caller can look around."""

    def __init__(self, url: str, key_id: str, secret_key: str, *, open_timeout_s: float = 10.0,
                 ping_interval_s: float = 5.0, ping_timeout_s: float = 10.0) -> None:  # fmt: skip
        self.url = url
        self._key_id = key_id
        self._secret_key = secret_key
        self._open_timeout_s = open_timeout_s
        self._ping = (ping_interval_s, ping_timeout_s)
        self._ws: ClientConnection | None = None

    def __repr__(self) -> str:
        return f"AlpacaStream({self.url!r})"  # never the credentials

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def open(self) -> None:
        """Connect, authenticate and listen; AuthenticationFailed, BrokerUnavailable."""
        try:
            self._ws = connect(self.url, open_timeout=self._open_timeout_s,
                               ping_interval=self._ping[0], ping_timeout=self._ping[1],
                               max_size=2**22)  # fmt: skip
            self._send(
                {
                    "action": "authenticate",
                    "data": {"key_id": self._key_id, "secret_key": self._secret_key},
                }
            )
            answer = self._expect("authorization")
            if answer.get("status") != "authorized":
                raise AuthenticationFailed(
                    f"stream {self.url}: authentication refused: "
                    f"{parse.excerpt(json.dumps(answer))}",
                    broker=KIND,
                )
            self._send({"action": "listen", "data": {"streams": ["trade_updates"]}})
            listening = self._expect("listening")
            if "trade_updates" not in (listening.get("streams") or []):
                raise BrokerUnavailable(f"stream {self.url}: not listening to trade_updates",
                                        broker=KIND)  # fmt: skip
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
            self.close()
            raise BrokerUnavailable(f"stream {self.url}: {type(exc).__name__}: {exc}",
                                    broker=KIND) from exc  # fmt: skip
        except BaseException:
            self.close()
            raise

    def events(self, idle_s: float) -> Iterator[StreamEvent | Unreadable | None]:
        """What arrives, in order; None after ``idle_s`` without a frame. Ends with
        BrokerUnavailable when the connection is lost."""
        ws = self._connected()
        while True:
            try:
                frame = ws.recv(timeout=idle_s)
            except TimeoutError:
                yield None
                continue
            except ConnectionClosed as exc:
                raise BrokerUnavailable(f"stream {self.url}: connection lost: {exc}",
                                        broker=KIND) from exc  # fmt: skip
            yield from self._read(frame)

    def close(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            finally:
                self._ws = None

    def _read(self, frame: bytes | str) -> Iterator[StreamEvent | Unreadable]:
        try:
            message = decode_frame(frame)
        except parse.ParseError as exc:
            yield Unreadable(str(exc), parse.excerpt(frame))
            return
        if message.get("stream") != "trade_updates":
            return  # authorization and listening acknowledgements, and the like
        try:
            yield parse_event(parse.as_object(message.get("data"), "data"))
        except parse.ParseError as exc:
            yield Unreadable(str(exc), parse.excerpt(json.dumps(message, default=str)))

    def _connected(self) -> ClientConnection:
        if self._ws is None:
            raise BrokerUnavailable(f"stream {self.url}: not connected", broker=KIND)
        return self._ws

    def _send(self, message: dict[str, Any]) -> None:
        self._connected().send(json.dumps(message))

    def _expect(self, stream: str) -> dict[str, Any]:
        """The next control message of ``stream`` (within the open timeout)."""
        while True:
            frame = self._connected().recv(timeout=self._open_timeout_s)
            try:
                message = decode_frame(frame)
            except parse.ParseError as exc:
                raise MalformedResponse(f"stream {self.url}: {exc}", broker=KIND) from None
            if message.get("stream") == stream:
                data = message.get("data")
                return data if isinstance(data, dict) else {}
            if message.get("stream") == "trade_updates":
                continue  # an update before the acknowledgement: the catch-up covers it


def stream_url(base_url: str) -> str:
    """The stream of a Trading API base URL: same host, ``/stream``, over ws(s)."""
    if base_url.startswith("https://"):
        return "wss://" + base_url.removeprefix("https://").rstrip("/") + "/stream"
    if base_url.startswith("http://"):
        return "ws://" + base_url.removeprefix("http://").rstrip("/") + "/stream"
    raise ValueError(f"not an http(s) URL: {base_url!r}")
