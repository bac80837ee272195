"""Spot wallets: what orders lock, what fills move, the commission, and the listings'
paging (allOrders, myTrades)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.brokers.binance.paper import Signer, binance_client, make_binance_sim
from tests.brokers.paper import FakeClock, RecordingSleep

pytestmark = pytest.mark.anyio


def balances(account: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {row["asset"]: (row["free"], row["locked"]) for row in account["balances"]}


async def place(api: Signer, **params: str) -> Any:
    return await api.ok("POST", "/api/v3/order", symbol="BTCUSDT", **params)


async def test_the_start_balances_and_commission_rates(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        account = await api.ok("GET", "/api/v3/account")
    assert balances(account) == {
        "BNB": ("10.00000000", "0.00000000"),
        "USDT": ("100000.00000000", "0.00000000"),
    }
    assert account["commissionRates"]["taker"] == "0.00100000"
    assert account["takerCommission"] == 10


async def test_a_limit_buy_locks_quote_and_its_cancel_frees_it(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        placed = await place(
            api, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.5", price="80000"
        )
        locked = balances(await api.ok("GET", "/api/v3/account"))
        await api.ok("DELETE", "/api/v3/order", symbol="BTCUSDT", orderId=placed["orderId"])
        freed = balances(await api.ok("GET", "/api/v3/account"))
    assert locked["USDT"] == ("60000.00000000", "40000.00000000")
    assert freed["USDT"] == ("100000.00000000", "0.00000000")


async def test_fills_move_both_assets_less_the_commission_in_the_asset_received(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_binance_sim(clock, sleep)
    async with binance_client(sim, clock) as api:
        sim.engine.set_price("binance:BTCUSDT", Decimal("50000"))
        buy = await place(
            api, side="BUY", type="LIMIT", timeInForce="GTC", quantity="1", price="50000"
        )
        sell = await place(
            api, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.5", price="50000"
        )
        account = balances(await api.ok("GET", "/api/v3/account", omitZeroBalances="true"))
        trades = await api.ok("GET", "/api/v3/myTrades", symbol="BTCUSDT")
    assert buy["status"] == sell["status"] == "FILLED"
    assert [t["commissionAsset"] for t in trades] == ["BTC", "USDT"]
    bought, sold = (Decimal(t["quoteQty"]) for t in trades)
    fee = (sold / 1000).quantize(Decimal("1e-8"))
    assert [t["commission"] for t in trades] == ["0.00100000", f"{fee:.8f}"]
    assert [t["isBuyer"] for t in trades] == [True, False]
    assert [t["isMaker"] for t in trades] == [False, False]  # both marketable when placed
    assert account["BTC"] == ("0.49900000", "0.00000000")  # 1 - 0.001 fee - 0.5 sold
    usdt = Decimal(100_000) - bought + sold - fee  # the fills' prices: within a tick of 50000
    assert account["USDT"] == (f"{usdt:.8f}", "0.00000000")


async def test_with_bnb_burn_commissions_are_bnb_a_quarter_off_while_enough_is_held(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    """Binance's spotBNBBurn: the trade moves its assets whole and the commission, worth
    0.075 % of it, comes out of BNB at BNBUSDT's price; without enough BNB, the asset
    received pays the full commission."""
    wallet = (("USDT", Decimal(100_000)), ("BNB", Decimal("0.08")))
    sim = make_binance_sim(clock, sleep, binance_bnb_burn=True, balances=wallet)
    async with binance_client(sim, clock) as api:
        sim.engine.set_price("binance:BTCUSDT", Decimal("50000"))
        sim.engine.set_price("binance:BNBUSDT", Decimal("600"))
        await place(api, side="BUY", type="LIMIT", timeInForce="GTC", quantity="1",
                    price="50000")  # fmt: skip
        await place(api, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.5",
                    price="50000")  # fmt: skip
        account = balances(await api.ok("GET", "/api/v3/account", omitZeroBalances="true"))
        trades = await api.ok("GET", "/api/v3/myTrades", symbol="BTCUSDT")
    assert [t["commissionAsset"] for t in trades] == ["BNB", "USDT"]  # 0.08 BNB: once only
    bought, sold = (Decimal(t["quoteQty"]) for t in trades)
    in_bnb = (bought * Decimal("0.00075") / 600).quantize(Decimal("1e-8"))
    assert trades[0]["commission"] == f"{in_bnb:.8f}"
    assert account["BNB"] == (f"{Decimal('0.08') - in_bnb:.8f}", "0.00000000")
    assert account["BTC"][0] == "0.50000000"  # the buy's whole BTC; the sale's whole 0.5
    assert trades[1]["commission"] == f"{(sold / 1000).quantize(Decimal('1e-8')):.8f}"


async def test_a_quote_order_qty_market_buy_spends_at_most_its_quote(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_binance_sim(clock, sleep)
    async with binance_client(sim, clock) as api:
        sim.engine.set_price("binance:BTCUSDT", Decimal("40000"))
        body = await place(api, side="BUY", type="MARKET", quoteOrderQty="1000")
    assert body["origQuoteOrderQty"] == "1000.00000000"
    assert Decimal(body["cummulativeQuoteQty"]) <= Decimal(1000) + Decimal("0.25")
    assert Decimal(body["executedQty"]) == Decimal("0.025")


async def test_all_orders_pages_by_order_id_and_time(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        for _ in range(5):
            await place(
                api, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="80000"
            )
            clock.tick(1000)
        newest = await api.ok("GET", "/api/v3/allOrders", symbol="BTCUSDT", limit=2)
        from_three = await api.ok("GET", "/api/v3/allOrders", symbol="BTCUSDT", orderId=3)
        first = newest[0]["time"] - 3000
        by_time = await api.ok(
            "GET", "/api/v3/allOrders", symbol="BTCUSDT", startTime=first, limit=2
        )
        too_long = await api.send(
            "GET", "/api/v3/allOrders", symbol="BTCUSDT", startTime=0, endTime=86_400_001
        )
        too_many = await api.send("GET", "/api/v3/allOrders", symbol="BTCUSDT", limit=1001)
        no_symbol = await api.send("GET", "/api/v3/allOrders")
    assert [o["orderId"] for o in newest] == [4, 5]
    assert [o["orderId"] for o in from_three] == [3, 4, 5]
    assert [o["orderId"] for o in by_time] == [1, 2]
    assert too_long.json()["code"] == -1127
    assert too_many.status_code == 400
    assert no_symbol.json()["code"] == -1102


async def test_my_trades_pages_by_from_id_and_filters_by_order(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        orders = [await place(api, side="BUY", type="MARKET", quantity="0.01") for _ in range(3)]
        from_two = await api.ok("GET", "/api/v3/myTrades", symbol="BTCUSDT", fromId=2, limit=1)
        of_last = await api.ok(
            "GET", "/api/v3/myTrades", symbol="BTCUSDT", orderId=orders[2]["orderId"]
        )
        mixed = await api.send("GET", "/api/v3/myTrades", symbol="BTCUSDT", fromId=1, startTime=0)
    assert [t["id"] for t in from_two] == [2]
    assert [t["orderId"] for t in of_last] == [3]
    assert set(from_two[0]) >= {"quoteQty", "isMaker", "isBestMatch", "orderListId"}
    assert mixed.json()["code"] == -1128


async def test_open_orders_with_and_without_symbol(clock: FakeClock, sleep: RecordingSleep) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        await place(
            api, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="80000"
        )
        await api.ok(
            "POST", "/api/v3/order", symbol="ETHUSDT", side="BUY", type="LIMIT",
            timeInForce="GTC", quantity="0.1", price="2000",
        )  # fmt: skip
        btc = await api.send("GET", "/api/v3/openOrders", symbol="BTCUSDT")
        every = await api.send("GET", "/api/v3/openOrders")
    assert [o["symbol"] for o in btc.json()] == ["BTCUSDT"]
    assert [o["symbol"] for o in every.json()] == ["BTCUSDT", "ETHUSDT"]
    used_before = int(btc.headers["X-MBX-USED-WEIGHT-1M"])
    assert int(every.headers["X-MBX-USED-WEIGHT-1M"]) == used_before + 80


async def test_a_limit_order_that_rested_trades_as_maker(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_binance_sim(clock, sleep)
    async with binance_client(sim, clock) as api:
        placed = await place(
            api, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="80000"
        )
        sim.engine.set_price("binance:BTCUSDT", Decimal("79000"))
        [trade] = await api.ok("GET", "/api/v3/myTrades", symbol="BTCUSDT")
        account = balances(await api.ok("GET", "/api/v3/account"))
    assert (trade["orderId"], trade["isMaker"]) == (placed["orderId"], True)
    assert Decimal(trade["price"]) <= Decimal(80000)  # never worse than the limit
    assert account["BTC"] == ("0.00999000", "0.00000000")
