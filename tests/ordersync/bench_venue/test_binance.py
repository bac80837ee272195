"""The benchmark's Binance venue: what its sender sends passes the dialect's own filters,
its truth reads in ordersync's terms, its requests are weighed as the exchange weighs them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from brokers.binance.paper.symbols import PAIRS
from core.enums import OrderStatus
from ordersync.bench import LocalOrder, compare
from ordersync.bench_venue.binance import BinanceVenue, balances, terms
from tests.ordersync.bench_venue import (
    LIMIT_FACTORS,
    control_api,
    limit_prices,
    recorded_under,
    round_trips,
)
from tests.ordersync.bench_venue import sender_orders as send_at

FEE_BPS = "10"


def sender_orders(mix: str, n: int, prices: dict[str, str]) -> list[dict[str, Any]]:
    """What the sender sends for ``n`` orders of ``mix`` at the Binance venue."""
    with control_api(prices, {"binance_fee_bps": FEE_BPS}) as sim:
        return send_at(BinanceVenue(), sim, mix, n)


@pytest.mark.parametrize("mix", ["market", "mixed", "roundtrip"])
def test_every_order_the_sender_makes_passes_its_pairs_filters(mix: str) -> None:
    """LOT_SIZE / MARKET_LOT_SIZE steps, the PRICE_FILTER tick and NOTIONAL, as the paper
    exchange checks them, at the price the market starts from."""
    sent = [kw for kw in sender_orders(mix, 200, {}) if kw["task"] == "ordersync.place_order"]
    assert {kw["symbol"] for kw in sent} == set(PAIRS)
    for kwargs in sent:
        pair = PAIRS[kwargs["symbol"]]
        price = Decimal(kwargs["limit_price"]) if "limit_price" in kwargs else None
        kind = "LIMIT" if price is not None else "MARKET"
        pair.check(kind, Decimal(kwargs["quantity"]), price, pair.price)  # raises if refused


def test_the_sender_uses_the_exchanges_price_once_a_pair_has_traded() -> None:
    found = limit_prices(sender_orders("mixed", 50, {"binance:BTCUSDT": "45000.00"}), "BTCUSDT")
    assert found
    assert found <= {Decimal(45000) * factor for factor in LIMIT_FACTORS}


def test_a_round_trips_exit_sells_what_the_buy_left_after_its_commission() -> None:
    """Binance keeps a buy's commission (10 bps here) out of the asset bought: the exit is
    the rest, down to the step, never more than what is held."""
    trips = round_trips(sender_orders("roundtrip", 40, {}))
    assert len(trips) == 20
    for entry, exit_ in trips:
        bought, sold = Decimal(entry["quantity"]), Decimal(exit_["quantity"])
        step = PAIRS[entry["symbol"]].step
        assert sold <= bought * (1 - Decimal(FEE_BPS) / 10_000)
        assert sold > bought * (1 - Decimal(FEE_BPS) / 10_000) - step
        assert sold % step == 0


def test_the_exchange_is_funded_in_every_asset_its_pairs_trade() -> None:
    funded = dict(entry.split(":") for entry in balances().split(","))
    assets = {pair.base for pair in PAIRS.values()} | {pair.quote for pair in PAIRS.values()}
    assert set(funded) == assets
    assert Decimal(funded["USDT"]) == 1_000_000
    assert Decimal(funded["BTC"]) * PAIRS["BTCUSDT"].price >= 900_000


def test_quantities_start_above_the_notional_minimum_with_room_for_a_resting_limit() -> None:
    for pair in PAIRS.values():
        found = terms(pair, pair.price)
        smallest = found.step * found.min_steps
        assert smallest * pair.price / 2 >= pair.min_notional  # a buy resting at half price
        assert found.step * found.max_steps <= pair.market_max_qty


def binance_truth(cid: str, status: str, trades: list[tuple[int, str, str]],
                  symbol: str = "BTCUSDT", order_id: int = 7) -> dict[str, Any]:  # fmt: skip
    """A ``/_sim/truth`` order placed through /api/v3: the engine's view and Binance's."""
    executed = sum((Decimal(q) for _, q, _ in trades), Decimal(0))
    return {
        "id": "engine-uuid", "client_order_id": "engine-client-uuid", "status": "filled",
        "qty": "1", "filled_qty": str(executed), "filled_avg_price": None, "fills": [],
        "created_at": "2026-01-05T15:30:00Z",
        "binance": {
            "symbol": symbol, "orderId": order_id, "clientOrderId": cid, "status": status,
            "origQty": "0.01000000", "executedQty": f"{executed:.8f}",
            "cummulativeQuoteQty": "0.00000000", "time": 1767627000000,
            "trades": [{"symbol": symbol, "id": i, "orderId": order_id, "qty": q, "price": p}
                       for i, q, p in trades],
        },
    }  # fmt: skip


def test_the_truth_reads_binances_part_in_ordersyncs_terms() -> None:
    trades = [(11, "0.00400000", "90000.10000000"), (12, "0.00600000", "90000.20000000")]
    alpaca = binance_truth("p-9", "FILLED", [])
    del alpaca["binance"]  # an order of the Alpaca dialect: not this venue's
    orders = [
        binance_truth("p-0", "FILLED", trades),
        binance_truth("p-1", "CANCELED", [], order_id=8),
        binance_truth("p-2", "PARTIALLY_FILLED", [(13, "0.00100000", "90000.00000000")]),
        binance_truth("other-3", "FILLED", []),
        {**alpaca, "client_order_id": "p-9"},
    ]
    read = {o.client_order_id: o for o in BinanceVenue().read_truth(orders, "p-")}
    assert set(read) == {"p-0", "p-1", "p-2"}
    filled = read["p-0"]
    assert (filled.broker_order_id, filled.status) == ("BTCUSDT:7", OrderStatus.FILLED)
    assert [fill.id for fill in filled.fills] == ["BTCUSDT:11", "BTCUSDT:12"]
    assert filled.filled == Decimal("0.01")
    assert filled.average_price == Decimal("90000.16")
    assert (read["p-1"].status, read["p-1"].average_price) == (OrderStatus.CANCELED, None)
    assert read["p-2"].status is OrderStatus.PARTIALLY_FILLED


def test_an_unknown_binance_status_is_a_mismatch_naming_it() -> None:
    (truth,) = BinanceVenue().read_truth([binance_truth("p-0", "HALTED", [])], "p-")
    assert (truth.status, truth.status_problem) == (None, "unknown status 'HALTED'")
    local = LocalOrder("p-0", "BTCUSDT:7", OrderStatus.NEW, Decimal(0), Decimal(0), None)
    (mismatch,) = compare([truth], {"p-0": local}, [])["mismatches"]
    assert mismatch["reasons"] == ["exchange status 'HALTED': unknown status 'HALTED'"]


def test_fills_recorded_under_their_trade_ids_compare_clean() -> None:
    (truth,) = BinanceVenue().read_truth(
        [binance_truth("p-0", "FILLED", [(11, "0.004", "90000.1"), (12, "0.006", "90000.2")])],
        "p-",
    )
    assert recorded_under(truth, ["BTCUSDT:11", "BTCUSDT:12"]) == (0, 0, 0)
    assert recorded_under(truth, ["ETHUSDT:11", "ETHUSDT:12"])[0] == 2  # another pair's


def test_requests_are_the_api_v3_routes_weighed_as_the_adapter_sends_them() -> None:
    stats = {
        "total": 99,
        "by_route": {
            "POST /api/v3/order": 10, "GET /api/v3/order": 3, "DELETE /api/v3/order": 2,
            "GET /api/v3/openOrders": 4, "GET /api/v3/myTrades": 2,
            "GET /api/v3/exchangeInfo": 1, "GET /api/v3/time": 1, "GET /v2/orders": 50,
        },
    }  # fmt: skip
    venue = BinanceVenue()
    assert venue.requests(stats) == 23
    assert venue.weight(stats) == 10 + 3 * 4 + 2 + 4 * 6 + 2 * 20 + 20 + 1


def test_accounts_share_the_addresss_request_weight() -> None:
    assert BinanceVenue().account_limit(6000, 4) == 1500
    assert BinanceVenue().account_limit(6000, 1) == 6000
