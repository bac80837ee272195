"""The benchmark's Coinbase venue: every order its sender sends passes the product's rules as
the paper exchange checks them (over the body ordersync's adapter writes), the keys are
funded for it, its truth reads in ordersync's terms, its requests are the brokerage routes."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from brokers.coinbase.build import place_body
from brokers.coinbase.paper.orders import parse_create
from brokers.coinbase.paper.products import PRODUCTS, currencies
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest
from ordersync.bench import LocalOrder, compare
from ordersync.bench_venue.binance import BinanceVenue
from ordersync.bench_venue.coinbase import CoinbaseVenue, balances, price_tick, terms
from tests.ordersync.bench_venue import (
    LIMIT_FACTORS,
    control_api,
    limit_prices,
    prepared,
    recorded_under,
    round_trips,
)
from tests.ordersync.bench_venue import sender_orders as send_at

FAULTS = {"coinbase_maker_fee_bps": "40", "coinbase_taker_fee_bps": "60"}


def sender_orders(mix: str, n: int, prices: dict[str, str]) -> list[dict[str, Any]]:
    with control_api(prices, FAULTS) as sim:
        return send_at(CoinbaseVenue(), sim, mix, n)


def wire_body(kwargs: dict[str, Any]) -> bytes:
    """The Create Order body ordersync's adapter sends for a place_order call's terms."""
    limit = kwargs.get("limit_price")
    request = PlaceOrderRequest(
        client_order_id=kwargs["client_order_id"], symbol=kwargs["symbol"],
        side=Side(kwargs["side"]), quantity=Decimal(kwargs["quantity"]),
        order_type=OrderType.LIMIT if limit else OrderType.MARKET, time_in_force=TimeInForce.GTC,
        limit_price=Decimal(limit) if limit else None,
    )  # fmt: skip
    return json.dumps(place_body(request)).encode()


@pytest.mark.parametrize("mix", ["market", "mixed", "roundtrip"])
def test_every_order_the_sender_makes_passes_its_products_rules(mix: str) -> None:
    """base_increment, base_min_size and base_max_size, the limit price's increment: the
    exchange's own checks (``Refused`` if one fails), on every product it lists."""
    sent = [kw for kw in sender_orders(mix, 200, {}) if kw["task"] == "ordersync.place_order"]
    assert {kw["symbol"] for kw in sent} == set(PRODUCTS)
    for kwargs in sent:
        new = parse_create(wire_body(kwargs))
        product = new.product
        assert new.base_size is not None
        value = new.base_size * (new.limit_price or product.price)
        assert value >= product.quote_min_size  # worth the minimum, also resting at half price
        if new.limit_price is not None:
            assert new.limit_price % product.quote_increment == 0


def test_the_sender_uses_the_exchanges_price_once_a_product_has_traded() -> None:
    found = limit_prices(sender_orders("mixed", 50, {"coinbase:BTC-USD": "45000.00"}), "BTC-USD")
    assert found
    assert found <= {Decimal(45000) * factor for factor in LIMIT_FACTORS}


def test_a_round_trips_exit_sells_all_its_entry_bought() -> None:
    """Coinbase's commission is money in the quote currency: the base bought is all held."""
    trips = round_trips(sender_orders("roundtrip", 40, {}))
    assert len(trips) == 20
    for entry, exit_ in trips:
        assert (exit_["side"], exit_["quantity"]) == ("sell", entry["quantity"])


def test_the_keys_are_funded_in_every_currency_its_products_trade() -> None:
    funded = {currency: Decimal(amount) for currency, amount in
              (entry.split(":") for entry in balances().split(","))}  # fmt: skip
    assert set(funded) == set(currencies())
    assert funded["USD"] == 1_000_000
    assert funded["BTC"] * PRODUCTS["BTC-USD"].price >= 999_999
    assert funded["SOL"] * PRODUCTS["SOL-USD"].price >= 999_999


def test_sizes_start_above_the_quote_minimum_with_room_for_a_resting_limit() -> None:
    for product in PRODUCTS.values():
        found = terms(product, product.price)
        assert found.step == product.base_increment
        smallest = found.step * found.min_steps
        assert smallest >= product.base_min_size
        assert smallest * product.price / 2 >= product.quote_min_size  # a buy at half price
        assert found.step * found.max_steps <= product.base_max_size
        tick = price_tick(product)
        assert tick % product.price_increment == tick % product.quote_increment == 0
    assert price_tick(PRODUCTS["ETH-BTC"]) == PRODUCTS["ETH-BTC"].price_increment


def coinbase_truth(
    cid: str,
    status: str,
    fills: list[tuple[str, str, str]],
    order_id: str = "11111111-1111-4111-8111-111111111111",
) -> dict[str, Any]:
    """A ``/_sim/truth`` order placed through /api/v3/brokerage: the engine's view and
    Coinbase's (its Get Order fields and its fills)."""
    filled = sum((Decimal(size) for _, size, _ in fills), Decimal(0))
    return {
        "id": order_id, "client_order_id": cid, "status": "filled", "qty": "1",
        "filled_qty": str(filled), "fills": [], "created_at": "2026-01-05T15:30:00Z",
        "coinbase": {
            "order_id": order_id, "product_id": "BTC-USD", "client_order_id": cid,
            "status": status, "filled_size": str(filled), "pending_cancel": False,
            "created_time": "2026-01-05T15:30:00.123456Z",
            "fills": [{"entry_id": entry, "trade_id": "7", "order_id": order_id,
                       "size": size, "price": price, "commission": "0.36",
                       "size_in_quote": False} for entry, size, price in fills],
        },
    }  # fmt: skip


def test_the_truth_reads_coinbases_part_in_ordersyncs_terms() -> None:
    fills = [("e" * 64, "0.004", "60000.1"), ("f" * 64, "0.006", "60000.2")]
    alpaca = coinbase_truth("p-9", "FILLED", [])
    del alpaca["coinbase"]  # an order of the Alpaca dialect: not this venue's
    orders = [
        coinbase_truth("p-0", "FILLED", fills),
        coinbase_truth("p-1", "CANCELLED", []),
        coinbase_truth("p-2", "OPEN", [("a" * 64, "0.001", "60000")]),
        coinbase_truth("p-3", "OPEN", []),
        coinbase_truth("other-4", "FILLED", []),
        alpaca,
    ]
    read = {o.client_order_id: o for o in CoinbaseVenue().read_truth(orders, "p-")}
    assert set(read) == {"p-0", "p-1", "p-2", "p-3"}
    filled = read["p-0"]
    assert filled.broker_order_id == "11111111-1111-4111-8111-111111111111"
    assert filled.status is OrderStatus.FILLED
    assert [fill.id for fill in filled.fills] == ["e" * 64, "f" * 64]
    assert (filled.filled, filled.average_price) == (Decimal("0.01"), Decimal("60000.16"))
    assert filled.created_at.isoformat() == "2026-01-05T15:30:00.123456+00:00"
    assert (read["p-1"].status, read["p-1"].average_price) == (OrderStatus.CANCELED, None)
    # Coinbase has no partial status: OPEN with a filled size is what ordersync calls it
    assert read["p-2"].status is OrderStatus.PARTIALLY_FILLED
    assert read["p-3"].status is OrderStatus.NEW


def test_an_unknown_coinbase_status_is_a_mismatch_naming_it() -> None:
    (truth,) = CoinbaseVenue().read_truth([coinbase_truth("p-0", "HALTED", [])], "p-")
    assert truth.status is None
    assert truth.status_problem is not None
    assert "HALTED" in truth.status_problem
    local = LocalOrder("p-0", truth.broker_order_id, OrderStatus.NEW, Decimal(0), Decimal(0),
                       None)  # fmt: skip
    (mismatch,) = compare([truth], {"p-0": local}, [])["mismatches"]
    assert mismatch["reasons"] == [f"exchange status 'HALTED': {truth.status_problem}"]


def test_fills_recorded_under_their_entry_ids_compare_clean() -> None:
    fills = [("e" * 64, "0.004", "60000.1"), ("f" * 64, "0.006", "60000.2")]
    (truth,) = CoinbaseVenue().read_truth([coinbase_truth("p-0", "FILLED", fills)], "p-")
    assert recorded_under(truth, ["e" * 64, "f" * 64]) == (0, 0, 0)
    assert recorded_under(truth, ["7", "7"])[0] == 2  # the trade id is not the fill's key


def test_requests_are_the_brokerage_routes_and_binance_does_not_count_them() -> None:
    stats = {
        "total": 99,
        "by_route": {
            "POST /api/v3/brokerage/orders": 10,
            "GET /api/v3/brokerage/orders/historical/{order_id}": 7,
            "GET /api/v3/brokerage/orders/historical/fills": 3,
            "POST /api/v3/brokerage/orders/batch_cancel": 2,
            "GET /api/v3/order": 5, "GET /v2/orders": 50,
        },
    }  # fmt: skip
    assert CoinbaseVenue().requests(stats) == 22
    assert CoinbaseVenue().weight(stats) is None  # Coinbase counts requests, not weight
    assert BinanceVenue().requests(stats) == 5


def test_the_exchanges_limit_a_second_is_the_runs_a_minute() -> None:
    put = prepared(CoinbaseVenue(), CoinbaseVenue.rate_limit_per_min, 600, 20)
    assert put == [{"coinbase_requests_per_s": n} for n in (30, 10, 1)]
