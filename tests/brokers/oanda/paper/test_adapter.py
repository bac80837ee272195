"""Every method of ordersync's OandaBroker against the paper exchange over real HTTP."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.errors import DuplicateClientOrderId, OrderNotFound, OrderRejected
from brokers.oanda.adapter import OandaBroker
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest, ReplaceOrderRequest
from tests.paper_exchange import PaperExchange


def _order(cid: str, units: str, side: Side = Side.BUY, kind: OrderType = OrderType.MARKET,
           price: str | None = None, symbol: str = "EUR_USD") -> PlaceOrderRequest:  # fmt: skip
    return PlaceOrderRequest(
        client_order_id=cid, symbol=symbol, side=side, order_type=kind,
        time_in_force=TimeInForce.GTC, quantity=Decimal(units),
        limit_price=None if kind is not OrderType.LIMIT or price is None else Decimal(price),
        stop_price=None if kind is not OrderType.STOP or price is None else Decimal(price),
    )  # fmt: skip


def test_home_currency_is_the_summary_currency(broker: OandaBroker) -> None:
    assert broker.home_currency() == "USD"


def test_market_order_fills_at_once_and_is_found_by_both_ids(broker: OandaBroker) -> None:
    placed = broker.place(_order("m-1", "1000"))
    assert placed.status is OrderStatus.FILLED
    assert placed.filled_quantity == Decimal(1000)
    assert placed.average_fill_price is not None
    assert abs(placed.average_fill_price - Decimal("1.08000")) <= Decimal("0.00001")  # slippage
    assert len(placed.fills) == 1
    by_id = broker.get_order(placed.broker_order_id)
    by_client = broker.get_order_by_client_id("m-1")
    assert by_id.status is by_client.status is OrderStatus.FILLED
    assert by_id.fills[0].broker_fill_id == placed.fills[0].broker_fill_id
    assert by_client.broker_order_id == placed.broker_order_id


def test_round_trip_positions_and_fills(broker: OandaBroker, oanda_exchange: PaperExchange) -> None:
    opening = broker.place(_order("rt-1", "1000"))
    assert [(p.symbol, p.quantity) for p in broker.list_positions()] == [("EUR_USD", Decimal(1000))]
    oanda_exchange.set_price("oanda:EUR_USD", "1.08250")
    closing = broker.place(_order("rt-2", "1000", Side.SELL))
    assert closing.status is OrderStatus.FILLED
    assert broker.list_positions() == []
    closed = closing.fills[0].raw["tradesClosed"]
    gain = (closing.fills[0].price - opening.fills[0].price) * 1000  # in USD, EUR_USD's quote
    assert [Decimal(t["realizedPL"]) for t in closed] == [gain]
    assert closed[0]["tradeID"] == opening.fills[0].raw["tradeOpened"]["tradeID"]
    page = broker.list_fills()
    assert [f.client_order_id for f in page.items] == ["rt-1", "rt-2"]
    assert page.next_token is None
    ids = [int(f.broker_fill_id) for f in page.items]
    assert ids == sorted(ids)
    after = broker.list_fills(page_token=page.items[0].broker_fill_id)
    assert [f.client_order_id for f in after.items] == ["rt-2"]


def test_limit_rests_replaces_and_cancels(broker: OandaBroker) -> None:
    resting = broker.place(_order("l-1", "500", kind=OrderType.LIMIT, price="1.07000"))
    assert resting.status is OrderStatus.NEW
    replaced = broker.replace(
        resting.broker_order_id,
        ReplaceOrderRequest(client_order_id="l-2", quantity=Decimal(600),
                            time_in_force=TimeInForce.GTC, limit_price=Decimal("1.06500")),
    )  # fmt: skip
    assert replaced.status is OrderStatus.NEW
    assert replaced.replaces == resting.broker_order_id
    old = broker.get_order(resting.broker_order_id)
    assert old.status is OrderStatus.REPLACED
    assert old.replaced_by == replaced.broker_order_id
    open_ids = [o.broker_order_id for o in broker.list_orders(status="open").items]
    assert open_ids == [replaced.broker_order_id]
    broker.cancel(replaced.broker_order_id)
    assert broker.get_order(replaced.broker_order_id).status is OrderStatus.CANCELED
    everything = broker.list_orders(status="all").items
    assert [o.client_order_id for o in everything] == ["l-1", "l-2"]
    with pytest.raises(OrderNotFound):
        broker.cancel(replaced.broker_order_id)


def test_resting_limit_fills_when_the_market_reaches_it(
    broker: OandaBroker, oanda_exchange: PaperExchange
) -> None:
    resting = broker.place(_order("lf-1", "200", Side.SELL, OrderType.LIMIT, "1.09000"))
    oanda_exchange.set_price("oanda:EUR_USD", "1.09100")
    found = oanda_exchange.wait_for(
        lambda: (r := broker.get_order(resting.broker_order_id)).status is OrderStatus.FILLED and r
    )
    assert found.filled_quantity == Decimal(200)
    assert [(p.symbol, p.quantity) for p in broker.list_positions()] == [("EUR_USD", Decimal(-200))]


def test_refusals(broker: OandaBroker) -> None:
    broker.place(_order("d-1", "10"))
    with pytest.raises(DuplicateClientOrderId) as duplicate:
        broker.place(_order("d-1", "10"))
    assert duplicate.value.client_order_id == "d-1"
    margin = broker.place(_order("big-1", "100000000"))  # 2.16M USD margin on 100k
    assert margin.status is OrderStatus.REJECTED
    assert margin.reject_reason == "INSUFFICIENT_MARGIN"
    with pytest.raises(OrderRejected):
        broker.place(_order("pre-1", "1.5"))  # refused by the adapter from /instruments
    with pytest.raises(OrderNotFound):
        broker.get_order_by_client_id("never-placed")


def test_get_trades_reads_oandas_trades_opened_by_fills(
    broker: OandaBroker, oanda_exchange: PaperExchange
) -> None:
    """A round trip's trade, named by its opening fill id, is CLOSED by the exit's fill with
    realizedPL as the fill stated it; a still open one is OPEN; an unknown id is left out."""
    bought = broker.place(_order("t-in", "1000"))
    oanda_exchange.set_price("oanda:EUR_USD", "1.08500")
    sold = broker.place(_order("t-out", "1000", Side.SELL))
    held = broker.place(_order("t-held", "10"))
    entry, exit_ = bought.fills[0], sold.fills[0]
    page = broker.get_trades([entry.broker_fill_id, held.fills[0].broker_fill_id, "99999"])
    assert page.malformed == ()
    closed, still_open = page.items
    assert closed.trade_id == entry.broker_fill_id
    assert closed.closed
    assert closed.state == "CLOSED"
    assert closed.closing_fill_ids == (exit_.broker_fill_id,)
    closes = exit_.raw["tradesClosed"]
    assert isinstance(closes, list)
    assert closed.realized_pnl == Decimal(closes[0]["realizedPL"]) > 0
    assert closed.initial_quantity == Decimal(1000)
    assert closed.pnl_quantum == Decimal("0.0001")
    assert closed.pnl_in_quote
    assert closed.closed_at == exit_.filled_at
    assert not still_open.closed
    assert still_open.closing_fill_ids == ()
    assert broker.get_trades([]).items == ()
