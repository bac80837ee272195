"""Tradier's account events stream (``/v1/accounts/events``, marked Beta by Tradier): a
session made over REST with the access token (``POST /v1/accounts/events/session``, to be
connected within 5 minutes, one per token at a time), then ``{"events": ["order"],
"sessionid": ...}`` on the WebSocket. Tradier acknowledges nothing; it sends an ``order``
event per change to one of the token's accounts' orders and a heartbeat (one a minute in
the docs' sample). A new session ends the token's last one, so one connection carries
every account of the token that is tracked: each event is told by its ``account``.

An event is the order as it stands, with no symbol, side or quantity and no execution id:
a report that does not state the order's terms, and no fill. The worker derives the fill
from the cumulative ``exec_quantity`` and ``avg_fill_price`` (Tradier has no fill
listing), as it does from a REST report, so the two never record one execution twice.
Events have no sequence number: one lost is found out by the catch-up on reconnect and the
monitors' checks. A refused session comes as ``{"error": ...}`` [U: the market stream's
shape]: the connection is dropped and the next one makes a new session.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

import httpx

from brokers.base import Unreadable
from brokers.errors import AuthenticationFailed, BrokerUnavailable, MalformedResponse
from brokers.tradier import parse
from brokers.tradier.http import KIND, BearerAuth
from brokers.values import ParseError, as_object, excerpt, loads, text
from brokers.websocket import WebSocketStream, ws_url
from core.reports import StreamEvent

logger = logging.getLogger(__name__)
PATH = "/v1/accounts/events"
SESSION_PATH = PATH + "/session"
STREAMS = {
    "https://api.tradier.com": "wss://ws.tradier.com",
    "https://sandbox.tradier.com": "wss://sandbox-ws.tradier.com",
}
SESSION_TIMEOUT_S = 10.0


def _host(base_url: str) -> str:
    return base_url.rstrip("/").removesuffix("/v1")


def stream_url(base_url: str) -> str:
    """Tradier's stream host for its REST host; on any other host, the paper exchange's."""
    host = _host(base_url)
    return STREAMS[host] + PATH if host in STREAMS else ws_url(host, PATH)


class TradierStream(WebSocketStream):
    """One connection subscribed to the ``order`` events of the token's accounts."""

    kind = KIND

    def __init__(self, url: str, base_url: str, access_token: str, *,
                 accounts: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None,
                 **options: float) -> None:  # fmt: skip
        super().__init__(url, **options)
        # Tradier account number -> our account name, of the accounts this connection
        # reads; the token's other accounts' events come too, and are skipped. None: all.
        self._accounts = None if accounts is None else dict(accounts)
        self._session_url = _host(base_url) + SESSION_PATH
        self._auth = BearerAuth(access_token)
        self._transport = transport  # tests' fake; None: the network

    def _subscribe(self) -> None:
        session_id = self._new_session()
        self._send({"events": ["order"], "sessionid": session_id, "excludeAccounts": []})

    def _new_session(self) -> str:
        """A session id from ``POST /v1/accounts/events/session`` (the token never logged)."""
        where = f"POST {self._session_url}"
        try:
            with httpx.Client(timeout=SESSION_TIMEOUT_S, transport=self._transport) as client:
                response = client.post(self._session_url, auth=self._auth)
        except httpx.HTTPError as exc:
            raise BrokerUnavailable(f"{where}: {type(exc).__name__}: {exc}", broker=KIND) from exc
        status = response.status_code
        if status == 401:
            raise AuthenticationFailed(f"{where}: {parse.message(response.content, status)}",
                                       broker=KIND, status_code=status)  # fmt: skip
        if status != 200:
            raise BrokerUnavailable(f"{where}: {parse.message(response.content, status)}",
                                    broker=KIND, status_code=status)  # fmt: skip
        try:
            stream = as_object(as_object(loads(response.content), "body").get("stream"), "stream")
            return text(stream, "sessionid")
        except ParseError as exc:
            raise MalformedResponse(f"{where}: {exc}: {excerpt(response.content)}",
                                    broker=KIND, status_code=status) from None  # fmt: skip

    def _read(self, frame: bytes | str) -> Iterator[StreamEvent | Unreadable]:
        body = frame.encode() if isinstance(frame, str) else frame
        try:
            message = as_object(loads(body), "message")
        except ParseError as exc:
            yield Unreadable(str(exc), excerpt(body))
            return
        if "error" in message:
            raise BrokerUnavailable(f"stream {self.url}: refused: {excerpt(str(message['error']))}",
                                    broker=KIND)  # fmt: skip
        kind = message.get("event")
        if kind != "order":
            if kind != "heartbeat":
                logger.info("stream %s: %r event ignored", self.url, kind)
            return
        number, ours = message.get("account"), self._accounts
        if ours is not None and number is not None and number not in ours:
            return  # an order of an account of the token not tracked here
        if ours is not None and number is None and len(ours) > 1:
            yield Unreadable("an order event names no account, on a session of several",
                             excerpt(body))  # fmt: skip
            return
        try:
            report = parse.parse_event_order(message)
        except ParseError as exc:
            yield Unreadable(f"an order event: {exc}", excerpt(body))
            return
        # Of several accounts, told by name; of one (or an event naming none), its own.
        account = ours[str(number)] if ours is not None and len(ours) > 1 else None
        yield StreamEvent("order", report, report.updated_at or report.created_at,
                          account=account)  # fmt: skip
