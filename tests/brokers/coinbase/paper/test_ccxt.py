"""ccxt's Coinbase class (Advanced Trade, a CDP key), a Coinbase client written by others,
trades against the paper exchange unchanged: only its URL points here, over HTTPS (ccxt signs
``uri`` as the URL without ``https://``, so plain HTTP would name another request).

ccxt gets the key as Coinbase hands it out: the key name, and the private key as SEC1 PEM
(``BEGIN EC PRIVATE KEY``, the only EC form ccxt reads). It signs each request with the
legacy issuer ``coinbase-cloud``. Told two options, it calls nothing but Advanced Trade:
``fetchCurrencies`` off (ccxt would read Coinbase's retail ``/v2/currencies`` and
``/v2/exchange-rates``) and ``fetchBalance`` from ``/api/v3/brokerage/accounts`` (its
default is the retail ``/v2/accounts``); ``fetchTime`` reads ``/api/v3/brokerage/time``.
Loading the markets reads the public product list three times (spot, then futures and
perpetuals, of which the paper exchange lists none) and the transaction summary's fee tier.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.brokers.coinbase.paper import KEY_NAME, OTHER_PRIVATE, PRIVATE
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration

PAIR = "BTC/USD"
START_USD = Decimal(100_000)


def sec1(private_pem: str) -> str:
    """The private key as Coinbase's portal gives it: SEC1 PEM."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def make_client(base_url: str, private_pem: str = PRIVATE) -> Any:
    """ccxt's coinbase as shipped, its one REST URL this exchange, Advanced Trade only; it
    trusts the environment so that requests reads the test's CA from REQUESTS_CA_BUNDLE."""
    client = ccxt.coinbase(
        {"apiKey": KEY_NAME, "secret": sec1(private_pem), "requests_trust_env": True}
    )
    client.urls["api"] = {"rest": base_url}
    client.has["fetchCurrencies"] = False
    client.options["fetchBalance"] = "v3PrivateGetBrokerageAccounts"
    client.options["fetchTime"] = "v3PublicGetBrokerageTime"
    return client


@pytest.fixture
def exchange(https_exchange: PaperExchange) -> Iterator[Any]:
    client = make_client(https_exchange.base_url)
    yield client
    client.session.close()


def ms_of(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp() * 1000)


def dec(number: float | str) -> Decimal:
    """A number ccxt parsed (a float, or a string it left alone) as the decimal it wrote."""
    return Decimal(str(number))


def truth(https_exchange: PaperExchange, order_id: str) -> dict[str, Any]:
    """The exchange's own Coinbase view of an order, its fills included."""
    view: dict[str, Any] = https_exchange.truth_order(order_id)["coinbase"]
    return view


def settled(exchange: Any, https_exchange: PaperExchange, order_id: str, status: str) -> Any:
    """The order as ccxt fetches it once ccxt's status is ``status``."""
    return https_exchange.wait_for(
        lambda: (o := exchange.fetch_order(order_id, PAIR))["status"] == status and o
    )


def bought(exchange: Any, https_exchange: PaperExchange) -> Any:
    """A market buy of $120 (ccxt spends amount x price), once filled."""
    placed = exchange.create_order(PAIR, "market", "buy", 0.002, 60000)
    return settled(exchange, https_exchange, placed["id"], "closed")


def test_ccxt_loads_the_products_as_markets_with_the_fee_tier(
    exchange: Any, https_exchange: PaperExchange
) -> None:
    before = https_exchange.clock()["timestamp"]
    now_ms = exchange.fetch_time()
    markets = exchange.load_markets()
    after = https_exchange.clock()["timestamp"]

    assert set(markets) == {"BTC/USD", "ETH/USD", "SOL/USD", "ETH/BTC"}
    btc = markets[PAIR]
    assert (btc["id"], btc["base"], btc["quote"], btc["spot"], btc["active"]) == (
        "BTC-USD", "BTC", "USD", True, True,
    )  # fmt: skip
    assert btc["precision"] == {"amount": 1e-8, "price": 0.01}
    assert (btc["limits"]["amount"]["min"], btc["limits"]["amount"]["max"]) == (1e-8, 3400)
    assert btc["limits"]["cost"]["min"] == 1
    assert (btc["taker"], btc["maker"]) == (0.006, 0.004)  # the exchange's 60 and 40 bps
    assert markets["ETH/BTC"]["precision"]["price"] == 0.00001
    assert ms_of(before) // 1000 * 1000 <= now_ms <= ms_of(after)  # to the second
    routes = https_exchange.requests()["by_route"]
    assert routes == {
        "GET /api/v3/brokerage/time": 1,
        "GET /api/v3/brokerage/market/products": 3,
        "GET /api/v3/brokerage/transaction_summary": 1,
    }


def test_ccxt_buys_and_sells_at_market_and_sees_the_fills_fees_and_balance(
    exchange: Any, https_exchange: PaperExchange
) -> None:
    placed = exchange.create_order(PAIR, "market", "buy", 0.002, 60000)
    buy = settled(exchange, https_exchange, placed["id"], "closed")
    sold = exchange.create_order(PAIR, "market", "sell", 0.001)
    sale = settled(exchange, https_exchange, sold["id"], "closed")
    trades = exchange.fetch_my_trades(PAIR)
    balance = exchange.fetch_balance()
    bought_truth, sold_truth = truth(https_exchange, buy["id"]), truth(https_exchange, sale["id"])

    assert placed["clientOrderId"].startswith("ccxt-")
    assert bought_truth["client_order_id"] == placed["clientOrderId"]
    assert bought_truth["order_configuration"] == {"market_market_ioc": {"quote_size": "120"}}
    assert sold_truth["order_configuration"] == {"market_market_ioc": {"base_size": "0.001"}}
    for order, seen in ((buy, bought_truth), (sale, sold_truth)):
        assert (order["type"], order["timeInForce"], seen["status"]) == ("market", "IOC", "FILLED")
        assert dec(order["filled"]) == Decimal(seen["filled_size"])
        assert dec(order["fee"]["cost"]) == Decimal(seen["total_fees"])
        assert order["fee"]["currency"] == "USD"
        assert order["average"] == float(seen["average_filled_price"])  # ccxt keeps a float
    assert (buy["side"], sale["side"], dec(sale["amount"])) == ("buy", "sell", Decimal("0.001"))

    fills = bought_truth["fills"] + sold_truth["fills"]
    assert sorted(t["id"] for t in trades) == sorted(f["trade_id"] for f in fills)
    by_trade = {f["trade_id"]: f for f in fills}
    for trade in trades:
        fill = by_trade[trade["id"]]
        assert (trade["order"], trade["side"]) == (fill["order_id"], fill["side"].lower())
        assert (dec(trade["amount"]), dec(trade["price"])) == (
            Decimal(fill["size"]), Decimal(fill["price"]),
        )  # fmt: skip
        assert trade["fee"] == {"cost": float(fill["commission"]), "currency": "USD"}
        assert trade["takerOrMaker"] == "taker"

    held = Decimal(bought_truth["filled_size"]) - Decimal("0.001")
    spent = Decimal(bought_truth["total_value_after_fees"])
    received = Decimal(sold_truth["total_value_after_fees"])
    assert (dec(balance["BTC"]["free"]), dec(balance["BTC"]["used"])) == (held, 0)
    assert dec(balance["USD"]["total"]) == START_USD - spent + received


def test_ccxt_rests_limit_orders_lists_cancels_and_sees_the_maker_fill(
    exchange: Any, https_exchange: PaperExchange
) -> None:
    first = bought(exchange, https_exchange)
    buy = exchange.create_order(PAIR, "limit", "buy", 0.001, 59000)
    sell = exchange.create_order(PAIR, "limit", "sell", 0.001, 61000)
    resting = exchange.fetch_open_orders(PAIR)
    balance = exchange.fetch_balance()
    canceled = exchange.cancel_order(sell["id"], PAIR)
    fetched = exchange.fetch_order(sell["id"], PAIR)
    https_exchange.set_price("coinbase:BTC-USD", "58500")
    filled = settled(exchange, https_exchange, buy["id"], "closed")
    closed = exchange.fetch_closed_orders(PAIR)
    every = exchange.fetch_orders(PAIR)
    withdrawn = exchange.fetch_canceled_orders(PAIR)
    trades = exchange.fetch_my_trades(PAIR)
    buy_truth, sell_truth = truth(https_exchange, buy["id"]), truth(https_exchange, sell["id"])

    assert {o["id"]: (o["type"], o["side"], o["price"], o["amount"]) for o in resting} == {
        buy["id"]: ("limit", "buy", 59000, 0.001),
        sell["id"]: ("limit", "sell", 61000, 0.001),
    }
    assert {o["status"] for o in resting} == {"open"}
    assert buy_truth["order_configuration"] == {
        "limit_limit_gtc": {"base_size": "0.001", "limit_price": "59000", "post_only": False}
    }
    # The buy holds its cost and the taker commission; the sell holds its BTC.
    assert dec(balance["USD"]["used"]) == Decimal("0.001") * 59000 * Decimal("1.006")
    assert dec(balance["BTC"]["used"]) == Decimal("0.001")
    assert canceled["id"] == sell["id"]
    assert (fetched["status"], sell_truth["status"]) == ("canceled", "CANCELLED")
    assert dec(fetched["filled"]) == 0
    assert (filled["status"], buy_truth["status"]) == ("closed", "FILLED")
    assert dec(filled["filled"]) == Decimal(buy_truth["filled_size"]) == Decimal("0.001")
    assert dec(filled["fee"]["cost"]) == Decimal(buy_truth["total_fees"])
    assert [o["id"] for o in closed] == [first["id"], buy["id"]]  # FILLED only, oldest first
    assert {o["id"] for o in every} == {first["id"], buy["id"], sell["id"]}
    assert [(o["id"], o["status"]) for o in withdrawn] == [(sell["id"], "canceled")]
    maker = [t for t in trades if t["order"] == buy["id"]]
    assert sorted(t["id"] for t in maker) == sorted(f["trade_id"] for f in buy_truth["fills"])
    assert {t["takerOrMaker"] for t in maker} == {"maker"}
    commission = sum((dec(t["fee"]["cost"]) for t in maker), Decimal(0))
    assert commission == Decimal(buy_truth["total_fees"])
    value = sum((dec(t["amount"]) * dec(t["price"]) for t in maker), Decimal(0))
    assert commission == pytest.approx(value * Decimal("0.004"), abs=Decimal("1e-9"))
    assert exchange.fetch_open_orders(PAIR) == []


def test_coinbase_s_refusals_reach_ccxt_as_its_exceptions(
    exchange: Any, https_exchange: PaperExchange
) -> None:
    filled = bought(exchange, https_exchange)
    with pytest.raises(ccxt.InsufficientFunds, match="INSUFFICIENT_FUND"):
        exchange.create_order(PAIR, "market", "buy", 100, 60000)  # $6M on $100k
    with pytest.raises(ccxt.InsufficientFunds, match="Insufficient balance in source account"):
        exchange.create_order(PAIR, "limit", "sell", 1, 70000)  # 1 BTC, holding 0.002
    with pytest.raises(ccxt.BadRequest, match="cancelOrders"):  # success: false for it
        exchange.cancel_order(filled["id"], PAIR)
    with pytest.raises(ccxt.ExchangeError, match="order with this orderID was not found"):
        exchange.fetch_order("00000000-0000-4000-8000-000000000000", PAIR)
    stranger = make_client(https_exchange.base_url, OTHER_PRIVATE)  # the key's name, another key
    with pytest.raises(ccxt.AuthenticationError):
        stranger.fetch_balance()
    stranger.session.close()
    assert [o["id"] for o in exchange.fetch_orders(PAIR)] == [filled["id"]]


@pytest.mark.skip(
    reason="ccxt bug (4.5.64, coinbase.handle_errors): the broad exceptions are matched "
    "against the body's `error` code, not its message, and the Python build's entry reads "
    "'order with self orderID was not found' (its transpiler turned `this` into `self`), so "
    "Coinbase's 404 for a missing order reaches ccxt as a bare ExchangeError"
)
def test_ccxt_reads_a_missing_order_as_order_not_found(exchange: Any) -> None:
    with pytest.raises(ccxt.OrderNotFound):
        exchange.fetch_order("00000000-0000-4000-8000-000000000000", PAIR)


@pytest.mark.skip(
    reason="ccxt bug (4.5.64, coinbase.parse_order): it looks the order's unified symbol up "
    "as an exchange market id (safe_market('BTC/USD')), finds no market, and so leaves the "
    "fee's currency None whenever fetch_order or a listing is called without a symbol"
)
def test_ccxt_names_the_fee_currency_of_an_order_fetched_without_a_symbol(
    exchange: Any, https_exchange: PaperExchange
) -> None:
    filled = bought(exchange, https_exchange)

    assert exchange.fetch_order(filled["id"])["fee"]["currency"] == "USD"
