"""The benchmark's Tradier venue: every order its sender sends passes Tradier's form checks
as the paper exchange makes them (over the form ordersync's adapter writes), it never sells
short, its truth reads in ordersync's terms (the client id from the tag), derived fills are
compared per order, its requests are the /v1 routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
import typer

from brokers.tradier.build import place_form
from brokers.tradier.paper.orders import parse_order, read_form
from brokers.tradier.tags import tag_for
from core.enums import BrokerKind, Intent, OrderStatus, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest
from ordersync.bench import LocalFill, LocalOrder, bench_venue, compare, position_differences
from ordersync.bench_venue import TruthOrder
from ordersync.bench_venue.alpaca import SYMBOLS
from ordersync.bench_venue.tradier import TradierVenue
from tests.ordersync.bench_venue import control_api, prepared, round_trips
from tests.ordersync.bench_venue import sender_orders as send_at

T0 = datetime(2026, 1, 5, 15, 30, tzinfo=UTC)


def sender_orders(mix: str, n: int) -> list[dict[str, Any]]:
    with control_api({}, {}) as sim:
        sent = send_at(TradierVenue(), sim, mix, n)
    return [kw for kw in sent if kw["task"] == "ordersync.place_order"]


@pytest.mark.parametrize("mix", ["market", "mixed", "roundtrip"])
def test_every_order_the_sender_makes_passes_tradiers_form_and_sells_only_what_it_bought(
    mix: str,
) -> None:
    sent = sender_orders(mix, 200)
    assert {kw["symbol"] for kw in sent} == set(SYMBOLS)
    for kwargs in sent:
        limit = kwargs.get("limit_price")
        request = PlaceOrderRequest(
            client_order_id=kwargs["client_order_id"], symbol=kwargs["symbol"],
            side=Side(kwargs["side"]), quantity=Decimal(kwargs["quantity"]),
            order_type=OrderType.LIMIT if limit else OrderType.MARKET,
            time_in_force=TimeInForce.GTC if limit else TimeInForce.DAY,
            limit_price=Decimal(limit) if limit else None,
            intent=Intent(kwargs["intent"]) if kwargs.get("intent") else None,
        )  # fmt: skip
        new = parse_order(read_form(urlencode(place_form(request)).encode()), T0.date())
        assert 1 <= new.quantity <= 10
        assert new.side == kwargs["side"]
    sells = [kw for kw in sent if kw["side"] == "sell"]
    if mix == "roundtrip":
        exits = round_trips(sent)
        assert len(exits) == len(sells) == 100
        assert all(out["quantity"] == entry["quantity"] for entry, out in exits)
    else:
        assert sells == []  # Tradier sells only shares held: outside round trips, buys


def tradier_truth(cid: str | None, status: str, fills: list[tuple[str, str, str]],
                  order_id: int = 1_000_001, side: str = "buy") -> dict[str, Any]:  # fmt: skip
    """A ``/_sim/truth`` order placed through /v1: the engine's view and Tradier's."""
    executed = sum((Decimal(q) for _, q, _ in fills), Decimal(0))
    notional = sum((Decimal(q) * Decimal(p) for _, q, p in fills), Decimal(0))
    tradier: dict[str, Any] = {
        "id": order_id, "type": "market", "symbol": "AAPL", "side": side, "quantity": "3",
        "status": status, "duration": "day", "exec_quantity": f"{executed:f}",
        "avg_fill_price": f"{notional / executed:f}" if executed else "0",
        "create_date": "2026-01-05T15:30:00.000Z", "account_number": "VA00000001",
    }  # fmt: skip
    if cid is not None:
        tradier["tag"] = tag_for(cid)
    return {
        "id": "engine-uuid", "client_order_id": str(order_id), "status": "filled",
        "side": side, "created_at": "2026-01-05T15:30:00Z",
        "fills": [{"id": i, "qty": q, "price": p} for i, q, p in fills],
        "tradier": tradier,
    }  # fmt: skip


FILLS = [("f1", "1", "200.01"), ("f2", "1", "200.02"), ("f3", "1", "200.06")]


def test_the_truth_reads_tradiers_part_in_ordersyncs_terms() -> None:
    alpaca = tradier_truth("p-9", "filled", [])
    del alpaca["tradier"]  # an order of the Alpaca dialect: not this venue's
    orders = [
        tradier_truth("p-0", "filled", FILLS),
        tradier_truth("p-1", "partially_filled", FILLS[:1], order_id=1_000_002, side="sell"),
        tradier_truth("p-2", "canceled", [], order_id=1_000_003),
        tradier_truth("other-3", "filled", []),
        tradier_truth(None, "filled", []),  # placed at Tradier without a tag
        alpaca,
    ]
    read = {o.client_order_id: o for o in TradierVenue().read_truth(orders, "p-")}
    assert set(read) == {"p-0", "p-1", "p-2"}
    filled = read["p-0"]
    assert (filled.broker_order_id, filled.status) == ("1000001", OrderStatus.FILLED)
    assert (filled.filled, filled.average_price) == (Decimal(3), Decimal("200.03"))
    assert [fill.id for fill in filled.fills] == ["f1", "f2", "f3"]
    assert (filled.symbol, filled.signed_filled) == ("AAPL", Decimal(3))
    partial = read["p-1"]
    assert (partial.status, partial.signed_filled) == (OrderStatus.PARTIALLY_FILLED, Decimal(-1))
    assert (read["p-2"].status, read["p-2"].average_price) == (OrderStatus.CANCELED, None)


def derived(truth: TruthOrder, steps: list[tuple[str, str]]) -> dict[str, Any]:
    """compare()'s figures for a local record of ``truth`` whose fills ordersync derived
    at these (cumulative quantity, price) steps, in turn."""
    fills, before = [], Decimal(0)
    for n, (cum, price) in enumerate(steps):
        at = T0 + timedelta(seconds=n)
        fills.append(LocalFill(truth.client_order_id, f"derived-{truth.broker_order_id}-{cum}",
                               Decimal(cum) - before, Decimal(price), at, at))  # fmt: skip
        before = Decimal(cum)
    assert truth.status is not None
    local = LocalOrder(truth.client_order_id, truth.broker_order_id, truth.status,
                       truth.filled, truth.filled, truth.average_price)  # fmt: skip
    return compare([truth], {truth.client_order_id: local}, fills, fills_derived=True)


def counts(result: dict[str, Any]) -> tuple[int, int, int]:
    return result["missed_fills"], result["duplicate_fills"], result["mismatched_fills"]


def test_derived_fills_are_compared_per_order_not_by_fill_id() -> None:
    (truth,) = TradierVenue().read_truth([tradier_truth("p-0", "filled", FILLS)], "p-")
    # Each exchange fill seen, or two merged in one poll (priced at their average): clean.
    assert counts(derived(truth, [("1", "200.01"), ("2", "200.02"), ("3", "200.06")])) == (0, 0, 0)
    assert counts(derived(truth, [("2", "200.015"), ("3", "200.06")])) == (0, 0, 0)
    # Short of the exchange's quantity: missed; a step at a quantity never reached, or the
    # whole at another average: mismatched.
    assert counts(derived(truth, [("2", "200.015")]))[0] == 1
    assert counts(derived(truth, [("1.5", "200.01"), ("3", "200.05")]))[2] == 1
    assert counts(derived(truth, [("3", "200.05")]))[2] == 1


def test_a_derived_fill_recorded_twice_is_a_duplicate() -> None:
    (truth,) = TradierVenue().read_truth([tradier_truth("p-0", "filled", FILLS[:1])], "p-")
    fill = LocalFill("p-0", "derived-1000001-1", Decimal(1), Decimal("200.01"), T0, T0)
    local = LocalOrder("p-0", "1000001", OrderStatus.FILLED, Decimal(1), Decimal(1),
                       Decimal("200.01"))  # fmt: skip
    assert counts(compare([truth], {"p-0": local}, [fill, fill], fills_derived=True)) == (0, 1, 0)


def test_positions_compare_what_the_ledger_moved_by_with_the_exchanges_fills() -> None:
    sold = tradier_truth("p-1", "filled", FILLS[:1], order_id=1_000_002, side="sell")
    orders = [tradier_truth("p-0", "filled", FILLS), sold]
    truth = TradierVenue().read_truth(orders, "p-")
    before = {"AAPL": Decimal(5)}
    assert position_differences(truth, before, {"AAPL": Decimal(7)})["position_mismatches"] == 0
    found = position_differences(truth, before, {"AAPL": Decimal(8)})
    assert found["position_mismatch_examples"] == [
        {"symbol": "AAPL", "local": "3", "exchange": "2"}]  # fmt: skip


def test_requests_are_the_v1_routes_and_the_read_bucket_is_the_runs_limit() -> None:
    stats = {"total": 9, "by_route": {"POST /v1/accounts/{account_id}/orders": 4,
                                      "GET /v1/accounts/{account_id}/orders/{order_id}": 3,
                                      "GET /v2/orders": 2}}  # fmt: skip
    assert TradierVenue().requests(stats) == 7
    put = prepared(TradierVenue(), TradierVenue.rate_limit_per_min)
    assert put == [{"tradier_reads_per_min": 120}]


def test_tradier_streams_and_its_orders_are_not_seeded_for_the_sweep_bench() -> None:
    assert bench_venue(BrokerKind.TRADIER, stream=True, sweep_orders=0).streams
    with pytest.raises(typer.BadParameter, match="seeds Alpaca orders only, not tradier"):
        bench_venue(BrokerKind.TRADIER, stream=False, sweep_orders=10)
