"""The paper exchange's Coinbase user WebSocket (``/ws/user``) over a real socket: the
subscription's JWT checked as REST's (refusals in Coinbase's words, the connection kept),
a snapshot of the open orders in batches of 50 then an update per change, heartbeats,
one ``sequence_num`` per connection that a dropped message leaves a gap in, and
ordersync's own client reading it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from brokers.coinbase.adapter import CoinbaseBroker
from brokers.coinbase.stream import CoinbaseStream, stream_url
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest, StreamEvent
from tests.brokers.coinbase.paper import KEY_NAME, OTHER_PRIVATE, PRIVATE, token
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration
PRODUCT = "BTC-USD"
NANOS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def exchange(coinbase_exchange: PaperExchange) -> PaperExchange:
    coinbase_exchange.freeze_market()
    coinbase_exchange.set_price(f"coinbase:{PRODUCT}", Decimal("60000"))
    coinbase_exchange.set_faults(fill_delay_ms=[0, 0], partial_fill_probability=0.0,
                                 coinbase_requests_per_s=1000)  # fmt: skip
    return coinbase_exchange


@pytest.fixture
def broker(exchange: PaperExchange) -> Iterator[CoinbaseBroker]:
    adapter = CoinbaseBroker.from_url(exchange.base_url, key_name=KEY_NAME,
                                      private_key_pem=PRIVATE)  # fmt: skip
    yield adapter
    adapter.close()


@pytest.fixture
def ws(exchange: PaperExchange) -> Iterator[ClientConnection]:
    with connect(stream_url(exchange.base_url), open_timeout=5) as socket:
        yield socket


def resting(broker: CoinbaseBroker, cid: str, qty: str = "0.01") -> str:
    """A limit buy below the market: it rests until filled by hand or canceled."""
    request = PlaceOrderRequest(cid, PRODUCT, Side.BUY, Decimal(qty), OrderType.LIMIT,
                                TimeInForce.GTC, Decimal("50000"))  # fmt: skip
    return broker.place(request).broker_order_id


def subscribe(socket: ClientConnection, channel: str, **fields: Any) -> None:
    socket.send(json.dumps({"type": "subscribe", "channel": channel, **fields}))


def jwt_for(private: str = PRIVATE, **overrides: Any) -> str:
    return token(private, now, None, **overrides)


def read(socket: ClientConnection, timeout_s: float = 5) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(socket.recv(timeout=timeout_s))
    return message


def until(socket: ClientConnection, wanted: Callable[[dict[str, Any]], bool],
          timeout_s: float = 5) -> list[dict[str, Any]]:  # fmt: skip
    """Every message read up to and including the first ``wanted`` one."""
    seen = []
    while True:
        seen.append(read(socket, timeout_s))
        if wanted(seen[-1]):
            return seen


def user(message: dict[str, Any]) -> bool:
    return bool(message.get("channel") == "user")


def orders_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [order for event in message["events"] for order in event["orders"]]


def test_subscribing_gets_the_snapshot_then_the_acknowledgement_then_heartbeats(
    ws: ClientConnection, exchange: PaperExchange
) -> None:
    subscribe(ws, "user", jwt=jwt_for())
    snapshot, ack = read(ws), read(ws)
    subscribe(ws, "heartbeats")
    ack_both, beat_1, beat_2 = read(ws), read(ws), read(ws)

    assert set(snapshot) == {"channel", "timestamp", "sequence_num", "events"}  # no client_id
    assert (snapshot["channel"], snapshot["sequence_num"]) == ("user", 0)
    assert NANOS.match(snapshot["timestamp"])
    assert snapshot["events"] == [{"type": "snapshot", "orders": [], "positions": {
        "perpetual_futures_positions": [], "expiring_futures_positions": []}}]  # fmt: skip
    assert (ack["channel"], ack["sequence_num"]) == ("subscriptions", 1)
    assert ack["events"] == [{"subscriptions": {"user": []}}]
    assert ack_both["events"] == [{"subscriptions": {"user": [], "heartbeats": ["heartbeats"]}}]
    assert [m["channel"] for m in (beat_1, beat_2)] == ["heartbeats", "heartbeats"]
    assert [m["sequence_num"] for m in (ack_both, beat_1, beat_2)] == [2, 3, 4]
    assert [m["events"][0]["heartbeat_counter"] for m in (beat_1, beat_2)] == [1, 2]
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9} \+0000 UTC$",
                    beat_1["events"][0]["current_time"])  # fmt: skip
    (connection,) = exchange.stream_stats()["coinbase"]["connections"]
    assert (connection["account"], connection["channels"]) == (KEY_NAME, ["heartbeats", "user"])


@pytest.mark.parametrize(
    "subscription",
    [
        pytest.param(lambda: {}, id="no-jwt"),
        pytest.param(lambda: {"jwt": "not-a-jwt"}, id="not-a-jwt"),
        pytest.param(lambda: {"jwt": jwt_for(OTHER_PRIVATE)}, id="bad-signature"),
        pytest.param(lambda: {"jwt": jwt_for(kid="organizations/o/apiKeys/unknown")},
                     id="unknown-key"),
        pytest.param(lambda: {"jwt": jwt_for(claims={"exp": 1_000_000_000})}, id="expired"),
        pytest.param(lambda: {"jwt": jwt_for(claims={"uri": "GET paper/ws/user"})},
                     id="uri-claim"),
        pytest.param(lambda: {"jwt": jwt_for(claims={"sub": "someone-else"})}, id="wrong-sub"),
        pytest.param(lambda: {"jwt": jwt_for(claims={"iss": "someone-else"})},
                     id="wrong-iss"),
        pytest.param(lambda: {"jwt": jwt_for(headers={"nonce": ""})}, id="no-nonce"),
    ],
)  # fmt: skip
def test_a_refused_jwt_is_an_authentication_failure_and_the_connection_stays(
    ws: ClientConnection, exchange: PaperExchange, subscription: Callable[[], dict[str, Any]]
) -> None:
    subscribe(ws, "user", **subscription())  # the JWT made now: only its flaw refuses it
    refusal = read(ws)
    subscribe(ws, "heartbeats")  # the connection still answers
    ack = read(ws)

    assert refusal == {"type": "error", "message": "authentication failure"}
    assert ack["events"] == [{"subscriptions": {"heartbeats": ["heartbeats"]}}]
    assert ack["sequence_num"] == 0  # errors are not numbered
    assert exchange.stream_stats()["coinbase"]["auth"]["unauthorized"] == 1


@pytest.mark.parametrize(
    ("frame", "said"),
    [
        ("{not json", "failure to parse message"),
        (json.dumps({"type": "subscribe"}), "failure to parse message"),
        (json.dumps({"type": "subscribe", "channel": "level2"}), "Failed to subscribe"),
        (json.dumps({"type": "subscribe", "channel": "user", "product_ids": "BTC-USD"}),
         "failure to parse message"),
    ],
)  # fmt: skip
def test_an_unreadable_or_unserved_subscription_is_refused(
    ws: ClientConnection, frame: str, said: str
) -> None:
    ws.send(frame)
    assert read(ws) == {"type": "error", "message": said}


def test_the_snapshot_then_an_update_per_change_two_fills_and_a_cancel(
    ws: ClientConnection, exchange: PaperExchange, broker: CoinbaseBroker
) -> None:
    filled_id = resting(broker, "st-fill")
    canceled_id = resting(broker, "st-cancel", "0.02")
    subscribe(ws, "user", jwt=jwt_for())
    snapshot = read(ws)
    read(ws)  # the acknowledgement
    exchange.force_fill(filled_id, "0.004", "50000")
    exchange.force_fill(filled_id, "0.006", "49000")
    broker.cancel(canceled_id)
    updates = [read(ws) for _ in range(3)]

    assert [(o["order_id"], o["status"], o["leaves_quantity"]) for o in orders_of(snapshot)] == [
        (filled_id, "OPEN", "0.01"), (canceled_id, "OPEN", "0.02")]  # fmt: skip
    assert [m["events"][0]["type"] for m in updates] == ["update"] * 3
    assert [m["sequence_num"] for m in updates] == [2, 3, 4]
    first, second, cancel = (orders_of(m)[0] for m in updates)
    fields = ("status", "cumulative_quantity", "leaves_quantity", "number_of_fills", "avg_price")
    assert [tuple(o[f] for f in fields) for o in (first, second)] == [
        ("OPEN", "0.004", "0.006", "1", "50000"),
        ("FILLED", "0.01", "0", "2", "49400"),  # (0.004 * 50000 + 0.006 * 49000) / 0.01
    ]
    fills = {f["entry_id"]: f for f in exchange.truth_order(filled_id)["coinbase"]["fills"]}
    commissions = sum((Decimal(f["commission"]) for f in fills.values()), Decimal(0))
    assert Decimal(second["total_fees"]) == commissions > 0
    assert Decimal(first["total_fees"]) < commissions
    assert (cancel["order_id"], cancel["status"]) == (canceled_id, "CANCELLED")
    assert (cancel["cumulative_quantity"], cancel["leaves_quantity"]) == ("0", "0.02")
    assert (second["client_order_id"], second["order_side"], second["order_type"]) == (
        "st-fill", "BUY", "LIMIT")  # fmt: skip


def test_the_snapshot_comes_in_batches_of_50(ws: ClientConnection, broker: CoinbaseBroker) -> None:
    placed = [resting(broker, f"st-batch-{n}", "0.0001") for n in range(51)]
    subscribe(ws, "user", jwt=jwt_for())
    first, second, ack = read(ws), read(ws), read(ws)

    assert [len(orders_of(first)), len(orders_of(second))] == [50, 1]
    assert [o["order_id"] for o in orders_of(first) + orders_of(second)] == placed
    assert ack["channel"] == "subscriptions"


def test_a_dropped_update_leaves_a_gap_in_the_sequence(
    ws: ClientConnection, exchange: PaperExchange, broker: CoinbaseBroker
) -> None:
    subscribe(ws, "user", jwt=jwt_for())
    until(ws, lambda m: m["channel"] == "subscriptions")
    exchange.set_faults(stream_next_drop=1)
    resting(broker, "st-lost")
    kept = resting(broker, "st-kept")
    update = read(ws)

    assert update["sequence_num"] == 3  # 2, the lost one's, never came
    assert orders_of(update)[0]["order_id"] == kept
    assert exchange.stream_stats()["coinbase"]["messages"]["dropped"] == 1


def test_a_product_filter_keeps_other_products_out(
    exchange: PaperExchange, broker: CoinbaseBroker, ws: ClientConnection
) -> None:
    resting(broker, "st-btc")
    subscribe(ws, "user", jwt=jwt_for(), product_ids=["ETH-USD"])
    snapshot, ack = read(ws), read(ws)
    resting(broker, "st-btc-2")
    subscribe(ws, "heartbeats")
    following = read(ws)

    assert orders_of(snapshot) == []
    assert ack["events"] == [{"subscriptions": {"user": ["ETH-USD"]}}]
    assert following["channel"] == "subscriptions"  # no BTC-USD update came before it


def test_ordersyncs_client_reads_the_snapshot_and_updates_and_a_disconnect_ends_it(
    exchange: PaperExchange, broker: CoinbaseBroker
) -> None:
    order_id = resting(broker, "st-client")
    with CoinbaseStream(stream_url(exchange.base_url), KEY_NAME, PRIVATE) as stream:
        items = stream.events(idle_s=5)
        snapshot = next(items)
        exchange.force_fill(order_id, "0.01", "50000")
        update = next(items)
        while update is None:  # idle ticks while the fill is on its way
            update = next(items)
        assert exchange.disconnect_streams() == 1

        assert isinstance(snapshot, StreamEvent)
        assert (snapshot.kind, snapshot.report.status) == ("snapshot", OrderStatus.NEW)
        assert isinstance(update, StreamEvent)
        assert (update.kind, update.report.status) == ("update", OrderStatus.FILLED)
        assert update.report.filled_quantity == Decimal("0.01")
        assert update.report.quantity == Decimal("0.01")
        assert update.fill is None
    stats = exchange.wait_for(lambda: (s := exchange.stream_stats()["coinbase"])["disconnects"]
                              and s)  # fmt: skip
    assert stats["disconnects"] == {"control": 1}
