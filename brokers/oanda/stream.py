"""OANDA v20's transaction stream, ``GET /v3/accounts/{id}/transactions/stream``: chunked
HTTP, one JSON transaction a line as the account makes them, and a ``HEARTBEAT`` with the
account's ``lastTransactionID`` every 5 seconds, over ``httpx`` with the bearer token.

Transaction ids are one counter per account and the stream carries every transaction, so
a jump in ids, or a heartbeat naming an id not read, is news lost: it is reported as
unreadable, and the worker reconnects and catches up by REST. Where to count from is the
account's last id read by REST right after the stream answers: what came before is the
catch-up's. A line is read by a thread of its own, so ``events`` can wait ``idle_s``; no
line (not even a heartbeat) for ``silence_s`` is a dead connection.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, Self
from urllib.parse import quote

import httpx

from brokers.base import OrderStream, Unreadable
from brokers.errors import (
    AuthenticationFailed,
    BrokerUnavailable,
    MalformedResponse,
    OrderNotFound,
)
from brokers.oanda import parse
from brokers.oanda.adapter import OandaBroker
from brokers.oanda.events import OrderLookup, Orders
from brokers.oanda.http import KIND, BearerAuth
from brokers.values import ParseError, as_object, excerpt, loads
from core.reports import StreamEvent

PRODUCTION = {
    "https://api-fxtrade.oanda.com": "https://stream-fxtrade.oanda.com",
    "https://api-fxpractice.oanda.com": "https://stream-fxpractice.oanda.com",
}
SILENCE_S = 15.0  # three heartbeats missed
CLOSE_WAIT_S = 2.0


def stream_url(base_url: str) -> str:
    """OANDA's stream host for its REST host; any other host (the paper exchange) serves
    the stream itself."""
    base = base_url.rstrip("/")
    return PRODUCTION.get(base, base)


class AccountReader(OrderLookup, Protocol):
    """What the stream asks by REST (``OandaBroker``): where the account's transactions
    stand, the home currency its fees are in, an order it did not see made."""

    def last_transaction_id(self) -> int: ...

    def home_currency(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Ended:
    reason: str


class OandaStream(OrderStream):
    """One connection to an account's transaction stream at ``url`` (the stream host)."""

    def __init__(self, url: str, account_id: str, token: str, rest: AccountReader, *,
                 open_timeout_s: float = 10.0, silence_s: float = SILENCE_S,
                 transport: httpx.BaseTransport | None = None) -> None:  # fmt: skip
        if not account_id or not token:
            raise ValueError("account_id and token must be non-empty")
        self.url = f"{url.rstrip('/')}/v3/accounts/{quote(account_id, safe='')}/transactions/stream"
        self._auth = BearerAuth(token)
        self._rest = rest
        self._timeout = httpx.Timeout(open_timeout_s, read=silence_s)
        self._transport = transport
        self._client: httpx.Client | None = None
        self._response: httpx.Response | None = None
        self._reader: threading.Thread | None = None
        self._lines: queue.Queue[str | _Ended] = queue.Queue()
        self._start = self._last = 0
        self._orders: Orders | None = None
        self._owned: OandaBroker | None = None

    @classmethod
    def from_url(cls, base_url: str, *, account_id: str, token: str) -> Self:
        """A stream of the account at OANDA's REST host ``base_url``, reading by REST through
        an adapter of its own, closed with it (a closed stream is not opened again)."""
        # One quick try: the stream's loop waits on it (its lease too), and a failed look-up
        # only costs a reconnect, whose catch-up reads the same.
        rest = OandaBroker.from_url(base_url, account_id=account_id, token=token,
                                    timeout_s=3.0, max_attempts=1)  # fmt: skip
        stream = cls(stream_url(base_url), account_id, token, rest)
        stream._owned = rest
        return stream

    def __repr__(self) -> str:
        return f"OandaStream({self.url!r})"  # never the token

    def open(self) -> None:
        self._disconnect()
        client = self._client = httpx.Client(timeout=self._timeout, transport=self._transport)
        try:
            headers = {"Accept-Datetime-Format": "RFC3339"}
            request = client.build_request("GET", self.url, headers=headers)
            response = self._response = client.send(request, auth=self._auth, stream=True)
            if response.status_code != 200:
                raise self._refusal(response)
            # Listening now: what the account did before is for the REST catch-up.
            self._start = self._last = self._rest.last_transaction_id()
            self._orders = Orders(self._rest, self._rest.home_currency())
        except httpx.HTTPError as exc:
            self._disconnect()
            raise BrokerUnavailable(f"stream {self.url}: {type(exc).__name__}: {exc}",
                                    broker=KIND) from exc  # fmt: skip
        except BaseException:
            self._disconnect()
            raise
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._pump, args=(response, self._lines),
                                        name="oanda-stream", daemon=True)  # fmt: skip
        self._reader.start()

    def _refusal(self, response: httpx.Response) -> AuthenticationFailed | BrokerUnavailable:
        status = response.status_code
        message = parse.error_message(response.read(), status)
        if status in (401, 403):
            return AuthenticationFailed(f"stream {self.url}: refused: {message}", broker=KIND,
                                        status_code=status)  # fmt: skip
        return BrokerUnavailable(f"stream {self.url}: HTTP {status}: {message}", broker=KIND,
                                 status_code=status)  # fmt: skip

    def _pump(self, response: httpx.Response, lines: queue.Queue[str | _Ended]) -> None:
        """The reader thread: each line as it comes, then why the connection ended."""
        try:
            for line in response.iter_lines():
                if line.strip():
                    lines.put(line)
            lines.put(_Ended("the server ended the stream"))
        except httpx.ReadTimeout:
            lines.put(_Ended(f"no line (not even a heartbeat) for {self._timeout.read} s"))
        except Exception as exc:  # the connection failed or was closed: the reason is told
            lines.put(_Ended(f"{type(exc).__name__}: {exc}"))

    def events(self, idle_s: float) -> Iterator[StreamEvent | Unreadable | None]:
        if self._reader is None:
            raise BrokerUnavailable(f"stream {self.url}: not connected", broker=KIND)
        lines = self._lines
        while True:
            try:
                item = lines.get(timeout=idle_s)
            except queue.Empty:
                yield None
                continue
            if isinstance(item, _Ended):
                raise BrokerUnavailable(f"stream {self.url}: connection lost: {item.reason}",
                                        broker=KIND)  # fmt: skip
            yield from self._read(item)

    def _read(self, line: str) -> Iterator[StreamEvent | Unreadable]:
        try:
            data = as_object(loads(line), "line")
        except ParseError as exc:
            yield Unreadable(str(exc), excerpt(line))
            return
        if data.get("type") == "HEARTBEAT":
            last = data.get("lastTransactionID")
            if not isinstance(last, str) or not last.isdigit():
                yield Unreadable(f"a heartbeat's lastTransactionID is {last!r}", excerpt(line))
            elif int(last) > self._last:
                yield self._lost(int(last), f"the heartbeat names {last}", line)
            return
        tx_id = parse.transaction_id(data)
        if tx_id is None:
            yield Unreadable("a transaction without a readable id", excerpt(line))
            return
        if tx_id <= self._start:
            return  # made before the stream listened: the catch-up reads it
        if tx_id > self._last + 1:
            yield self._lost(tx_id - 1, f"transaction {tx_id} came", line)
        late = tx_id <= self._last
        self._last = max(self._last, tx_id)
        try:
            event = self._known().read(data, late=late)
        except ParseError as exc:
            yield Unreadable(str(exc), excerpt(line))
            return
        except (OrderNotFound, MalformedResponse) as exc:  # the order's look-up
            yield Unreadable(f"transaction {tx_id}: its order: {exc}", excerpt(line))
            return
        if event is not None:
            yield event

    def _lost(self, through: int, why: str, line: str) -> Unreadable:
        """Transactions after the last read, through ``through``, never came."""
        lost = Unreadable(f"transactions lost: {self._last + 1}..{through} ({why} after "
                          f"{self._last})", excerpt(line))  # fmt: skip
        self._last = through
        self._known().forget()
        return lost

    def _known(self) -> Orders:
        if self._orders is None:
            raise BrokerUnavailable(f"stream {self.url}: not connected", broker=KIND)
        return self._orders

    def close(self) -> None:
        self._disconnect()
        if self._owned is not None:
            self._owned.close()

    def _disconnect(self) -> None:
        response, client, reader = self._response, self._client, self._reader
        self._response = self._client = self._reader = None
        if response is not None:
            _shut(response)  # wakes the reader thread from its blocking read
        if reader is not None:
            reader.join(CLOSE_WAIT_S)
        if response is not None:
            with contextlib.suppress(httpx.HTTPError, RuntimeError, OSError):
                response.close()
        if client is not None:
            client.close()


def _shut(response: httpx.Response) -> None:
    """Shut the response's socket down, where there is one (not under a mock transport)."""
    stream = response.extensions.get("network_stream")
    sock = None if stream is None else stream.get_extra_info("socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
