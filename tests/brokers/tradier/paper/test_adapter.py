"""ordersync's TradierBroker, every method, against the paper exchange's Tradier dialect
over real HTTP (its token checked there), some with the exchange's faults on. ``fill_cursor``
has nothing to continue: Tradier lists no fills, so none is ever given to it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from brokers.base import RateLimitInfo
from brokers.errors import (
    AnswerLost,
    AuthenticationFailed,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
    RateLimited,
)
from brokers.tradier.adapter import TradierBroker
from brokers.tradier.tags import client_order_id_of
from core.enums import Intent, OrderStatus, OrderType, Side, TimeInForce
from core.reports import OrderReport, PlaceOrderRequest, ReplaceOrderRequest
from tests.brokers.tradier.paper import ACCOUNT, OTHER_ACCOUNT, TOKEN
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration


@pytest.fixture
def exchange(tradier_exchange: PaperExchange) -> PaperExchange:
    tradier_exchange.set_faults(fill_delay_ms=[0, 0], partial_fill_probability=0.0)
    return tradier_exchange


@pytest.fixture
def seen() -> list[RateLimitInfo]:
    return []


@pytest.fixture
def broker(exchange: PaperExchange, seen: list[RateLimitInfo]) -> Iterator[TradierBroker]:
    adapter = TradierBroker.from_url(
        f"{exchange.base_url}/v1", account_number=ACCOUNT, access_token=TOKEN,
        max_retry_wait_s=0.05, observer=seen.append,
    )  # fmt: skip
    yield adapter
    adapter.close()


def market(cid: str, qty: str = "10", side: Side = Side.BUY) -> PlaceOrderRequest:
    return PlaceOrderRequest(cid, "AAPL", side, Decimal(qty))


def limit(cid: str, price: str = "1.00", qty: str = "10") -> PlaceOrderRequest:
    return PlaceOrderRequest(
        cid, "AAPL", Side.BUY, Decimal(qty), OrderType.LIMIT, TimeInForce.GTC, Decimal(price)
    )


def test_place_then_get_reads_the_fill_as_the_exchange_made_it(
    broker: TradierBroker, exchange: PaperExchange
) -> None:
    placed = broker.place(market("ad_1/x"))
    order = exchange.wait_for(
        lambda: (o := broker.get_order(placed.broker_order_id)).status is OrderStatus.FILLED and o
    )
    truth = exchange.truth()[0]

    assert (placed.status, placed.client_order_id) == (OrderStatus.PENDING_NEW, "ad_1/x")
    assert order.client_order_id == "ad_1/x"  # carried back from the tag
    assert client_order_id_of(truth["tradier"]["tag"]) == "ad_1/x"
    assert str(truth["tradier"]["id"]) == placed.broker_order_id
    assert order.filled_quantity == order.quantity == Decimal(10)
    assert order.average_fill_price == Decimal(truth["filled_avg_price"])


def test_get_order_by_client_id_lists_and_matches_the_tag(broker: TradierBroker) -> None:
    placed = broker.place(limit("ad-look"))
    broker.place(limit("ad-other"))
    found = broker.get_order_by_client_id("ad-look")
    assert found.broker_order_id == placed.broker_order_id
    with pytest.raises(OrderNotFound) as missing:
        broker.get_order_by_client_id("ad-never")
    assert missing.value.client_order_id == "ad-never"


def test_list_orders_by_status_and_window_and_pages(
    broker: TradierBroker, exchange: PaperExchange
) -> None:
    ids = [broker.place(limit(f"ad-l{n}")).broker_order_id for n in range(3)]
    exchange.wait_for(lambda: broker.get_order(ids[-1]).status is OrderStatus.NEW)
    broker.cancel(ids[0])
    exchange.wait_for(lambda: broker.get_order(ids[0]).status is OrderStatus.CANCELED)
    session = broker.list_orders(status="open")
    assert [o.broker_order_id for o in session.items] == ids[1:]
    first = broker.list_orders(after=datetime.now(UTC) - timedelta(hours=1), page_size=2)
    assert [o.broker_order_id for o in first.items] == ids[:2]
    assert first.next_token is not None
    rest = broker.list_orders(page_token=first.next_token, page_size=2)
    assert [o.broker_order_id for o in rest.items] == ids[2:]
    assert broker.list_orders(status="closed").items[0].status is OrderStatus.CANCELED


def test_cancel_and_the_refusals_of_a_cancel(
    broker: TradierBroker, exchange: PaperExchange
) -> None:
    placed = broker.place(limit("ad-c"))
    broker.cancel(placed.broker_order_id)
    exchange.wait_for(
        lambda: broker.get_order(placed.broker_order_id).status is OrderStatus.CANCELED
    )
    with pytest.raises(OrderNotCancelable) as twice:
        broker.cancel(placed.broker_order_id)
    assert twice.value.broker_order_id == placed.broker_order_id
    with pytest.raises(OrderNotFound):
        broker.cancel("424242")
    with pytest.raises(OrderNotFound):
        broker.get_order("424242")


def test_positions_equal_the_exchanges(broker: TradierBroker, exchange: PaperExchange) -> None:
    assert broker.list_positions() == []
    placed = broker.place(market("ad-p"))
    order = exchange.wait_for(
        lambda: (o := broker.get_order(placed.broker_order_id)).status is OrderStatus.FILLED and o
    )
    (position,) = broker.list_positions()
    assert (position.symbol, position.quantity) == ("AAPL", Decimal(10))
    assert position.average_entry_price == order.average_fill_price
    # Positions are per symbol, so a holding is the symbol itself, paid in no holding.
    assert (broker.holding_of("AAPL"), broker.quoted_in("AAPL")) == ("AAPL", None)


def test_an_option_is_opened_and_closed_by_intent_and_held_at_its_per_share_price(
    broker: TradierBroker, exchange: PaperExchange
) -> None:
    call = "AAPL300118C00200000"
    exchange.set_price(call, "2.40")

    def filled(cid: str, side: Side, intent: Intent) -> OrderReport:
        placed = broker.place(PlaceOrderRequest(cid, call, side, Decimal(3), intent=intent))
        return exchange.wait_for(
            lambda: (
                (o := broker.get_order(placed.broker_order_id)).status is OrderStatus.FILLED and o
            )
        )

    opened = filled("ad-opt-in", Side.BUY, Intent.ENTRY)
    assert (opened.symbol, opened.side, opened.client_order_id) == (call, Side.BUY, "ad-opt-in")
    assert opened.raw["side"] == "buy_to_open"
    (position,) = broker.list_positions()
    assert (position.symbol, position.quantity) == (call, Decimal(3))
    assert position.average_entry_price == opened.average_fill_price  # per share
    closed = filled("ad-opt-out", Side.SELL, Intent.EXIT)
    assert closed.raw["side"] == "sell_to_close"
    assert broker.list_positions() == []


def test_refusals_replace_and_what_tradier_lists_not(broker: TradierBroker) -> None:
    with pytest.raises(OrderRejected) as selling:
        broker.place(market("ad-sell", side=Side.SELL))
    assert selling.value.client_order_id == "ad-sell"
    assert selling.value.status_code == 400
    with pytest.raises(OrderRejected):
        broker.replace("1", ReplaceOrderRequest("ad-r", Decimal(1), TimeInForce.DAY))
    assert broker.list_fills().items == ()
    assert broker.lists_fills is False
    assert broker.list_fees().items == ()
    assert broker.lists_fees is False


def test_a_lost_placement_answer_is_found_by_its_tag_and_placed_once(
    broker: TradierBroker, exchange: PaperExchange
) -> None:
    exchange.set_faults(next_lose_response=1, timeout_s=0)
    with pytest.raises(AnswerLost) as lost:
        broker.place(limit("ad-lost"))
    assert lost.value.client_order_id == "ad-lost"
    found = broker.get_order_by_client_id("ad-lost")
    assert found.client_order_id == "ad-lost"
    assert len(exchange.truth()) == 1
    assert str(exchange.truth()[0]["tradier"]["id"]) == found.broker_order_id


def test_reads_are_retried_through_429_and_5xx_and_report_the_rate_limit(
    broker: TradierBroker, exchange: PaperExchange, seen: list[RateLimitInfo]
) -> None:
    placed = broker.place(limit("ad-retry"))
    exchange.set_faults(next_429=1, next_5xx=1)
    assert broker.get_order(placed.broker_order_id).client_order_id == "ad-retry"
    assert any(info.status_code == 429 for info in seen)
    last = seen[-1]
    assert (last.limit, last.status_code) == (120, 200)
    assert last.reset_at is not None
    assert last.reset_at > datetime.now(UTC)


def test_an_exhausted_bucket_raises_rate_limited(
    broker: TradierBroker, exchange: PaperExchange
) -> None:
    exchange.set_faults(tradier_reads_per_min=1)
    broker.list_positions()
    with pytest.raises(RateLimited):
        broker.list_positions()


def test_a_wrong_token_or_account_is_authentication_failed(exchange: PaperExchange) -> None:
    for number, token in ((ACCOUNT, "wrong"), (OTHER_ACCOUNT, TOKEN)):
        adapter = TradierBroker.from_url(
            exchange.base_url, account_number=number, access_token=token
        )
        with pytest.raises(AuthenticationFailed) as refused:
            adapter.list_positions()
        adapter.close()
        assert refused.value.status_code == 401
        assert token not in repr(adapter)
        assert token not in str(refused.value)
