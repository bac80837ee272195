"""ccxt's Binance class, a Binance client written by others, trades spot against the paper
exchange unchanged: only its URLs point here.

The exchange (conftest.py) runs with one configured Binance key. ccxt is told to load spot markets
only and no currencies: futures (fapi/dapi), options (eapi) and the wallet's currency list
(sapi) are other Binance APIs the paper exchange does not serve.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from tests.brokers.binance.paper import BINANCE_KEY, BINANCE_SECRET
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration


def make_client(base_url: str, secret: str = BINANCE_SECRET) -> Any:
    """ccxt's binance as shipped, spot only, every API URL this exchange's /api/v3."""
    client = ccxt.binance({"apiKey": BINANCE_KEY, "secret": secret})
    client.options["fetchMarkets"] = {"types": ["spot"]}
    client.options["fetchCurrencies"] = False
    client.options["fetchMargins"] = False
    client.has["fetchCurrencies"] = False
    client.urls["api"] = dict.fromkeys(client.urls["api"], f"{base_url}/api/v3")
    return client


@pytest.fixture
def exchange(binance_exchange: PaperExchange) -> Iterator[Any]:
    binance_exchange.freeze_market()
    binance_exchange.set_price("binance:BTCUSDT", Decimal("60000"))
    client = make_client(binance_exchange.base_url)
    yield client
    client.session.close()


def test_ccxt_loads_the_spot_markets_with_their_filters(exchange: Any) -> None:
    markets = exchange.load_markets()
    btc = markets["BTC/USDT"]
    assert (btc["id"], btc["base"], btc["quote"], btc["spot"]) == ("BTCUSDT", "BTC", "USDT", True)
    assert btc["precision"]["amount"] == pytest.approx(0.00001)
    assert btc["limits"]["cost"]["min"] == pytest.approx(5)
    assert {"BTC/USDT", "ETH/USDT", "BNB/USDT", "ETH/BTC"} == set(markets)


def test_ccxt_buys_at_market_and_sees_trades_and_balance(
    exchange: Any, binance_exchange: PaperExchange
) -> None:
    placed = exchange.create_order("BTC/USDT", "market", "buy", 0.01)
    filled = binance_exchange.wait_for(
        lambda: (o := exchange.fetch_order(placed["id"], "BTC/USDT"))["status"] == "closed" and o
    )
    trades = exchange.fetch_my_trades("BTC/USDT")
    balance = exchange.fetch_balance()

    assert placed["id"] == "1"
    assert filled["filled"] == pytest.approx(0.01)
    assert {t["order"] for t in trades} == {"1"}
    assert sum(t["amount"] for t in trades) == pytest.approx(0.01)
    assert {t["fee"]["currency"] for t in trades} == {"BTC"}
    assert balance["BTC"]["free"] == pytest.approx(0.01 - 0.00001)
    assert balance["USDT"]["total"] == pytest.approx(100_000 - 600, abs=1)


def test_ccxt_places_fetches_and_cancels_a_limit_order(exchange: Any) -> None:
    placed = exchange.create_order("BTC/USDT", "limit", "buy", 0.01, 50000)
    open_orders = exchange.fetch_open_orders("BTC/USDT")
    canceled = exchange.cancel_order(placed["id"], "BTC/USDT")
    fetched = exchange.fetch_order(placed["id"], "BTC/USDT")
    every = exchange.fetch_orders("BTC/USDT")

    assert placed["status"] == "open"
    assert [o["id"] for o in open_orders] == [placed["id"]]
    assert canceled["status"] == "canceled"
    assert fetched["status"] == "canceled"
    assert fetched["clientOrderId"] == placed["clientOrderId"]
    assert [o["id"] for o in every] == [placed["id"]]


def test_binance_refusals_reach_ccxt_as_its_exceptions(
    exchange: Any, binance_exchange: PaperExchange
) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.create_order("BTC/USDT", "limit", "sell", 0.01, 70000)
    with pytest.raises(ccxt.OrderNotFound):
        exchange.fetch_order("999", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        exchange.cancel_order("999", "BTC/USDT")
    bad = make_client(binance_exchange.base_url, secret="wrong")
    with pytest.raises(ccxt.AuthenticationError):
        bad.fetch_balance()
    bad.session.close()
