"""Coinbase Advanced Trade's ``user`` channel (with ``heartbeats``, which keeps it open): a
snapshot of the open orders, then an update per change, each order as it stands.

The channel has no per-fill id. Its events carry no fill: an order's cumulative quantity
rising past what is recorded is a fill gap, which the REST fill listing (deduplicated on
``entry_id``) closes at once, so a fill is never recorded twice under two ids. A gap in
``sequence_num`` (one counter per connection, across channels) means messages were lost:
it is reported as unreadable, so the worker reconnects and catches up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from brokers.base import Unreadable
from brokers.coinbase import parse
from brokers.coinbase.auth import build_jwt, load_private_key
from brokers.coinbase.values import ParseError, excerpt, loads, obj
from brokers.errors import AuthenticationFailed, BrokerUnavailable, MalformedResponse
from brokers.websocket import WebSocketStream, ws_url
from core.reports import StreamEvent

KIND = "coinbase"
PRODUCTION_API = "https://api.coinbase.com"
PRODUCTION_STREAM = "wss://advanced-trade-ws-user.coinbase.com"
PAPER_PATH = "/ws/user"  # where the paper exchange serves the channel on its own host
CHANNELS = ("user", "heartbeats")


def stream_url(base_url: str) -> str:
    """Coinbase's user stream for its REST host; on any other host, the paper exchange's."""
    if base_url.rstrip("/") == PRODUCTION_API:
        return PRODUCTION_STREAM
    return ws_url(base_url, PAPER_PATH)


class CoinbaseStream(WebSocketStream):
    """One connection subscribed to ``user`` and ``heartbeats`` with the key's JWT."""

    kind = KIND

    def __init__(self, url: str, key_name: str, private_key_pem: str, *,
                 clock_s: Callable[[], int] = lambda: int(time.time()),
                 **options: float) -> None:  # fmt: skip
        super().__init__(url, **options)
        self._key_name = key_name
        self._key = load_private_key(private_key_pem)
        self._clock_s = clock_s
        self._sequence: int | None = None
        self._early: list[bytes | str] = []  # frames that came before the acknowledgement

    def _subscribe(self) -> None:
        self._sequence, self._early = None, []
        token = build_jwt(self._key_name, self._key, None, self._clock_s())
        for channel in CHANNELS:
            self._send({"type": "subscribe", "channel": channel, "jwt": token})
        while True:
            frame = self._receive()
            try:
                message = obj(loads(_bytes(frame)), "message")
            except ParseError as exc:
                raise MalformedResponse(f"stream {self.url}: {exc}", broker=KIND) from None
            if message.get("type") == "error":
                raise _refusal(self.url, message)
            self._early.append(frame)  # read (and counted) once subscribed, in order
            if message.get("channel") == "subscriptions" and "user" in _subscribed(message):
                return

    def events(self, idle_s: float) -> Iterator[StreamEvent | Unreadable | None]:
        while self._early:
            yield from self._read(self._early.pop(0))
        yield from super().events(idle_s)

    def _read(self, frame: bytes | str) -> Iterator[StreamEvent | Unreadable]:
        body = _bytes(frame)
        try:
            message = obj(loads(body), "message")
        except ParseError as exc:
            yield Unreadable(str(exc), excerpt(body))
            return
        if message.get("type") == "error":
            raise _refusal(self.url, message)
        lost = self._lost(message.get("sequence_num"))
        if lost:
            yield Unreadable(lost, excerpt(body))
        if message.get("channel") != "user":
            return  # heartbeats and acknowledgements
        try:
            events, malformed = parse.parse_user_message(body)
        except ParseError as exc:
            yield Unreadable(str(exc), excerpt(body))
            return
        yield from events
        for item in malformed:
            yield Unreadable(f"an order of a user message: {item.reason}", excerpt(body))

    def _lost(self, sequence: object) -> str | None:
        """What a jump in the connection's message counter says was lost, if anything."""
        if not isinstance(sequence, int) or isinstance(sequence, bool):
            return None  # messages without a counter are not counted
        last = self._sequence
        if last is not None and sequence <= last:
            return None  # a duplicate, or one that came late: nothing lost from here on
        self._sequence = sequence
        if last is None or sequence == last + 1:
            return None
        return f"messages lost: sequence_num {sequence} after {last}"


def _bytes(frame: bytes | str) -> bytes:
    return frame.encode() if isinstance(frame, str) else frame


def _subscribed(message: dict[str, object]) -> set[str]:
    """The channels a ``subscriptions`` message names."""
    found: set[str] = set()
    events = message.get("events")
    for event in events if isinstance(events, list) else []:
        channels = event.get("subscriptions") if isinstance(event, dict) else None
        if isinstance(channels, dict):
            found.update(str(name) for name in channels)
    return found


def _refusal(url: str, message: dict[str, object]) -> AuthenticationFailed | BrokerUnavailable:
    """Coinbase's ``{"type": "error", "message": ...}``: a refused key, or anything else."""
    said = str(message.get("message", ""))
    if "auth" in said.lower() or "jwt" in said.lower():
        return AuthenticationFailed(f"stream {url}: refused: {said}", broker=KIND)
    return BrokerUnavailable(f"stream {url}: error: {excerpt(said)}", broker=KIND)
