"""The user data stream of the paper exchange's Binance dialect over a real WebSocket, heard
by ordersync's client and by Binance's own connector: the subscription's refusals, an order
filled in parts and a cancel, every trade under the id ``myTrades`` gives it."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from binance.lib.utils import websocket_api_signature
from binance.spot import Spot
from binance.websocket.spot.websocket_api import SpotWebsocketAPIClient

from brokers.base import Unreadable
from brokers.binance.stream import BinanceStream, ExchangeInfoAssets, stream_url
from brokers.errors import AuthenticationFailed, BrokerUnavailable
from core.reports import StreamEvent
from tests.brokers.binance.paper import BINANCE_KEY, BINANCE_SECRET
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration
SYMBOL = "ETHUSDT"
ACCOUNT = f"binance:{BINANCE_KEY}"


@pytest.fixture
def spot(binance_exchange: PaperExchange) -> Iterator[Spot]:
    binance_exchange.freeze_market()
    binance_exchange.set_price(f"binance:{SYMBOL}", Decimal("3000"))
    binance_exchange.set_faults(partial_fill_probability=0.0)  # market orders fill whole
    client = Spot(BINANCE_KEY, BINANCE_SECRET, base_url=binance_exchange.base_url)
    yield client
    client.session.close()


def user_stream(exchange: PaperExchange, key: str = BINANCE_KEY, secret: str = BINANCE_SECRET,
                **options: Any) -> BinanceStream:  # fmt: skip
    assets = ExchangeInfoAssets(exchange.base_url)
    return BinanceStream(stream_url(exchange.base_url), key, secret, symbol_assets=assets,
                         **options)  # fmt: skip


def events(stream: BinanceStream, n: int, timeout_s: float = 10) -> list[StreamEvent]:
    """The next ``n`` order events; fails at the deadline or on an unreadable one."""
    found: list[StreamEvent] = []
    deadline = time.monotonic() + timeout_s
    for item in stream.events(0.05):
        assert not isinstance(item, Unreadable), item
        if item is not None:
            found.append(item)
        if len(found) == n:
            return found
        assert time.monotonic() < deadline, f"{len(found)} of {n} events: {found}"
    raise AssertionError("the stream ended")


def engine_id(exchange: PaperExchange, client_order_id: str) -> str:
    """The engine's id of the Binance order with this client order id."""
    return next(o["id"] for o in exchange.truth(ACCOUNT)
                if o["binance"]["clientOrderId"] == client_order_id)  # fmt: skip


def test_the_subscription_is_refused_as_binance_refuses_it(
    binance_exchange: PaperExchange,
) -> None:
    refusals = {}
    for name, stream in {
        "unknown key": user_stream(binance_exchange, "noSuchKey01", "whatever"),
        "bad key format": user_stream(binance_exchange, "no spaces allowed", "x"),
        "wrong secret": user_stream(binance_exchange, secret="not-the-secret"),
    }.items():
        with pytest.raises(AuthenticationFailed) as refused:
            stream.open()
        refusals[name] = (refused.value.status_code, str(refused.value))
    late = user_stream(binance_exchange, now=lambda: datetime.now(UTC) - timedelta(seconds=10))
    with pytest.raises(BrokerUnavailable) as stale:
        late.open()

    assert refusals["unknown key"][0] == 401
    assert "Binance -2015" in refusals["unknown key"][1]
    assert refusals["bad key format"][0] == 401
    assert "-2014" in refusals["bad key format"][1]
    assert refusals["wrong secret"][0] == 400
    assert "Binance -1022" in refusals["wrong secret"][1]
    assert "Binance -1021" in str(stale.value)
    assert "not-the-secret" not in repr(late) + str(refusals)


def test_an_order_filled_in_parts_streams_new_then_each_trade_under_its_rest_id(
    binance_exchange: PaperExchange, spot: Spot
) -> None:
    with user_stream(binance_exchange) as stream:
        assert stream.subscription_id == 0
        placed = spot.new_order(symbol=SYMBOL, side="BUY", type="LIMIT", timeInForce="GTC",
                                quantity="0.5", price="2900",
                                newClientOrderId="parts-1")  # fmt: skip
        binance_exchange.force_fill(engine_id(binance_exchange, "parts-1"), "0.2", "2900")
        binance_exchange.force_fill(engine_id(binance_exchange, "parts-1"), "0.3", "2899")
        new, first, last = events(stream, 3)
    trades = spot.my_trades(SYMBOL, orderId=placed["orderId"])

    assert [e.kind for e in (new, first, last)] == ["NEW", "TRADE", "TRADE"]
    assert [e.report.raw_status for e in (new, first, last)] == [
        "NEW", "PARTIALLY_FILLED", "FILLED"]  # fmt: skip
    assert {e.report.broker_order_id for e in (new, first, last)} == {f"{SYMBOL}:1"}
    assert new.fill is None
    assert new.report.client_order_id == "parts-1"
    assert first.fill is not None
    assert last.fill is not None
    assert [first.fill.broker_fill_id, last.fill.broker_fill_id] == [
        f"{SYMBOL}:{t['id']}" for t in trades]  # fmt: skip
    assert (first.fill.quantity, first.fill.price, first.fill.cum_quantity) == (
        Decimal("0.2"), Decimal("2900"), Decimal("0.2"))  # fmt: skip
    assert (last.fill.quantity, last.fill.cum_quantity) == (Decimal("0.3"), Decimal("0.5"))
    # A buy's commission is ETH taken from what it bought: a quantity, not money.
    assert [(f.fee, f.fee_quantity, f.fee_asset) for f in (first.fill, last.fill)] == [
        (Decimal(0), Decimal(t["commission"]), None) for t in trades]  # fmt: skip
    assert last.report.average_fill_price == (
        (Decimal("0.2") * 2900 + Decimal("0.3") * 2899) / Decimal("0.5"))  # fmt: skip
    assert [e.event_id for e in (new, first, last)] == [f"{SYMBOL}:1:{i}" for i in (1, 2, 3)]


def test_a_cancel_names_the_order_and_the_cancel_and_a_sale_pays_in_money(
    binance_exchange: PaperExchange, spot: Spot
) -> None:
    with user_stream(binance_exchange) as stream:
        spot.new_order(symbol=SYMBOL, side="BUY", type="MARKET", quantity="0.1")
        seen = events(stream, 2)  # the ETH to sell: filled within the fill delay
        spot.new_order(symbol=SYMBOL, side="SELL", type="LIMIT", timeInForce="GTC",
                       quantity="0.05", price="3500", newClientOrderId="keep-1")  # fmt: skip
        spot.cancel_order(SYMBOL, origClientOrderId="keep-1", newClientOrderId="drop-1")
        spot.new_order(symbol=SYMBOL, side="SELL", type="MARKET", quantity="0.04")
        seen += events(stream, 4)
    kinds = [(e.kind, e.report.raw_status) for e in seen]
    canceled = seen[3]
    sale = seen[5].fill

    assert kinds == [("NEW", "NEW"), ("TRADE", "FILLED"), ("NEW", "NEW"),
                     ("CANCELED", "CANCELED"), ("NEW", "NEW"), ("TRADE", "FILLED")]  # fmt: skip
    assert canceled.report.client_order_id == "keep-1"
    assert (canceled.report.raw or {})["c"] == "drop-1"
    assert sale is not None
    assert sale.fee > 0
    assert sale.fee_asset is None
    assert sale.fee_quantity in (None, 0)


def test_binances_connector_subscribes_and_hears_the_execution_reports(
    binance_exchange: PaperExchange, spot: Spot
) -> None:
    """binance-connector's WebSocket API client, unchanged, signing with its own helper."""
    heard: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_message(_: object, text: str) -> None:
        with lock:
            heard.append(json.loads(text))

    url = stream_url(binance_exchange.base_url)
    client = SpotWebsocketAPIClient(stream_url=url, api_key=BINANCE_KEY,
                                    api_secret=BINANCE_SECRET, on_message=on_message)  # fmt: skip
    try:
        request_id = uuid.uuid4().hex
        params = websocket_api_signature(BINANCE_KEY, BINANCE_SECRET, {})
        client.send({"id": request_id, "method": "userDataStream.subscribe.signature",
                     "params": params})  # fmt: skip
        binance_exchange.wait_for(lambda: any(m.get("id") == request_id for m in heard))
        placed = spot.new_order(symbol=SYMBOL, side="BUY", type="MARKET", quantity="0.1")

        def reports() -> list[dict[str, Any]]:
            with lock:
                return [m["event"] for m in heard
                        if m.get("event", {}).get("e") == "executionReport"]  # fmt: skip

        binance_exchange.wait_for(lambda: len(reports()) == 2)
    finally:
        client.stop()
        client.socket_manager.ws.shutdown()  # it sends a close frame but keeps its socket
    answer = next(m for m in heard if m.get("id") == request_id)
    trade = spot.my_trades(SYMBOL, orderId=placed["orderId"])[0]

    assert (answer["status"], answer["result"]) == (200, {"subscriptionId": 0})
    assert [(r["x"], r["X"]) for r in reports()] == [("NEW", "NEW"), ("TRADE", "FILLED")]
    assert reports()[1]["t"] == trade["id"]
    assert reports()[1]["n"] == trade["commission"]
