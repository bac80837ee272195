"""Binance Spot's user data stream over the WebSocket API (``/ws-api/v3``): one connection,
subscribed with ``userDataStream.subscribe.signature`` (HMAC-SHA256 over the sorted
parameters), its ``executionReport`` events as normalized events, over the ``websockets``
sync client (which answers the server's pings).

A streamed fill carries the REST trade's id (``SYMBOL:tradeId``), so a fill seen on both is
recorded once, and its commission is sorted as the REST path sorts it (``parse.sort_fee``),
with the symbol's assets as exchangeInfo states them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from brokers.base import Unreadable
from brokers.binance import filters, parse
from brokers.binance.refusals import KIND
from brokers.binance.signing import epoch_ms, sign
from brokers.errors import AuthenticationFailed, BrokerUnavailable, MalformedResponse
from brokers.websocket import WebSocketStream, ws_url
from core.reports import StreamEvent

SUBSCRIBE = "userDataStream.subscribe.signature"
AUTH_CODES = frozenset({-1002, -1022, -2014, -2015})
SymbolAssets = Callable[[str], tuple[str, str]]


class AssetsUnknown(Exception):
    """A symbol's (base, quote) assets could not be learned."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BinanceStream(WebSocketStream):
    """One WebSocket API connection holding one user data stream subscription."""

    kind = KIND

    def __init__(
        self, url: str, api_key: str, secret_key: str, *, symbol_assets: SymbolAssets,
        recv_window_ms: int = 5000, now: Callable[[], datetime] = _utc_now, **options: float,
    ) -> None:  # fmt: skip
        if not api_key or not secret_key:
            raise ValueError("api_key and secret_key must be non-empty")
        super().__init__(url, **options)
        self._api_key = api_key
        self._secret_key = secret_key
        self._symbol_assets = symbol_assets
        self._recv_window_ms = recv_window_ms
        self._now = now
        self.subscription_id: int | None = None

    def subscribe_request(self, request_id: str) -> dict[str, Any]:
        """The signed ``userDataStream.subscribe.signature`` request."""
        params: dict[str, Any] = {
            "apiKey": self._api_key,
            "recvWindow": self._recv_window_ms,
            "timestamp": epoch_ms(self._now()),
        }
        payload = urlencode(sorted(params.items()))  # sorted by name (web-socket-api.md)
        params["signature"] = sign(self._secret_key, payload)
        return {"id": request_id, "method": SUBSCRIBE, "params": params}

    def _subscribe(self) -> None:
        request_id = uuid.uuid4().hex
        self._send(self.subscribe_request(request_id))
        self.subscription_id = self._subscribed(self._answer(request_id))

    def _read(self, frame: bytes | str) -> Iterator[StreamEvent | Unreadable]:
        item = self.read(frame)
        if item is not None:
            yield item

    def read(self, frame: bytes | str) -> StreamEvent | Unreadable | None:
        """One frame: an order event, Unreadable, or None for what is not about orders.
        The subscription's end raises BrokerUnavailable (reconnect and catch up)."""
        raw = frame.encode() if isinstance(frame, str) else frame
        try:
            message = parse.as_dict(parse.loads(raw), "message")
            if "event" not in message:
                return None  # an answer to a request of ours: none is outstanding
            event = parse.as_dict(message["event"], "event")
            kind = event.get("e")
            if message.get("subscriptionId") != self.subscription_id:
                raise parse.ParseError(f"event {kind!r} of subscription "
                                       f"{message.get('subscriptionId')!r}, ours is "
                                       f"{self.subscription_id!r}")  # fmt: skip
            if kind == "eventStreamTerminated":
                ended = f"stream {self.url}: subscription {self.subscription_id} terminated"
                raise BrokerUnavailable(ended, broker=KIND)
            if kind != "executionReport":
                # Balances (outboundAccountPosition, balanceUpdate, externalLockUpdate: the
                # REST positions cover them), order lists (listStatus: their orders have
                # executionReports of their own), and events Binance may add.
                return None
            return self._sorted(parse.parse_execution_report(event))
        except (parse.ParseError, AssetsUnknown) as exc:
            return Unreadable(str(exc), parse.excerpt(raw))

    def _sorted(self, event: StreamEvent) -> StreamEvent:
        """Its fill's commission as money, a quantity of the base, or a third asset."""
        if event.fill is None:
            return event
        base, quote = self._symbol_assets(event.fill.symbol)
        return replace(event, fill=parse.sort_fee(event.fill, base, quote))

    def _answer(self, request_id: str) -> dict[str, Any]:
        """The answer to our request (within the open timeout); other frames are passed."""
        while True:
            frame = self._receive()
            raw = frame.encode() if isinstance(frame, str) else frame
            try:
                message = parse.loads(raw)
            except parse.ParseError as exc:
                raise MalformedResponse(f"stream {self.url}: {exc}", broker=KIND) from None
            if isinstance(message, dict) and message.get("id") == request_id:
                return message

    def _subscribed(self, answer: dict[str, Any]) -> int:
        """The subscription id of a success; a refusal as the error it is."""
        status, result = answer.get("status"), answer.get("result")
        if status == 200 and isinstance(result, dict):
            sid = result.get("subscriptionId")
            if isinstance(sid, int) and not isinstance(sid, bool):
                return sid
        error = answer.get("error")
        code, msg = (
            (error.get("code"), error.get("msg")) if isinstance(error, dict) else (None, None)
        )
        said = f"stream {self.url}: {SUBSCRIBE} refused: Binance {code}: {msg}"
        http = status if isinstance(status, int) else None
        if code in AUTH_CODES or status == 401:
            raise AuthenticationFailed(said, broker=KIND, status_code=http)
        if status == 200:
            raise MalformedResponse(f"stream {self.url}: {SUBSCRIBE} answered without a "
                                    f"subscriptionId: {parse.excerpt(json.dumps(answer).encode())}",
                                    broker=KIND)  # fmt: skip
        raise BrokerUnavailable(said, broker=KIND, status_code=http)


def stream_url(base_url: str) -> str:
    """The WebSocket API of a REST base URL: Binance's own for api.binance.com, else the
    same host (the paper exchange) at ``/ws-api/v3`` over ws(s)."""
    if base_url.rstrip("/") == "https://api.binance.com":
        return "wss://ws-api.binance.com:443/ws-api/v3"
    return ws_url(base_url, "/ws-api/v3")


class ExchangeInfoAssets:
    """A symbol's (baseAsset, quoteAsset) from ``GET /api/v3/exchangeInfo?symbol=``, asked
    once per symbol (a public endpoint: no key, no signature)."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:  # fmt: skip
        self.base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._transport = transport
        self._known: dict[str, tuple[str, str]] = {}

    def __call__(self, symbol: str) -> tuple[str, str]:
        found = self._known.get(symbol)
        if found is None:
            found = self._known[symbol] = self._ask(symbol)
        return found

    def _ask(self, symbol: str) -> tuple[str, str]:
        url = f"{self.base_url}/api/v3/exchangeInfo"
        try:
            with httpx.Client(timeout=self._timeout_s, transport=self._transport) as client:
                answer = client.get(url, params={"symbol": symbol})
        except httpx.HTTPError as exc:
            raise BrokerUnavailable(f"GET {url}?symbol={symbol}: {type(exc).__name__}: {exc}",
                                    broker=KIND) from exc  # fmt: skip
        if answer.status_code == 429 or answer.status_code == 418 or answer.status_code >= 500:
            raise BrokerUnavailable(f"GET {url}?symbol={symbol}: HTTP {answer.status_code}",
                                    broker=KIND, status_code=answer.status_code)  # fmt: skip
        try:
            if answer.status_code != 200:
                code, msg = parse.error_body(answer.content)
                raise parse.ParseError(f"HTTP {answer.status_code}, Binance {code}: {msg}")
            rules = filters.parse_symbol_rules(parse.loads(answer.content), symbol)
        except parse.ParseError as exc:
            raise AssetsUnknown(f"symbol {symbol}: assets unknown: {exc}") from None
        return rules.base_asset, rules.quote_asset
