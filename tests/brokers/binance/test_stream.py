"""The user data stream client on Binance's documented payloads (user-data-stream.md,
web-socket-api.md): the signed subscription, its answers and refusals, executionReports
with each kind of commission, and the events that are not about orders."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from brokers.base import Unreadable
from brokers.binance.stream import AssetsUnknown, BinanceStream, ExchangeInfoAssets, stream_url
from brokers.errors import AuthenticationFailed, BrokerUnavailable, MalformedResponse
from core.reports import StreamEvent

KEY, SECRET = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A", "s3cr3t-x"
NOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
ASSETS = {"ETHBTC": ("ETH", "BTC")}
# user-data-stream.md's executionReport, made a TRADE of 1 ETH at 0.1 BTC.
TRADE = {
    "e": "executionReport", "E": 1499405658658, "s": "ETHBTC", "c": "mUvoqJxFIILMdfAW5iGSOW",
    "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "1.00000000", "p": "0.10264410",
    "P": "0.00000000", "F": "0.00000000", "g": -1, "C": "", "x": "TRADE", "X": "FILLED",
    "r": "NONE", "i": 4293153, "l": "1.00000000", "z": "1.00000000", "L": "0.10000000",
    "n": "0.00100000", "N": "ETH", "T": 1499405658657, "t": 42, "I": 8641984, "w": False,
    "m": False, "M": False, "O": 1499405658657, "Z": "0.10000000", "Y": "0.10000000",
    "Q": "0.00000000", "W": 1499405658657, "V": "NONE",
}  # fmt: skip
NEW = {**TRADE, "x": "NEW", "X": "NEW", "l": "0.00000000", "z": "0.00000000",
       "L": "0.00000000", "n": "0", "N": None, "t": -1, "Z": "0.00000000",
       "Y": "0.00000000"}  # fmt: skip


def client(assets: dict[str, tuple[str, str]] = ASSETS) -> BinanceStream:
    stream = BinanceStream("wss://ws-api.binance.com:443/ws-api/v3", KEY, SECRET,
                           symbol_assets=assets.__getitem__, now=lambda: NOW)  # fmt: skip
    stream.subscription_id = 0
    return stream


def frame(event: dict[str, Any], subscription: int = 0) -> str:
    return json.dumps({"subscriptionId": subscription, "event": event})


def read(stream: BinanceStream, event: dict[str, Any]) -> StreamEvent:
    found = stream.read(frame(event))
    assert isinstance(found, StreamEvent), found
    return found


def test_the_subscription_is_signed_over_its_sorted_parameters() -> None:
    request = client().subscribe_request("req-1")
    params = request["params"]
    stamp = int(NOW.timestamp() * 1000)
    payload = f"apiKey={KEY}&recvWindow=5000&timestamp={stamp}"

    assert (request["id"], request["method"]) == ("req-1", "userDataStream.subscribe.signature")
    assert params["signature"] == hmac.new(SECRET.encode(), payload.encode(),
                                           hashlib.sha256).hexdigest()  # fmt: skip
    assert (params["timestamp"], params["recvWindow"]) == (stamp, 5000)
    assert SECRET not in json.dumps(request) + repr(client())


def test_a_subscription_answer_gives_its_id() -> None:
    answer = {"id": "x", "status": 200, "result": {"subscriptionId": 3}}
    assert client()._subscribed(answer) == 3


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (401, -2015, AuthenticationFailed),
        (401, -2014, AuthenticationFailed),
        (400, -1022, AuthenticationFailed),
        (400, -1021, BrokerUnavailable),  # the clock: try again
        (429, -1003, BrokerUnavailable),
        (503, -1008, BrokerUnavailable),
    ],
)
def test_a_refusal_is_the_error_it_is(status: int, code: int, error: type[Exception]) -> None:
    answer = {"id": "x", "status": status, "error": {"code": code, "msg": "no"}}
    with pytest.raises(error) as refused:
        client()._subscribed(answer)
    assert f"Binance {code}: no" in str(refused.value)


def test_a_success_without_a_subscription_id_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        client()._subscribed({"id": "x", "status": 200, "result": {}})


def test_a_new_order_has_no_fill_and_a_trade_has_its_rest_id() -> None:
    new, trade = read(client(), NEW), read(client(), TRADE)

    assert (new.kind, new.fill, new.report.broker_order_id) == ("NEW", None, "ETHBTC:4293153")
    assert new.event_id == "ETHBTC:4293153:8641984"
    assert trade.fill is not None
    assert trade.fill.broker_fill_id == "ETHBTC:42"  # myTrades' id: one fill, two sources
    assert (trade.fill.quantity, trade.fill.price, trade.fill.cum_quantity) == (
        Decimal(1), Decimal("0.1"), Decimal(1))  # fmt: skip


@pytest.mark.parametrize(
    ("asset", "fee", "fee_quantity", "fee_asset", "fee_asset_amount"),
    [
        ("ETH", Decimal(0), Decimal("0.001"), None, Decimal(0)),  # the base: a quantity
        ("BNB", Decimal(0), Decimal(0), "BNB", Decimal("0.001")),  # a third asset
        ("BTC", Decimal("0.001"), Decimal(0), None, Decimal(0)),  # the quote: money
    ],
)
def test_a_commission_is_sorted_as_the_rest_path_sorts_it(
    asset: str, fee: Decimal, fee_quantity: Decimal, fee_asset: str | None,
    fee_asset_amount: Decimal,
) -> None:  # fmt: skip
    fill = read(client(), {**TRADE, "N": asset}).fill
    assert fill is not None
    assert (fill.fee, fill.fee_quantity, fill.fee_asset, fill.fee_asset_amount) == (
        fee, fee_quantity, fee_asset, fee_asset_amount)  # fmt: skip


def test_a_trade_without_a_trade_id_has_no_fill() -> None:
    assert read(client(), {**TRADE, "t": -1}).fill is None


def test_events_not_about_orders_are_passed_and_a_terminated_stream_ends() -> None:
    stream = client()
    position = {"e": "outboundAccountPosition", "E": 1, "u": 1, "B": []}
    balance = {"e": "balanceUpdate", "E": 1, "a": "BTC", "d": "1.00000000", "T": 1}
    answer = json.dumps({"id": "x", "status": 200, "result": {}})

    assert [stream.read(frame(position)), stream.read(frame(balance)), stream.read(answer)] == [
        None, None, None]  # fmt: skip
    with pytest.raises(BrokerUnavailable, match="subscription 0 terminated"):
        stream.read(frame({"e": "eventStreamTerminated", "E": 1}))


def test_what_cannot_be_read_is_kept_unreadable_naming_why() -> None:
    stream = client(assets={})
    broken = stream.read(frame({**TRADE, "z": "lots"}))
    other = stream.read(frame(TRADE, subscription=7))
    garbage = stream.read("{not json")

    assert isinstance(broken, Unreadable)
    assert "z is not a decimal" in broken.reason
    assert isinstance(other, Unreadable)
    assert "subscription 7, ours is 0" in other.reason
    assert isinstance(garbage, Unreadable)


def test_a_symbols_assets_come_from_exchange_info_once() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if request.url.params["symbol"] == "NOPE":
            return httpx.Response(400, json={"code": -1121, "msg": "Invalid symbol."})
        body = {"symbols": [{"symbol": "ETHBTC", "baseAsset": "ETH", "quoteAsset": "BTC"}]}
        return httpx.Response(200, json=body)

    assets = ExchangeInfoAssets("https://api.binance.com", transport=httpx.MockTransport(answer))

    assert assets("ETHBTC") == assets("ETHBTC") == ("ETH", "BTC")
    assert asked == ["https://api.binance.com/api/v3/exchangeInfo?symbol=ETHBTC"]
    with pytest.raises(AssetsUnknown, match=r"NOPE.*-1121"):
        assets("NOPE")


def test_the_stream_url_follows_the_rest_url() -> None:
    assert stream_url("https://api.binance.com") == "wss://ws-api.binance.com:443/ws-api/v3"
    assert stream_url("http://127.0.0.1:8765/") == "ws://127.0.0.1:8765/ws-api/v3"
    with pytest.raises(ValueError, match="not an http"):
        stream_url("ftp://x")
