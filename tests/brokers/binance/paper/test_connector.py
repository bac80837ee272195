"""Binance's official Python connector (binance-connector), unchanged but for its base URL,
against the paper exchange: the clock, exchangeInfo, orders placed, fetched, listed and
canceled, trades, the account, and Binance's refusals as its ClientError."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from binance.error import ClientError
from binance.spot import Spot

from tests.brokers.binance.paper import BINANCE_KEY, BINANCE_SECRET
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration


@pytest.fixture
def spot(binance_exchange: PaperExchange) -> Iterator[Spot]:
    binance_exchange.freeze_market()
    binance_exchange.set_price("binance:ETHUSDT", Decimal("3000"))
    client = Spot(BINANCE_KEY, BINANCE_SECRET, base_url=binance_exchange.base_url)
    yield client
    client.session.close()


def test_public_calls(spot: Spot) -> None:
    assert spot.ping() == {}
    assert isinstance(spot.time()["serverTime"], int)
    [symbol] = spot.exchange_info(symbol="ETHUSDT")["symbols"]
    assert symbol["baseAsset"] == "ETH"
    assert spot.exchange_info(symbols=["BTCUSDT", "ETHBTC"])["symbols"][1]["symbol"] == "ETHBTC"


def test_orders_trades_and_the_account(spot: Spot, binance_exchange: PaperExchange) -> None:
    bought = spot.new_order(symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.5")
    binance_exchange.wait_for(  # the engine fills within its fill delay (0-300 ms)
        lambda: spot.get_order("ETHUSDT", orderId=bought["orderId"])["status"] == "FILLED"
    )
    resting = spot.new_order(
        symbol="ETHUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.2",
        price="3500", newClientOrderId="conn-1",
    )  # fmt: skip
    open_orders = spot.get_open_orders("ETHUSDT")
    locked = {b["asset"]: b for b in spot.account()["balances"]}["ETH"]
    canceled = spot.cancel_order("ETHUSDT", origClientOrderId="conn-1")
    fetched = spot.get_order("ETHUSDT", orderId=bought["orderId"])
    listed = spot.get_orders("ETHUSDT")
    trades = spot.my_trades("ETHUSDT")

    assert bought["status"] in ("NEW", "FILLED")  # the fill may come a moment later
    assert (resting["orderId"], resting["clientOrderId"]) == (2, "conn-1")
    assert [o["orderId"] for o in open_orders] == [2]
    assert (locked["free"], locked["locked"]) == ("0.29950000", "0.20000000")  # 0.0005 fee
    assert canceled["status"] == "CANCELED"
    assert fetched["status"] == "FILLED"
    assert [o["status"] for o in listed] == ["FILLED", "CANCELED"]
    assert sum(Decimal(t["qty"]) for t in trades) == Decimal("0.5")
    assert {t["commissionAsset"] for t in trades} == {"ETH"}


def test_refusals_arrive_as_client_errors(spot: Spot, binance_exchange: PaperExchange) -> None:
    with pytest.raises(ClientError) as missing:
        spot.get_order("ETHUSDT", orderId=42)
    with pytest.raises(ClientError) as lot:
        spot.new_order(symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.00001")
    wrong = Spot(BINANCE_KEY, "wrong-secret", base_url=binance_exchange.base_url)
    with pytest.raises(ClientError) as signature:
        wrong.account()
    wrong.session.close()

    assert (missing.value.status_code, missing.value.error_code) == (400, -2013)
    assert lot.value.error_message == "Filter failure: MARKET_LOT_SIZE"
    assert signature.value.error_code == -1022
    assert "x-mbx-used-weight-1m" in {k.lower() for k in missing.value.header}
