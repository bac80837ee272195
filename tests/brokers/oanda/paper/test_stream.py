"""The transaction stream: each transaction the account makes after the connection, once,
as a line of JSON, and a HEARTBEAT with the last transaction id every 5 seconds."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from tests.brokers.oanda.paper import ACCOUNT, TOKEN
from tests.paper_exchange import PaperExchange


def test_the_stream_carries_new_transactions_then_heartbeats(
    oanda_exchange: PaperExchange, api: httpx.Client
) -> None:
    api.post(
        "/orders", json={"order": {"type": "MARKET", "instrument": "EUR_USD", "units": "5"}}
    )  # fmt: skip  (before: not streamed)
    seen: list[dict[str, Any]] = []
    connected = threading.Event()
    url = f"{oanda_exchange.base_url}/v3/accounts/{ACCOUNT}/transactions/stream"

    def read() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.stream("GET", url, headers=headers, timeout=15) as response:
            connected.set()
            for line in response.iter_lines():
                seen.append(json.loads(line))
                if seen[-1]["type"] == "HEARTBEAT":
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert connected.wait(10)
    placed = api.post("/orders", json={"order": {"type": "MARKET", "instrument": "EUR_USD",
                                                 "units": "7"}}).json()  # fmt: skip
    reader.join(12)
    assert not reader.is_alive()
    kinds = [(t["type"], t.get("units")) for t in seen]
    assert kinds == [("MARKET_ORDER", "7"), ("ORDER_FILL", "7"), ("HEARTBEAT", None)]
    assert seen[1]["id"] == placed["orderFillTransaction"]["id"]
    assert seen[2]["lastTransactionID"] == placed["lastTransactionID"]


def test_the_stream_wants_the_accounts_token(oanda_exchange: PaperExchange) -> None:
    url = f"{oanda_exchange.base_url}/v3/accounts/{ACCOUNT}/transactions/stream"
    answer = httpx.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert answer.status_code == 401
