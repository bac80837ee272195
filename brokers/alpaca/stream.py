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
from typing import Any

import msgpack

from brokers.alpaca import parse
from brokers.base import Unreadable
from brokers.errors import AuthenticationFailed, BrokerUnavailable, MalformedResponse
from brokers.websocket import WebSocketStream, ws_url
from core.reports import FillReport, StreamEvent

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


class AlpacaStream(WebSocketStream):
    """One authenticated connection listening to ``trade_updates``."""

    kind = KIND

    def __init__(self, url: str, key_id: str, secret_key: str, **options: float) -> None:
        super().__init__(url, **options)
        self._key_id = key_id
        self._secret_key = secret_key

    def _subscribe(self) -> None:
        self._send({"action": "authenticate",
                    "data": {"key_id": self._key_id, "secret_key": self._secret_key}})  # fmt: skip
        answer = self._expect("authorization")
        if answer.get("status") != "authorized":
            raise AuthenticationFailed(
                f"stream {self.url}: authentication refused: {parse.excerpt(json.dumps(answer))}",
                broker=KIND,
            )
        self._send({"action": "listen", "data": {"streams": ["trade_updates"]}})
        listening = self._expect("listening")
        if "trade_updates" not in (listening.get("streams") or []):
            raise BrokerUnavailable(f"stream {self.url}: not listening to trade_updates",
                                    broker=KIND)  # fmt: skip

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

    def _expect(self, stream: str) -> dict[str, Any]:
        """The next control message of ``stream`` (within the open timeout)."""
        while True:
            frame = self._receive()
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
    return ws_url(base_url, "/stream")
