"""The transaction stream: each transaction the account makes after the connection, once,
as a line of JSON, and a HEARTBEAT with the last transaction id every 5 seconds; through
the stream faults, as ordersync's OandaStream reads it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from brokers.base import Unreadable
from brokers.errors import AuthenticationFailed, BrokerUnavailable
from brokers.oanda.adapter import OandaBroker
from brokers.oanda.paper.stream import HEARTBEAT_S
from brokers.oanda.stream import OandaStream
from core.enums import OrderStatus
from core.reports import StreamEvent
from tests.brokers.oanda.paper import ACCOUNT, TOKEN
from tests.paper_exchange import PaperExchange

Item = StreamEvent | Unreadable


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


# -- ordersync's OandaStream on it, with the stream faults --------------------------------


@pytest.fixture
def stream(oanda_exchange: PaperExchange) -> Iterator[OandaStream]:
    opened = OandaStream.from_url(oanda_exchange.base_url, account_id=ACCOUNT, token=TOKEN)
    opened.open()
    try:
        yield opened
    finally:
        opened.close()


def _until(stream: OandaStream, done: Callable[[list[Item]], bool],
           timeout_s: float = 10) -> list[Item]:  # fmt: skip
    """What the stream yields (Nones left out) until ``done`` says enough, or the deadline."""
    found: list[Item] = []
    deadline = time.monotonic() + timeout_s
    for item in stream.events(0.1):
        if item is not None:
            found.append(item)
        if done(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s; read {found}")
    raise AssertionError("the stream ended")


def _fills(found: list[Item]) -> list[str]:
    return [x.fill.broker_fill_id for x in found if isinstance(x, StreamEvent) and x.fill]


def _market(api: httpx.Client, units: str, cid: str) -> dict[str, Any]:
    order = {"type": "MARKET", "instrument": "EUR_USD", "units": units,
             "clientExtensions": {"id": cid}}  # fmt: skip
    answer: dict[str, Any] = api.post("/orders", json={"order": order}).json()
    return answer


def test_a_market_order_streams_as_accepted_then_filled_and_is_counted(
    oanda_exchange: PaperExchange, api: httpx.Client, stream: OandaStream
) -> None:
    placed = _market(api, "10", "s-1")
    found = _until(stream, lambda seen: bool(_fills(seen)))
    kinds = [(x.kind, x.report.status) for x in found if isinstance(x, StreamEvent)]
    assert kinds == [("MARKET_ORDER", OrderStatus.NEW), ("ORDER_FILL", OrderStatus.FILLED)]
    assert _fills(found) == [placed["orderFillTransaction"]["id"]]
    stats = oanda_exchange.stream_stats()["oanda"]
    assert (stats["opened"], stats["auth"]["authorized"]) == (1, 1)
    assert stats["messages"]["events"] == stats["messages"]["sent"] == 2


def test_a_dropped_transaction_is_a_gap_in_ids_and_the_rest_is_read(
    oanda_exchange: PaperExchange, api: httpx.Client, stream: OandaStream
) -> None:
    oanda_exchange.set_faults(stream_next_drop=1)  # the order's create
    placed = _market(api, "10", "s-2")
    found = _until(stream, lambda seen: bool(_fills(seen)))
    lost = found[0]
    assert isinstance(lost, Unreadable)
    created = placed["orderCreateTransaction"]["id"]
    assert lost.reason.startswith(f"transactions lost: {created}..{created}")
    filled = found[1]
    assert isinstance(filled, StreamEvent)
    assert filled.report.status is OrderStatus.FILLED  # the order read by REST
    assert oanda_exchange.stream_stats()["oanda"]["messages"]["dropped"] == 1


def test_a_dropped_last_transaction_is_told_by_the_next_heartbeat(
    oanda_exchange: PaperExchange, api: httpx.Client, stream: OandaStream
) -> None:
    order = {"type": "LIMIT", "instrument": "EUR_USD", "units": "10", "price": "1.00000",
             "clientExtensions": {"id": "s-3"}}  # fmt: skip
    made = api.post("/orders", json={"order": order}).json()["orderCreateTransaction"]["id"]
    _until(stream, lambda seen: len(seen) == 1)
    oanda_exchange.set_faults(stream_next_drop=1)
    cancel = api.put(f"/orders/{made}/cancel").json()["orderCancelTransaction"]["id"]
    (lost,) = _until(stream, lambda seen: len(seen) == 1, timeout_s=HEARTBEAT_S * 2)
    assert isinstance(lost, Unreadable)
    assert lost.reason.startswith(f"transactions lost: {cancel}..{cancel} (the heartbeat")


def test_a_duplicated_fill_is_one_fill(
    oanda_exchange: PaperExchange, api: httpx.Client, stream: OandaStream
) -> None:
    oanda_exchange.set_faults(stream_next_duplicate=2)  # the create and the fill, twice
    _market(api, "10", "s-4")
    found = _until(stream, lambda seen: len(_fills(seen)) == 2)
    assert all(isinstance(x, StreamEvent) for x in found)  # nothing lost: no gap
    assert len(set(_fills(found))) == 1
    reports = [x.report for x in found if isinstance(x, StreamEvent) and x.fill]
    assert [r.filled_quantity for r in reports] == [Decimal(10), Decimal(10)]
    assert oanda_exchange.stream_stats()["oanda"]["messages"]["duplicated"] == 2


def test_a_disconnect_ends_the_stream_as_unavailable(
    oanda_exchange: PaperExchange, api: httpx.Client, stream: OandaStream
) -> None:
    oanda_exchange.set_faults(stream_next_disconnect=1)
    _market(api, "10", "s-5")
    with pytest.raises(BrokerUnavailable, match="connection lost"):
        _until(stream, lambda seen: False)
    oanda_exchange.wait_for(lambda: not oanda_exchange.stream_stats()["oanda"]["connections"])
    assert oanda_exchange.stream_stats()["oanda"]["disconnects"] == {"fault": 1}


def test_a_silent_stream_is_dead(oanda_exchange: PaperExchange, broker: OandaBroker) -> None:
    """No line for ``silence_s`` (here less than the 5 s between heartbeats)."""
    quiet = OandaStream(oanda_exchange.base_url, ACCOUNT, TOKEN, broker, silence_s=0.5)
    with quiet, pytest.raises(BrokerUnavailable, match="no line"):
        _until(quiet, lambda seen: False)


def test_a_refused_stream_is_authentication_failed(oanda_exchange: PaperExchange) -> None:
    oanda_exchange.set_faults(stream_next_refuse_auth=1)
    refused = OandaStream.from_url(oanda_exchange.base_url, account_id=ACCOUNT, token=TOKEN)
    with pytest.raises(AuthenticationFailed):
        refused.open()
    refused.close()
    wrong = OandaStream.from_url(oanda_exchange.base_url, account_id=ACCOUNT, token="wrong")
    with pytest.raises(AuthenticationFailed):
        wrong.open()
    wrong.close()
    auth = oanda_exchange.stream_stats()["oanda"]["auth"]
    assert (auth["refused"], auth["unauthorized"], auth["authorized"]) == (1, 1, 0)
