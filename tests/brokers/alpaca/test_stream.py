"""Alpaca's trade_updates messages as normalized events, from Alpaca's documented shapes:
JSON text, binary JSON (the paper endpoint's frames) and MessagePack, never floats."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgpack
import pytest

from brokers.alpaca import parse as alpaca_parse
from brokers.alpaca.stream import AlpacaStream, Unreadable, decode_frame, parse_event, stream_url
from core.enums import OrderStatus, Side

# The documented stream fill example (Alpaca's streaming docs, trimmed there too), its
# order completed with the fields a REST order always has.
DOC_FILL = {
    "stream": "trade_updates",
    "data": {
        "event": "fill",
        "execution_id": "2f63ea93-423d-4169-b3f6-3fdafc10c418",
        "order": {
            "id": "a5be8f5e-fdfa-41f5-a644-7a74fe947a8f",
            "client_order_id": "4642fd68-d59a-47d7-a9ac-e22f536828d1",
            "status": "filled", "filled_qty": "1790.86", "filled_avg_price": "105.8988475",
            "qty": "1790.86", "symbol": "SOLUSD", "side": "buy", "type": "market",
            "time_in_force": "gtc", "created_at": "2022-04-19T17:45:04.918311243Z",
            "updated_at": "2022-04-19T17:45:05.027186306Z",
            "filled_at": "2022-04-19T17:45:05.024916716Z",
        },
        "position_qty": "0", "price": "105.8988475", "qty": "1790.86",
        "timestamp": "2022-04-19T17:45:05.024916716Z",
    },
}  # fmt: skip


def message(event: str = "fill", **data: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(DOC_FILL))
    body["data"]["event"] = event
    body["data"].update(data)
    return body


def test_the_documented_fill_is_an_execution_with_its_cumulative_quantity() -> None:
    event = parse_event(decode_frame(json.dumps(DOC_FILL))["data"])  # type: ignore[arg-type]
    assert (event.kind, event.event_id) == ("fill", "2f63ea93-423d-4169-b3f6-3fdafc10c418")
    assert event.report.status is OrderStatus.FILLED
    assert event.report.filled_quantity == Decimal("1790.86")
    fill = event.fill
    assert fill is not None
    assert (fill.broker_fill_id, fill.broker_order_id) == (
        "2f63ea93-423d-4169-b3f6-3fdafc10c418",
        "a5be8f5e-fdfa-41f5-a644-7a74fe947a8f",
    )
    assert (fill.quantity, fill.price, fill.side) == (Decimal("1790.86"), Decimal("105.8988475"),
                                                      Side.BUY)  # fmt: skip
    assert fill.cum_quantity == Decimal("1790.86")
    assert fill.filled_at == datetime(2022, 4, 19, 17, 45, 5, 24916, tzinfo=UTC)


@pytest.mark.parametrize("encode", [
    lambda m: json.dumps(m),  # text
    lambda m: json.dumps(m).encode(),  # binary JSON, as Alpaca's paper endpoint sends
    lambda m: msgpack.packb(m),  # MessagePack
], ids=["text", "binary", "msgpack"])  # fmt: skip
def test_every_frame_encoding_reads_the_same(encode: Any) -> None:
    decoded = decode_frame(encode(DOC_FILL))
    assert decoded == json.loads(json.dumps(DOC_FILL))
    assert isinstance(parse_event(decoded["data"]).report.filled_quantity, Decimal)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["new", "canceled", "expired", "done_for_day", "replaced",
                                  "pending_cancel", "pending_replace", "order_cancel_rejected",
                                  "order_replace_rejected", "calculated", "restated"])  # fmt: skip
def test_other_events_carry_the_order_and_no_execution(kind: str) -> None:
    data = message(kind)["data"]
    for key in ("price", "qty", "position_qty", "execution_id"):
        data.pop(key)
    event = parse_event(data)
    assert (event.kind, event.fill, event.event_id) == (kind, None, None)
    assert event.report.broker_order_id == "a5be8f5e-fdfa-41f5-a644-7a74fe947a8f"


@pytest.mark.parametrize(("change", "problem"), [
    ({"event": None}, "event is None"),
    ({"execution_id": None}, "without an execution_id"),
    ({"qty": 1790.86}, "qty is float"),
    ({"price": "0"}, "price 0"),
    ({"order": None}, "order is NoneType"),
])  # fmt: skip
def test_an_unreadable_event_says_why(change: dict[str, Any], problem: str) -> None:
    data = {**message()["data"], **change}
    with pytest.raises(alpaca_parse.ParseError, match=problem):
        parse_event(data)


def test_a_frame_that_is_neither_json_nor_messagepack_is_refused() -> None:
    with pytest.raises(alpaca_parse.ParseError, match="neither JSON nor MessagePack"):
        decode_frame(b"\xc1\xff\x00garbage")


def test_a_floating_number_in_a_frame_is_read_as_a_decimal() -> None:
    assert decode_frame(b'{"x": 1.10}') == {"x": Decimal("1.10")}


def test_reading_a_connection_keeps_what_it_cannot_read_and_skips_control_messages() -> None:
    stream = AlpacaStream("ws://unused", "key", "secret")
    frames: list[bytes | str] = [
        json.dumps({"stream": "listening", "data": {"streams": ["trade_updates"]}}),
        json.dumps(DOC_FILL).encode(),
        b"\x00not a frame",
        json.dumps(message(qty=None)),
    ]
    items = [item for frame in frames for item in stream._read(frame)]
    assert [type(i).__name__ for i in items] == ["StreamEvent", "Unreadable", "Unreadable"]
    assert isinstance(items[2], Unreadable)
    assert "qty" in items[2].reason


def test_the_stream_url_is_the_trading_hosts_and_the_credentials_never_show() -> None:
    assert stream_url("https://paper-api.alpaca.markets") == "wss://paper-api.alpaca.markets/stream"
    assert stream_url("http://127.0.0.1:8765/") == "ws://127.0.0.1:8765/stream"
    assert "secret" not in repr(AlpacaStream("ws://x/stream", "key", "secret"))
    with pytest.raises(ValueError, match="not an http"):
        stream_url("ftp://x")
