"""OANDA's transaction stream, ``GET /v3/accounts/{id}/transactions/stream``: chunked HTTP,
one JSON transaction a line as the account makes them (from the connection on), and a
``HEARTBEAT`` with the ``lastTransactionID`` every 5 seconds. The stream faults apply to the
transactions (``hub.TransactionHub``); a connection the exchange ends (a disconnect fault,
``/_sim/stream/disconnect``, a reset, a client too slow to read) ends abruptly, without the
chunked body's last chunk, as a dropped TCP connection does."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from brokers.oanda.paper import errors as err
from brokers.oanda.paper.hub import TransactionConnection, TransactionHub
from brokers.oanda.paper.venue import Json, OandaAccount
from brokers.oanda.paper.wire import Stamp
from brokers.paper.faults import Faults
from brokers.paper.streaming import CloseCause, Closing, drain

logger = logging.getLogger(__name__)
HEARTBEAT_S = 5.0
Ctx = Callable[[Request, str], tuple[OandaAccount, Stamp]]


class TransactionStream(Response):
    """The streaming answer: the connection's queue written a line at a time (``drain``), a
    heartbeat queued every 5 s, until the client goes or the exchange ends it."""

    media_type = "application/octet-stream"

    def __init__(self, hub: TransactionHub, conn: TransactionConnection, account: OandaAccount,
                 now_us: Callable[[], int]) -> None:  # fmt: skip
        super().__init__(status_code=200)
        # Chunked: a body of unknown length, so no content-length.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.hub, self.conn, self.account, self.now_us = hub, conn, account, now_us

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub, conn = self.hub, self.conn
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def write(message: Json) -> None:
            line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
            await send({"type": "http.response.body", "body": line, "more_body": True})

        async def beat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT_S)
                hub.heartbeat(conn, self.account, self.now_us())

        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        tasks = [asyncio.ensure_future(job) for job in (drain(hub, conn, write), beat(), gone(),
                                                         conn.ended.wait())]  # fmt: skip
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(outcome, Exception) and not isinstance(outcome, OSError):
                    logger.error("paper exchange: OANDA stream %d failed", conn.number,
                                 exc_info=outcome)  # fmt: skip
                    conn.kill(Closing(CloseCause.ERROR))
            hub.forget(conn)
        # Ended by the exchange: return without the last chunk, so the server drops the
        # connection mid-body; the client went: nothing more to send either way.


def add_stream_route(api: APIRouter, ctx: Ctx, now_us: Callable[[], int], hub: TransactionHub,
                     faults: Faults) -> None:  # fmt: skip
    @api.get("/accounts/{account_id}/transactions/stream")
    async def stream(request: Request, account_id: str) -> Response:
        account, stamp = ctx(request, account_id)
        if faults.take_refuse_auth():
            hub.stats.refused_auth += 1
            raise err.UNAUTHORIZED
        # Listening from now: the client may act as soon as it has the headers.
        return TransactionStream(hub, hub.open(account.id, stamp), account, now_us)
