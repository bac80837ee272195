"""Alpaca's own Python SDK (alpaca-py) trades against the paper exchange unchanged."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from datetime import date, datetime
from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AssetClass,
    AssetExchange,
    AssetStatus,
    OrderClass,
    OrderSide,
    OrderStatus,
    OrderType,
    QueryOrderStatus,
    TimeInForce,
    TradeEvent,
)
from alpaca.trading.models import Asset, Calendar, Order, Position, TradeUpdate
from alpaca.trading.requests import (
    GetAssetsRequest,
    GetCalendarRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)
from alpaca.trading.stream import TradingStream

from brokers.paper.model import asset_id
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration


@pytest.fixture
def client(paper_exchange: PaperExchange) -> TradingClient:
    return TradingClient(
        paper_exchange.key_id, paper_exchange.secret_key, url_override=paper_exchange.base_url
    )


def test_sdk_places_a_market_order_and_sees_it_filled(
    client: TradingClient, paper_exchange: PaperExchange
) -> None:
    order = client.submit_order(
        MarketOrderRequest(
            symbol="AAPL", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
            client_order_id="sdk-market-1",
        )
    )  # fmt: skip
    assert order.client_order_id == "sdk-market-1"
    paper_exchange.wait_for(lambda: client.get_order_by_id(order.id).status == OrderStatus.FILLED)

    filled = client.get_order_by_client_id("sdk-market-1")
    truth = paper_exchange.truth_order(str(order.id))
    assert str(filled.id) == truth["id"]
    assert Decimal(str(filled.filled_qty)) == Decimal(truth["filled_qty"]) == Decimal(3)
    assert Decimal(str(filled.filled_avg_price)) == Decimal(truth["filled_avg_price"])
    position = client.get_open_position("AAPL")
    assert Decimal(str(position.qty)) == Decimal(3)
    assert client.get_account().status is not None
    with pytest.raises(APIError) as missing:
        client.get_open_position("NOPE")
    assert missing.value.status_code == 404


def resting_msft(client: TradingClient, paper_exchange: PaperExchange) -> Order:
    """A limit buy of MSFT far below the (frozen) market."""
    paper_exchange.freeze_market()
    paper_exchange.set_price("MSFT", "400.00")
    order = client.submit_order(
        LimitOrderRequest(
            symbol="MSFT", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
            limit_price=100,
        )
    )  # fmt: skip
    assert isinstance(order, Order)
    return order


def test_sdk_lists_and_cancels_a_resting_limit_order(
    client: TradingClient, paper_exchange: PaperExchange
) -> None:
    order = resting_msft(client, paper_exchange)
    open_orders = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert [o.id for o in open_orders] == [order.id]

    client.cancel_order_by_id(order.id)
    paper_exchange.wait_for(lambda: client.get_order_by_id(order.id).status == OrderStatus.CANCELED)
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []


def test_sdk_replaces_an_order_and_the_old_one_ends_replaced(
    client: TradingClient, paper_exchange: PaperExchange
) -> None:
    order = resting_msft(client, paper_exchange)
    # An accepted order cannot be replaced: wait for the acknowledgement.
    paper_exchange.wait_for(lambda: client.get_order_by_id(order.id).status == OrderStatus.NEW)

    new = client.replace_order_by_id(order.id, ReplaceOrderRequest(limit_price=101.5, qty=2))

    assert new.id != order.id
    assert new.replaces == order.id
    assert new.status == OrderStatus.ACCEPTED
    assert Decimal(str(new.limit_price)) == Decimal("101.5")
    assert Decimal(str(new.qty)) == 2
    assert (new.symbol, new.side, new.time_in_force) == ("MSFT", OrderSide.BUY, TimeInForce.GTC)
    paper_exchange.wait_for(lambda: client.get_order_by_id(order.id).status == OrderStatus.REPLACED)
    old = client.get_order_by_id(order.id)
    assert old.replaced_by == new.id
    assert old.replaced_at is not None
    assert client.get_order_by_id(new.id).status == OrderStatus.NEW
    open_orders = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert [o.id for o in open_orders] == [new.id]
    with pytest.raises(APIError) as again:
        client.replace_order_by_id(order.id, ReplaceOrderRequest(qty=3))
    assert again.value.status_code == 422


def test_sdk_places_a_bracket_and_the_take_profit_filling_cancels_the_stop_loss(
    client: TradingClient, paper_exchange: PaperExchange
) -> None:
    paper_exchange.set_faults(partial_fill_probability=0.0)
    paper_exchange.freeze_market()
    paper_exchange.set_price("AAPL", "100.00")
    order = client.submit_order(
        MarketOrderRequest(
            symbol="AAPL", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
            order_class=OrderClass.BRACKET, take_profit=TakeProfitRequest(limit_price=110),
            stop_loss=StopLossRequest(stop_price=95),
        )
    )  # fmt: skip

    assert isinstance(order, Order)
    assert order.order_class == OrderClass.BRACKET
    assert order.legs is not None
    take_profit, stop_loss = order.legs
    assert (take_profit.status, stop_loss.status) == (OrderStatus.HELD, OrderStatus.HELD)
    assert (take_profit.type, stop_loss.type) == (OrderType.LIMIT, OrderType.STOP)
    assert take_profit.side == stop_loss.side == OrderSide.SELL
    assert Decimal(str(take_profit.limit_price)) == 110
    assert Decimal(str(stop_loss.stop_price)) == 95
    assert take_profit.order_class == stop_loss.order_class == OrderClass.BRACKET

    def activated() -> Order | None:
        found = client.get_order_by_id(order.id)
        assert isinstance(found, Order)
        working = found.status == OrderStatus.FILLED and found.legs is not None
        return found if working and found.legs and found.legs[0].status == OrderStatus.NEW else None

    entry = paper_exchange.wait_for(activated)
    assert entry.legs is not None
    assert entry.legs[1].status == OrderStatus.HELD  # watched while the take-profit works
    nested = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True))
    assert [o.id for o in nested] == [order.id]
    assert [leg.id for leg in nested[0].legs or []] == [take_profit.id, stop_loss.id]
    flat = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert {o.id for o in flat} == {take_profit.id}  # as at Alpaca, held is not open
    every = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    assert {take_profit.id, stop_loss.id} <= {o.id for o in every}

    paper_exchange.force_fill(str(take_profit.id), price="110.00")

    paper_exchange.wait_for(
        lambda: client.get_order_by_id(stop_loss.id).status == OrderStatus.CANCELED
    )
    assert client.get_order_by_id(take_profit.id).status == OrderStatus.FILLED
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []
    with pytest.raises(APIError) as flat_again:
        client.get_open_position("AAPL")
    assert flat_again.value.status_code == 404


def test_sdk_lists_a_resting_bracket_nested_and_cancels_it_with_its_legs(
    client: TradingClient, paper_exchange: PaperExchange
) -> None:
    paper_exchange.freeze_market()
    paper_exchange.set_price("MSFT", "400.00")
    order = client.submit_order(
        LimitOrderRequest(
            symbol="MSFT", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
            limit_price=300, order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=350),
            stop_loss=StopLossRequest(stop_price=250, limit_price=249),
        )
    )  # fmt: skip
    assert isinstance(order, Order)

    nested = client.get_orders(GetOrdersRequest(nested=True))
    assert [o.id for o in nested] == [order.id]
    assert [(leg.type, leg.status) for leg in nested[0].legs or []] == [
        (OrderType.LIMIT, OrderStatus.HELD),
        (OrderType.STOP_LIMIT, OrderStatus.HELD),
    ]

    client.cancel_order_by_id(order.id)

    def all_canceled() -> bool:
        found = client.get_order_by_id(order.id)
        assert isinstance(found, Order)
        group = [found, *(found.legs or [])]
        return len(group) == 3 and all(o.status == OrderStatus.CANCELED for o in group)

    paper_exchange.wait_for(all_canceled)


def test_sdk_sees_alpaca_errors(client: TradingClient, paper_exchange: PaperExchange) -> None:
    request = MarketOrderRequest(
        symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
        client_order_id="sdk-dup",
    )  # fmt: skip
    client.submit_order(request)
    with pytest.raises(APIError) as duplicate:
        client.submit_order(request)
    assert duplicate.value.status_code == 422
    assert "client_order_id must be unique" in str(duplicate.value)

    stranger = TradingClient("wrong", "wrong", url_override=paper_exchange.base_url)
    if paper_exchange.key_id:  # the fixture configures a key, so others are refused
        with pytest.raises(APIError) as refused:
            stranger.get_account()
        assert refused.value.status_code == 401


def test_sdk_reads_the_clock_and_each_accounts_own_figures(
    client: TradingClient, paper_exchange: PaperExchange
) -> None:
    paper_exchange.set_session(3600, 1800)
    clock = client.get_clock()
    other_key = paper_exchange.accounts[1][0]
    other = TradingClient(
        other_key, dict(paper_exchange.accounts)[other_key], url_override=paper_exchange.base_url
    )
    client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
            limit_price=10,
        )
    )  # fmt: skip

    assert clock.is_open is True
    assert (clock.next_close - clock.timestamp).total_seconds() == pytest.approx(3600, abs=5)
    assert (clock.next_open - clock.next_close).total_seconds() == 1800
    mine, theirs = client.get_account(), other.get_account()
    assert mine.id != theirs.id
    assert Decimal(str(mine.buying_power)) == Decimal(1_000_000) - 20
    assert Decimal(str(theirs.buying_power)) == Decimal(1_000_000)
    assert other.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) == []


def test_sdk_trading_stream_hears_the_fill_of_an_order_placed_through_the_sdk(
    client: TradingClient, paper_exchange: PaperExchange
) -> None:
    paper_exchange.set_faults(partial_fill_probability=0.0)
    stream = TradingStream(
        paper_exchange.key_id, paper_exchange.secret_key, url_override=paper_exchange.stream_url
    )
    updates: queue.Queue[TradeUpdate] = queue.Queue()

    async def on_update(update: TradeUpdate) -> None:
        updates.put(update)

    stream.subscribe_trade_updates(on_update)
    runner = threading.Thread(target=stream.run, name="trading-stream", daemon=True)
    runner.start()
    try:
        paper_exchange.wait_listening()
        order = client.submit_order(
            MarketOrderRequest(
                symbol="AAPL", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                client_order_id="sdk-stream-1",
            )
        )  # fmt: skip
        assert isinstance(order, Order)
        seen: list[TradeUpdate] = []
        deadline = time.monotonic() + 10
        while not (seen and seen[-1].event == TradeEvent.FILL):
            seen.append(updates.get(timeout=max(0.0, deadline - time.monotonic())))
    finally:
        stream.stop()  # takes effect at the SDK's next receive: a close wakes it at once
        paper_exchange.disconnect_streams(code=1000)
        runner.join(timeout=10)
    assert not runner.is_alive()

    assert [u.event for u in seen] == [TradeEvent.NEW, TradeEvent.FILL]
    fill = seen[-1]
    fetched = client.get_order_by_id(order.id)
    assert fill.order.id == order.id == fetched.id
    assert fill.order.status == OrderStatus.FILLED
    assert Decimal(str(fill.qty)) == Decimal(3)
    assert Decimal(str(fill.price)) == Decimal(str(fetched.filled_avg_price))
    assert Decimal(str(fill.position_qty)) == Decimal(3)
    assert fill.execution_id is not None
    assert fill.order.filled_at == fetched.filled_at


def test_sdk_reads_assets_and_the_market_calendar(client: TradingClient) -> None:
    crypto = client.get_all_assets(GetAssetsRequest(asset_class=AssetClass.CRYPTO))
    aapl = client.get_asset("AAPL")
    btc = client.get_asset("BTC/USD")
    days = client.get_calendar(GetCalendarRequest(start=date(2026, 11, 25), end=date(2026, 12, 1)))

    assert isinstance(crypto, list)
    assert {a.symbol for a in crypto} >= {"BTC/USD", "ETH/USD", "BTC/USDT", "ETH/BTC"}
    assert {(a.asset_class, a.exchange) for a in crypto} == {
        (AssetClass.CRYPTO, AssetExchange.CRYPTO)
    }
    assert isinstance(aapl, Asset)
    assert (aapl.symbol, aapl.asset_class, aapl.exchange, aapl.status) == (
        "AAPL",
        AssetClass.US_EQUITY,
        AssetExchange.NASDAQ,
        AssetStatus.ACTIVE,
    )
    assert aapl.id == uuid.UUID(asset_id("AAPL"))
    assert (aapl.tradable, aapl.fractionable, aapl.shortable) == (True, True, True)
    assert isinstance(btc, Asset)
    assert (btc.symbol, btc.asset_class, btc.shortable, btc.marginable) == (
        "BTC/USD",
        AssetClass.CRYPTO,
        False,
        False,
    )
    assert btc.min_trade_increment == pytest.approx(1e-9)
    assert btc.min_order_size is not None
    assert btc.min_order_size > 0
    assert client.get_asset("BTCUSD") == btc
    with pytest.raises(APIError) as missing:
        client.get_asset("NOT-A-TICKER")
    assert missing.value.status_code == 404

    assert isinstance(days, list)
    assert all(isinstance(day, Calendar) for day in days)
    assert [(day.open, day.close) for day in days] == [
        (datetime(2026, 11, 25, 9, 30), datetime(2026, 11, 25, 16, 0)),
        (datetime(2026, 11, 27, 9, 30), datetime(2026, 11, 27, 13, 0)),  # early close
        (datetime(2026, 11, 30, 9, 30), datetime(2026, 11, 30, 16, 0)),
        (datetime(2026, 12, 1, 9, 30), datetime(2026, 12, 1, 16, 0)),
    ]
    assert [day.date for day in days] == [
        date(2026, 11, 25), date(2026, 11, 27), date(2026, 11, 30), date(2026, 12, 1)
    ]  # fmt: skip


def test_sdk_trades_crypto_and_reads_the_position_net_of_the_fee(
    client: TradingClient, paper_exchange: PaperExchange
) -> None:
    paper_exchange.set_faults(partial_fill_probability=0.0)
    paper_exchange.freeze_market()
    paper_exchange.set_price("BTC/USD", "60000.00")  # 0.01 BTC is over Alpaca's $10 floor
    order = client.submit_order(
        MarketOrderRequest(
            symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC
        )
    )
    assert isinstance(order, Order)
    assert (order.symbol, order.asset_class) == ("BTC/USD", AssetClass.CRYPTO)
    paper_exchange.wait_for(lambda: client.get_order_by_id(order.id).status == OrderStatus.FILLED)

    position = client.get_open_position("BTCUSD")
    positions = client.get_all_positions()
    fee = paper_exchange.truth_order(str(order.id))["fills"][0]["fee"]

    assert isinstance(position, Position)
    assert (position.symbol, position.asset_class, position.exchange) == (
        "BTCUSD",
        AssetClass.CRYPTO,
        AssetExchange.CRYPTO,
    )
    assert position.asset_id == uuid.UUID(asset_id("BTC/USD"))
    assert (fee["asset"], Decimal(fee["amount"])) == ("BTC", Decimal("0.000025"))  # 0.25%
    assert Decimal(position.qty) == Decimal("0.01") - Decimal("0.000025")
    assert positions == [position]
    assert client.get_open_position("BTC/USD") == position
    with pytest.raises(APIError) as day:
        client.submit_order(
            MarketOrderRequest(
                symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        )
    assert day.value.status_code == 422
    assert day.value.code == 42210000
    assert "invalid crypto time_in_force" in str(day.value)
