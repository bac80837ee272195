"""OANDA's transaction stream, ``GET /v3/accounts/{id}/transactions/stream``: chunked HTTP,
one JSON transaction a line as the account makes them (from the connection on), and a
``HEARTBEAT`` with the ``lastTransactionID`` every 5 seconds. The stream faults do not apply
to it yet."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from brokers.oanda.paper.venue import OandaAccount
from brokers.oanda.paper.wire import Stamp, transaction_json

HEARTBEAT_S = 5.0
POLL_S = 0.02
Ctx = Callable[[Request, str], tuple[OandaAccount, Stamp]]


def add_stream_route(api: APIRouter, ctx: Ctx, now_us: Callable[[], int]) -> None:
    @api.get("/accounts/{account_id}/transactions/stream")
    async def stream(request: Request, account_id: str) -> StreamingResponse:
        account, stamp = ctx(request, account_id)
        start = account.last_id  # now: the client may act as soon as it has the headers

        async def lines() -> AsyncIterator[bytes]:
            sent = start
            beat = asyncio.get_running_loop().time() + HEARTBEAT_S
            while True:
                for tx in account.transactions[sent:]:
                    yield json.dumps(transaction_json(tx, stamp)).encode() + b"\n"
                    sent = tx.id
                if asyncio.get_running_loop().time() >= beat:
                    heartbeat = {"type": "HEARTBEAT", "lastTransactionID": str(account.last_id),
                                 "time": stamp(now_us())}  # fmt: skip
                    yield json.dumps(heartbeat).encode() + b"\n"
                    beat += HEARTBEAT_S
                await asyncio.sleep(POLL_S)

        return StreamingResponse(lines(), media_type="application/octet-stream")
