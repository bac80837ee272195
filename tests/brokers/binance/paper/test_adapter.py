"""ordersync's BinanceBroker, every method, against the paper exchange's Binance dialect over
real HTTP (its signatures checked there), some with the exchange's faults on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from brokers.binance.adapter import BinanceBroker
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import FillReport, PlaceOrderRequest, ReplaceOrderRequest
from tests.brokers.binance.paper import BINANCE_KEY, BINANCE_SECRET
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration
SYMBOL = "BTCUSDT"


@pytest.fixture
def exchange(binance_exchange: PaperExchange) -> PaperExchange:
    binance_exchange.freeze_market()
    binance_exchange.set_price(f"binance:{SYMBOL}", Decimal("60000"))
    binance_exchange.set_faults(fill_delay_ms=[0, 0], partial_fill_probability=0.0)
    return binance_exchange


@pytest.fixture
def broker(exchange: PaperExchange) -> Iterator[BinanceBroker]:
    adapter = BinanceBroker.from_url(exchange.base_url, api_key=BINANCE_KEY,
                                     secret_key=BINANCE_SECRET, max_retry_wait_s=0.05)  # fmt: skip
    yield adapter
    adapter.close()


def market(cid: str, qty: str = "0.01", side: Side = Side.BUY) -> PlaceOrderRequest:
    return PlaceOrderRequest(cid, SYMBOL, side, Decimal(qty), time_in_force=TimeInForce.GTC)


def limit(cid: str, price: str, qty: str = "0.01") -> PlaceOrderRequest:
    return PlaceOrderRequest(
        cid, SYMBOL, Side.BUY, Decimal(qty), OrderType.LIMIT, TimeInForce.GTC, Decimal(price)
    )


def _all_fills(broker: BinanceBroker) -> list[FillReport]:
    found: list[FillReport] = []
    token: str | None = None
    while True:
        page = broker.list_fills(after=datetime.now(UTC) - timedelta(hours=1), page_token=token,
                                 symbols=[SYMBOL])  # fmt: skip
        found += page.items
        if (token := page.next_token) is None:
            return found


def test_a_market_buy_its_lookups_and_its_fills_with_the_commission_in_btc(
    broker: BinanceBroker, exchange: PaperExchange
) -> None:
    placed = broker.place(market("bn-ad-1"))

    assert placed.status is OrderStatus.FILLED
    assert placed.broker_order_id.startswith(f"{SYMBOL}:")
    assert broker.get_order(placed.broker_order_id).filled_quantity == Decimal("0.01")
    found = broker.get_order_by_client_id("bn-ad-1", symbol=SYMBOL)
    assert found.broker_order_id == placed.broker_order_id
    fills = [f for f in _all_fills(broker) if f.broker_order_id == placed.broker_order_id]
    truth = exchange.truth_order(exchange.truth()[-1]["id"])["binance"]["trades"]
    assert sorted(f.broker_fill_id for f in fills) == sorted(f"{SYMBOL}:{t['id']}" for t in truth)
    assert sum((f.fee_quantity for f in fills), Decimal(0)) == sum(
        Decimal(t["commission"]) for t in truth)  # fmt: skip
    assert {(p.symbol, p.quantity) for p in broker.list_positions() if p.symbol == "BTC"} == {
        ("BTC", Decimal("0.01") - sum(Decimal(t["commission"]) for t in truth))}  # fmt: skip


def test_an_unknown_client_id_is_not_found(broker: BinanceBroker) -> None:
    with pytest.raises(OrderNotFound):
        broker.get_order_by_client_id("bn-nobody", symbol=SYMBOL)


def test_open_and_all_orders_are_listed_and_a_cancel_ends_one(broker: BinanceBroker) -> None:
    resting = broker.place(limit("bn-ad-2", "30000"))
    broker.place(market("bn-ad-3"))

    opened = broker.list_orders(status="open", symbols=[SYMBOL])
    assert [o.broker_order_id for o in opened.items] == [resting.broker_order_id]
    listed = broker.list_orders(after=datetime.now(UTC) - timedelta(hours=1), symbols=[SYMBOL])
    assert [o.client_order_id for o in listed.items] == ["bn-ad-2", "bn-ad-3"]
    broker.cancel(resting.broker_order_id)
    assert broker.get_order(resting.broker_order_id).status is OrderStatus.CANCELED
    with pytest.raises(OrderNotFound):  # Binance: -2011 "Unknown order sent." once closed
        broker.cancel(resting.broker_order_id)


def test_a_replace_cancels_the_order_and_places_its_replacement(broker: BinanceBroker) -> None:
    """Binance's cancelReplace: the old order CANCELED, a new order id with our new client
    order id and the new terms, linked to the one it replaces."""
    resting = broker.place(limit("bn-ad-4", "30000"))

    new = broker.replace(resting.broker_order_id, ReplaceOrderRequest(
        "bn-ad-4b", Decimal("0.02"), TimeInForce.GTC, limit_price=Decimal("31000")))  # fmt: skip

    assert (new.client_order_id, new.quantity, new.limit_price) == (
        "bn-ad-4b", Decimal("0.02"), Decimal("31000"))  # fmt: skip
    assert new.replaces == resting.broker_order_id != new.broker_order_id
    assert broker.get_order(resting.broker_order_id).status is OrderStatus.CANCELED
    assert broker.get_order(new.broker_order_id).status is OrderStatus.NEW


def test_a_replace_of_a_closed_order_places_nothing(
    broker: BinanceBroker, exchange: PaperExchange
) -> None:
    done = broker.place(market("bn-ad-5"))
    with pytest.raises(OrderRejected, match="-2022"):
        broker.replace(done.broker_order_id, ReplaceOrderRequest(
            "bn-ad-5b", Decimal("0.01"), TimeInForce.GTC))  # fmt: skip
    assert [o["binance"]["clientOrderId"] for o in exchange.truth()] == ["bn-ad-5"]


def test_a_refusal_is_order_rejected_with_binances_reason(broker: BinanceBroker) -> None:
    with pytest.raises(OrderRejected, match="insufficient balance"):
        broker.place(market("bn-ad-6", qty="50"))  # 3M USDT of BTC


def test_a_key_the_exchange_does_not_know_is_refused(exchange: PaperExchange) -> None:
    stranger = BinanceBroker.from_url(exchange.base_url, api_key="bnUnknownKey99",
                                      secret_key="whatever")  # fmt: skip
    with pytest.raises(AuthenticationFailed):
        stranger.list_positions()
    stranger.close()


def test_reads_ride_out_503s(broker: BinanceBroker, exchange: PaperExchange) -> None:
    exchange.set_faults(next_5xx=2, routes=["GET /api/v3/account"])
    assert isinstance(broker.list_positions(), list)
    assert exchange.requests()["faulted"] == 2


def test_a_429_is_rate_limited_at_once_and_not_retried(
    broker: BinanceBroker, exchange: PaperExchange
) -> None:
    exchange.set_faults(next_429=1, routes=["GET /api/v3/account"])
    with pytest.raises(RateLimited):
        broker.list_positions()
    assert exchange.requests()["by_route"]["GET /api/v3/account"] == 1


def test_a_placement_whose_answer_is_lost_is_found_by_its_client_id(
    broker: BinanceBroker, exchange: PaperExchange
) -> None:
    exchange.set_faults(next_lose_response=1, timeout_s=1.5, routes=["POST /api/v3/order"])
    slow = BinanceBroker.from_url(exchange.base_url, api_key=BINANCE_KEY,
                                  secret_key=BINANCE_SECRET, timeout_s=0.5)  # fmt: skip
    with pytest.raises(AnswerLost):
        slow.place(market("bn-ad-7"))
    slow.close()
    found = broker.get_order_by_client_id("bn-ad-7", symbol=SYMBOL)
    assert found.status is OrderStatus.FILLED
    assert [o["binance"]["clientOrderId"] for o in exchange.truth()] == ["bn-ad-7"]
