"""ordersync's CoinbaseBroker, every method, against the paper exchange's Coinbase dialect
over real HTTP (its JWTs checked there), some with the exchange's faults on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from brokers.coinbase.adapter import CoinbaseBroker
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest, ReplaceOrderRequest
from tests.brokers.coinbase.paper import KEY_NAME, OTHER_PRIVATE, PRIVATE
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration
PRODUCT = "BTC-USD"


@pytest.fixture
def exchange(coinbase_exchange: PaperExchange) -> PaperExchange:
    coinbase_exchange.freeze_market()
    coinbase_exchange.set_price(f"coinbase:{PRODUCT}", Decimal("60000"))
    coinbase_exchange.set_faults(fill_delay_ms=[0, 0], partial_fill_probability=0.0)
    return coinbase_exchange


@pytest.fixture
def broker(exchange: PaperExchange) -> Iterator[CoinbaseBroker]:
    adapter = CoinbaseBroker.from_url(
        exchange.base_url, key_name=KEY_NAME, private_key_pem=PRIVATE, max_retry_wait_s=0.05
    )
    yield adapter
    adapter.close()


def market(cid: str, qty: str = "0.01", side: Side = Side.BUY) -> PlaceOrderRequest:
    return PlaceOrderRequest(cid, PRODUCT, side, Decimal(qty), time_in_force=TimeInForce.GTC)


def limit(cid: str, price: str, qty: str = "0.01") -> PlaceOrderRequest:
    return PlaceOrderRequest(
        cid, PRODUCT, Side.BUY, Decimal(qty), OrderType.LIMIT, TimeInForce.GTC, Decimal(price)
    )


def test_place_get_and_fills_of_a_market_buy(
    broker: CoinbaseBroker, exchange: PaperExchange
) -> None:
    placed = broker.place(market("ad-1"))
    order = exchange.wait_for(
        lambda: (o := broker.get_order(placed.broker_order_id)).status is OrderStatus.FILLED and o
    )
    fills = broker.list_fills(after=datetime.now(UTC) - timedelta(minutes=1))
    truth = exchange.truth_order(placed.broker_order_id)["coinbase"]

    assert (placed.status, placed.client_order_id) == (OrderStatus.PENDING_NEW, "ad-1")
    assert (order.filled_quantity, order.quantity) == (Decimal("0.01"), Decimal("0.01"))
    assert order.fees == Decimal(truth["total_fees"]) > 0
    assert [f.broker_fill_id for f in fills.items] == [f["entry_id"] for f in truth["fills"]]
    assert sum((f.fee for f in fills.items), Decimal(0)) == order.fees
    assert fills.next_token is None
    assert fills.malformed == ()


def test_lookup_by_client_id_lists_and_matches(broker: CoinbaseBroker) -> None:
    placed = broker.place(limit("ad-look", "50000.00"))
    broker.place(limit("ad-other", "50000.00"))
    found = broker.get_order_by_client_id("ad-look")
    of_product = broker.get_order_by_client_id("ad-look", symbol=PRODUCT)
    with pytest.raises(OrderNotFound):
        broker.get_order_by_client_id("ad-never")
    assert found.broker_order_id == of_product.broker_order_id == placed.broker_order_id
    assert found.status is OrderStatus.NEW


def test_list_orders_oldest_first_in_pages_and_by_status(
    broker: CoinbaseBroker, exchange: PaperExchange
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    broker.place(market("ad-l0"))
    for n in range(1, 4):
        broker.place(limit(f"ad-l{n}", "50000.00"))
    exchange.wait_for(lambda: broker.list_orders(status="closed", after=start).items)
    first = broker.list_orders(after=start, page_size=3)
    rest = broker.list_orders(page_token=first.next_token)
    open_orders = broker.list_orders(status="open", after=start)
    closed = broker.list_orders(status="closed", after=start)

    ids = [o.client_order_id for o in first.items + rest.items]
    assert ids == ["ad-l0", "ad-l1", "ad-l2", "ad-l3"]
    assert rest.next_token is None
    assert [o.client_order_id for o in open_orders.items] == ["ad-l1", "ad-l2", "ad-l3"]
    assert [o.client_order_id for o in closed.items] == ["ad-l0"]


def test_cancel_and_its_refusals(broker: CoinbaseBroker, exchange: PaperExchange) -> None:
    resting = broker.place(limit("ad-c1", "50000.00"))
    filled = broker.place(market("ad-c2"))
    broker.cancel(resting.broker_order_id)
    broker.cancel(resting.broker_order_id)  # a cancel already done: what was asked
    exchange.wait_for(lambda: broker.get_order(filled.broker_order_id).status is OrderStatus.FILLED)
    with pytest.raises(OrderNotCancelable):
        broker.cancel(filled.broker_order_id)
    with pytest.raises(OrderNotFound):
        broker.cancel("no-such-order")
    with pytest.raises(OrderNotFound):
        broker.get_order("no-such-order")
    assert broker.get_order(resting.broker_order_id).status is OrderStatus.CANCELED


def test_positions_are_the_balances_and_products_name_their_currencies(
    broker: CoinbaseBroker, exchange: PaperExchange
) -> None:
    placed = broker.place(market("ad-p", qty="0.25"))
    exchange.wait_for(lambda: broker.get_order(placed.broker_order_id).status is OrderStatus.FILLED)
    positions = {p.symbol: p.quantity for p in broker.list_positions()}
    assert positions["BTC"] == Decimal("0.25")
    assert Decimal(0) < positions["USD"] < Decimal(100_000) - Decimal("0.25") * 59_000
    assert (broker.holding_of(PRODUCT), broker.quoted_in(PRODUCT)) == ("BTC", "USD")


def test_refusals_are_order_rejected_and_replace_is_not_offered(broker: CoinbaseBroker) -> None:
    with pytest.raises(OrderRejected, match="INSUFFICIENT_FUND"):
        broker.place(market("ad-big", qty="100"))
    with pytest.raises(OrderRejected, match="PREVIEW_INVALID_PRICE_PRECISION"):
        broker.place(limit("ad-tick", "50000.005"))
    with pytest.raises(OrderRejected, match="edits orders in place"):
        broker.replace("x", ReplaceOrderRequest("ad-r", Decimal(1), TimeInForce.GTC))


def test_a_key_the_exchange_does_not_know_is_refused(exchange: PaperExchange) -> None:
    stranger = CoinbaseBroker.from_url(
        exchange.base_url, key_name=KEY_NAME, private_key_pem=OTHER_PRIVATE
    )
    with pytest.raises(AuthenticationFailed, match="401"):
        stranger.list_positions()
    stranger.close()
    assert "PRIVATE" not in repr(stranger)


def test_reads_ride_out_429s_and_503s(broker: CoinbaseBroker, exchange: PaperExchange) -> None:
    exchange.set_faults(next_429=1, next_5xx=2)
    positions = broker.list_positions()
    assert any(p.symbol == "USD" for p in positions)
    assert exchange.requests()["faulted"] == 3


def test_a_placement_whose_answer_is_lost_is_found_by_its_client_id(
    broker: CoinbaseBroker, exchange: PaperExchange
) -> None:
    exchange.set_faults(
        next_lose_response=1, timeout_s=10, routes=["POST /api/v3/brokerage/orders"]
    )
    quick = CoinbaseBroker.from_url(
        exchange.base_url, key_name=KEY_NAME, private_key_pem=PRIVATE, timeout_s=0.5
    )
    with pytest.raises(AnswerLost):
        quick.place(market("ad-lost"))
    quick.close()
    found = broker.get_order_by_client_id("ad-lost")
    again = broker.place(market("ad-lost"))  # resent: Coinbase answers the same order
    assert again.broker_order_id == found.broker_order_id
    assert [o["client_order_id"] for o in exchange.truth()] == ["ad-lost"]


def test_a_burst_past_the_limit_per_second_is_rate_limited(exchange: PaperExchange) -> None:
    exchange.set_faults(coinbase_requests_per_s=2)
    adapter = CoinbaseBroker.from_url(
        exchange.base_url, key_name=KEY_NAME, private_key_pem=PRIVATE, max_attempts=1
    )
    adapter.list_positions()
    adapter.list_positions()
    with pytest.raises(RateLimited) as limited:
        adapter.list_positions()
    adapter.close()
    assert limited.value.retry_at is not None
