"""ccxt's Alpaca class, an Alpaca client written by others, trades crypto against the paper
exchange unchanged: only its URLs point here.

ccxt (``ccxt.alpaca``) covers Alpaca's crypto trading. Every call it makes on the Trading API
runs here: the clock, the crypto assets as markets, the account as a balance, market, limit,
stop-limit and notional orders (BTC/USD, bought and sold), one order, the open, closed and
all listings, a replace, a cancel, cancel-all and the FILL activities as trades; Alpaca's
refusals reach it as its own exceptions. Left out: the market data calls (tickers, trades,
bars, order books: ``data.alpaca.markets``, which the paper exchange does not serve) and the
crypto wallets (deposit addresses, deposits, withdrawals: Alpaca's Crypto Wallets API, which
Alpaca enables per account on request and which moves coins on chain).

The replace here changes a price only. The exchange refuses a new fractional ``qty`` (Alpaca:
"You can only patch full shares for now"), so ccxt's ``edit_order`` with an amount is refused
for any crypto order; Alpaca's docs leave open whether a crypto order's qty may change ("Qty
of equity fractional orders are not allowed to change"), and the stricter reading stays.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import ccxt
import httpx
import pytest

from brokers.paper.model import asset_id
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration

PAIR = "BTC/USD"
PRICE = Decimal("60000.00")


@pytest.fixture
def exchange(paper_exchange: PaperExchange) -> Iterator[Any]:
    """ccxt's Alpaca client as shipped (its own throttle included), its hosts this exchange:
    the Trading API's, and the market data's too, so that no call leaves the machine."""
    paper_exchange.freeze_market()
    paper_exchange.set_price(PAIR, PRICE)
    client = ccxt.alpaca({"apiKey": paper_exchange.key_id, "secret": paper_exchange.secret_key})
    client.urls["api"] = dict.fromkeys(client.urls["api"], paper_exchange.base_url)
    yield client
    client.session.close()


def ms_of(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp() * 1000)


def wait_status(exchange: Any, paper_exchange: PaperExchange, order_id: str, status: str) -> Any:
    """The order as ccxt fetches it once Alpaca's status is ``status``."""

    def reached() -> Any:
        order = exchange.fetch_order(order_id)
        return order if order["info"]["status"] == status else None

    return paper_exchange.wait_for(reached)


def bought(exchange: Any, paper_exchange: PaperExchange, amount: float = 0.01) -> Any:
    """A market buy of ``amount`` BTC, once filled."""
    placed = exchange.create_order(PAIR, "market", "buy", amount)
    return wait_status(exchange, paper_exchange, placed["id"], "filled")


def resting_buy(exchange: Any, paper_exchange: PaperExchange, price: float = 50000) -> Any:
    """A limit buy of 0.01 BTC below the market, once the venue works it (``new``)."""
    placed = exchange.create_order(PAIR, "limit", "buy", 0.01, price)
    return wait_status(exchange, paper_exchange, placed["id"], "new")


def position_qty(paper_exchange: PaperExchange) -> Decimal:
    answer = httpx.get(
        f"{paper_exchange.base_url}/v2/positions/BTCUSD", headers=paper_exchange.headers
    )
    answer.raise_for_status()
    return Decimal(answer.json()["qty"])


def test_ccxt_loads_the_crypto_assets_as_its_markets_and_reads_the_clock(
    exchange: Any, paper_exchange: PaperExchange
) -> None:
    before = ms_of(paper_exchange.clock()["timestamp"])
    now = exchange.fetch_time()
    after = ms_of(paper_exchange.clock()["timestamp"])
    markets = exchange.load_markets()

    assert before - 1 <= now <= after  # ccxt keeps milliseconds of the Eastern timestamp
    btc = markets[PAIR]
    assert (btc["id"], btc["base"], btc["quote"], btc["spot"], btc["active"]) == (
        PAIR,
        "BTC",
        "USD",
        True,
        True,
    )
    assert btc["info"]["id"] == asset_id(PAIR)
    assert btc["precision"] == {"amount": 1e-9, "price": 1.0}
    assert btc["limits"]["amount"]["min"] == pytest.approx(0.0000099)
    assert {m["info"]["class"] for m in markets.values()} == {"crypto"}
    assert {"ETH/USD", "BTC/USDT", "ETH/BTC"} <= set(markets)
    routes = paper_exchange.requests()["by_route"]
    assert (routes["GET /v2/clock"], routes["GET /v2/assets"]) == (1, 1)


def test_ccxt_buys_at_market_and_sees_the_fill_everywhere(
    exchange: Any, paper_exchange: PaperExchange
) -> None:
    placed = exchange.create_order(PAIR, "market", "buy", 0.01)
    filled = wait_status(exchange, paper_exchange, placed["id"], "filled")
    trades = exchange.fetch_my_trades(PAIR)
    balance = exchange.fetch_balance()
    account = paper_exchange.account()
    truth = paper_exchange.truth_order(placed["id"])

    assert placed["clientOrderId"].startswith("ccxt_")
    assert (placed["symbol"], placed["type"], placed["side"], placed["timeInForce"]) == (
        PAIR,
        "market",
        "buy",
        "gtc",
    )
    assert placed["status"] == "open"
    assert placed["info"]["asset_class"] == "crypto"
    assert (filled["status"], filled["amount"], filled["filled"], filled["remaining"]) == (
        "closed",
        0.01,
        0.01,
        0.0,
    )
    assert Decimal(filled["info"]["filled_avg_price"]) == Decimal(truth["filled_avg_price"])
    assert [t["id"] for t in trades] == sorted(f["id"] for f in truth["fills"])
    assert {(t["order"], t["symbol"], t["side"]) for t in trades} == {(placed["id"], PAIR, "buy")}
    assert sum(Decimal(t["info"]["qty"]) for t in trades) == Decimal("0.01")
    assert (balance["USD"]["free"], balance["USD"]["total"]) == (
        float(account["cash"]),
        float(account["equity"]),
    )
    assert float(account["cash"]) < 1_000_000
    # Less Alpaca's 0.25 % fee, taken per fill and rounded up: a buy filled in parts pays
    # a rounding step more per part than 0.000025 (what the exchange took is in the truth).
    fees = sum(Decimal(f["fee"]["amount"]) for f in truth["fills"])
    rounding = len(truth["fills"]) * Decimal("1e-9")
    assert Decimal("0.000025") <= fees <= Decimal("0.000025") + rounding
    assert position_qty(paper_exchange) == Decimal("0.01") - fees
    assert [o["id"] for o in exchange.fetch_closed_orders(PAIR)] == [placed["id"]]
    assert exchange.fetch_open_orders(PAIR) == []


def test_ccxt_sells_what_it_holds_and_alpacas_403s_refuse_the_rest(
    exchange: Any, paper_exchange: PaperExchange
) -> None:
    buy = bought(exchange, paper_exchange)
    sold = exchange.create_order(PAIR, "market", "sell", 0.005)
    wait_status(exchange, paper_exchange, sold["id"], "filled")
    # 25 bps in BTC, rounded up per fill: 0.000025 in one fill, up to 1e-9 more per part.
    fees = [f["fee"] for f in paper_exchange.truth_order(buy["id"])["fills"]]
    assert {fee["asset"] for fee in fees} == {"BTC"}
    fee = sum((Decimal(fee["amount"]) for fee in fees), Decimal(0))
    assert Decimal("0.000025") <= fee <= Decimal("0.000025") + Decimal("1e-9") * len(fees)

    with pytest.raises(ccxt.InsufficientFunds, match=r"insufficient balance for BTC"):
        exchange.create_order(PAIR, "market", "sell", 0.005)  # 0.004975 or so left
    with pytest.raises(ccxt.InsufficientFunds, match=r"minimal amount of order 10"):
        exchange.create_order(PAIR, "market", "buy", 0.0001)  # $6
    with pytest.raises(ccxt.InsufficientFunds, match=r"insufficient balance for USD"):
        exchange.create_order(PAIR, "market", "buy", 100)  # $6M on $1M of cash

    assert position_qty(paper_exchange) == Decimal("0.005") - fee
    assert [o["side"] for o in exchange.fetch_orders(PAIR)] == ["buy", "sell"]  # ccxt sorts by time
    assert [t["side"] for t in exchange.fetch_my_trades(PAIR)][-1] == "sell"


def test_ccxt_limit_orders_rest_then_fill_when_the_price_comes_to_them(
    exchange: Any, paper_exchange: PaperExchange
) -> None:
    bought(exchange, paper_exchange)
    buy = resting_buy(exchange, paper_exchange, price=59000)
    sell = exchange.create_order(PAIR, "limit", "sell", 0.005, 61000)
    wait_status(exchange, paper_exchange, sell["id"], "new")

    resting = exchange.fetch_open_orders(PAIR)
    paper_exchange.set_price(PAIR, "58500.00")
    buy_filled = wait_status(exchange, paper_exchange, buy["id"], "filled")
    paper_exchange.set_price(PAIR, "61500.00")
    sell_filled = wait_status(exchange, paper_exchange, sell["id"], "filled")

    assert {o["id"]: (o["type"], o["price"]) for o in resting} == {
        buy["id"]: ("limit", 59000.0),
        sell["id"]: ("limit", 61000.0),
    }
    assert buy_filled["average"] <= 59000
    assert sell_filled["average"] >= 61000
    trades = exchange.fetch_my_trades(PAIR)
    assert {t["order"] for t in trades} >= {buy["id"], sell["id"]}
    assert exchange.fetch_open_orders(PAIR) == []


def test_ccxt_edits_a_resting_limit_order_and_cancels_its_replacement(
    exchange: Any, paper_exchange: PaperExchange
) -> None:
    order = resting_buy(exchange, paper_exchange)

    edited = exchange.edit_order(order["id"], PAIR, "limit", "buy", None, 51000)
    old = wait_status(exchange, paper_exchange, order["id"], "replaced")
    wait_status(exchange, paper_exchange, edited["id"], "new")
    open_orders = exchange.fetch_open_orders(PAIR)
    exchange.cancel_order(edited["id"])  # Alpaca answers 204, no order: ccxt's is empty
    canceled = wait_status(exchange, paper_exchange, edited["id"], "canceled")

    assert edited["id"] != order["id"]
    assert edited["info"]["replaces"] == order["id"]
    assert (edited["price"], edited["amount"], edited["timeInForce"]) == (51000.0, 0.01, "gtc")
    assert edited["clientOrderId"].startswith("ccxt_")
    assert edited["clientOrderId"] != order["clientOrderId"]
    assert old["info"]["replaced_by"] == edited["id"]
    assert [o["id"] for o in open_orders] == [edited["id"]]
    assert canceled["status"] == "canceled"
    assert exchange.fetch_open_orders(PAIR) == []
    closed = {o["id"]: o["info"]["status"] for o in exchange.fetch_closed_orders(PAIR)}
    assert closed == {order["id"]: "replaced", edited["id"]: "canceled"}


def test_ccxt_places_stop_limit_and_notional_orders(
    exchange: Any, paper_exchange: PaperExchange
) -> None:
    stop = exchange.create_order(PAIR, "limit", "buy", 0.001, 61500, {"triggerPrice": 61000})
    wait_status(exchange, paper_exchange, stop["id"], "new")
    paper_exchange.set_price(PAIR, "61200.00")
    stop_filled = wait_status(exchange, paper_exchange, stop["id"], "filled")
    by_cost = exchange.create_market_buy_order_with_cost(PAIR, 20)
    cost_filled = wait_status(exchange, paper_exchange, by_cost["id"], "filled")
    sold_by_cost = exchange.create_market_sell_order_with_cost(PAIR, 15)
    sale_filled = wait_status(exchange, paper_exchange, sold_by_cost["id"], "filled")

    assert stop["info"]["type"] == "stop_limit"
    assert (stop["price"], stop["triggerPrice"]) == (61500.0, 61000.0)
    assert Decimal(stop_filled["info"]["filled_qty"]) == Decimal("0.001")
    assert (by_cost["info"]["notional"], by_cost["info"]["qty"], by_cost["amount"]) == (
        "20",
        None,
        None,
    )
    spent = Decimal(cost_filled["info"]["filled_qty"]) * Decimal(
        cost_filled["info"]["filled_avg_price"]
    )
    assert Decimal("19.99") <= spent <= Decimal(20)
    assert (sold_by_cost["side"], sold_by_cost["info"]["notional"]) == ("sell", "15")
    assert sale_filled["status"] == "closed"


def test_ccxt_cancels_all_open_orders_with_alpacas_multi_status(
    exchange: Any, paper_exchange: PaperExchange
) -> None:
    first = resting_buy(exchange, paper_exchange, price=50000)
    second = resting_buy(exchange, paper_exchange, price=49000)

    answers = exchange.cancel_all_orders()
    for order in (first, second):
        wait_status(exchange, paper_exchange, order["id"], "canceled")

    # Alpaca's 207 body is [{"id", "status": <HTTP status>}]; ccxt parses each as an order.
    assert sorted((a["id"], int(a["info"]["status"])) for a in answers) == sorted(
        [(first["id"], 200), (second["id"], 200)]
    )
    assert exchange.fetch_open_orders() == []


def test_ccxt_reads_alpacas_refusals_as_its_own_exceptions(
    exchange: Any, paper_exchange: PaperExchange
) -> None:
    filled = bought(exchange, paper_exchange)
    intruder = ccxt.alpaca({"apiKey": paper_exchange.key_id, "secret": "wrong"})
    intruder.urls["api"] = exchange.urls["api"]

    with pytest.raises(ccxt.PermissionDenied, match="request is not authorized"):
        intruder.fetch_balance()
    with pytest.raises(ccxt.InvalidOrder, match="order not found"):  # ccxt's class for 40410000
        exchange.fetch_order("00000000-0000-4000-8000-000000000000")
    with pytest.raises(ccxt.ExchangeError, match="order is not cancelable"):
        exchange.cancel_order(filled["id"])
    with pytest.raises(ccxt.ExchangeError, match="invalid crypto time_in_force"):
        exchange.create_order(PAIR, "market", "buy", 0.001, None, {"timeInForce": "day"})
    paper_exchange.set_faults(next_429=1)
    with pytest.raises(ccxt.RateLimitExceeded):
        exchange.fetch_balance()
    intruder.session.close()


@pytest.fixture
def two_buys(exchange: Any, paper_exchange: PaperExchange) -> tuple[Any, Any]:
    """Two market buys of 0.001 BTC, the second placed once the first has filled."""
    return bought(exchange, paper_exchange, 0.001), bought(exchange, paper_exchange, 0.001)


def test_ccxt_bounds_its_listings_by_time_and_count(
    exchange: Any, two_buys: tuple[Any, Any]
) -> None:
    first, second = two_buys
    since = ms_of(second["info"]["submitted_at"])

    newest = exchange.fetch_orders(PAIR, limit=1)
    later_orders = exchange.fetch_orders(PAIR, since=since - 1)
    later_trades = exchange.fetch_my_trades(PAIR, since=ms_of(second["info"]["filled_at"]) - 1)
    one_trade = exchange.fetch_my_trades(PAIR, limit=1)

    assert [o["id"] for o in newest] == [second["id"]]
    assert [o["id"] for o in later_orders] == [second["id"]]
    assert {t["order"] for t in later_trades} == {second["id"]}
    assert len(one_trade) == 1
    assert {o["id"] for o in exchange.fetch_orders(PAIR)} == {first["id"], second["id"]}


@pytest.mark.skip(
    reason="ccxt bug (4.5.64, alpaca.fetch_orders): params['until'] is sent as `endTime`, a "
    "parameter GET /v2/orders does not have (Alpaca's is `until`), so the bound is dropped"
)
def test_ccxt_bounds_its_order_listing_by_until(exchange: Any, two_buys: tuple[Any, Any]) -> None:
    first, second = two_buys

    earlier = exchange.fetch_orders(PAIR, params={"until": ms_of(second["info"]["submitted_at"])})

    assert [o["id"] for o in earlier] == [first["id"]]
