"""The benchmark's OANDA venue: every order its sender sends passes the instrument's rules
as the paper exchange checks them (whole units, its minimum and maximum, prices on its
precision), its truth reads in ordersync's terms (fills by ORDER_FILL transaction id), its
requests are the /v3 routes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from brokers.oanda.paper.instruments import INSTRUMENTS
from brokers.oanda.paper.orders import parse_order
from brokers.values import decimal_str
from core.enums import BrokerKind, OrderStatus
from ordersync.bench import bench_venue
from ordersync.bench_venue.oanda import ORDER_USD, OandaVenue, terms, usd_per_unit
from tests.ordersync.bench_venue import (
    LIMIT_FACTORS,
    control_api,
    limit_prices,
    prepared,
    recorded_under,
)
from tests.ordersync.bench_venue import sender_orders as send_at


def sender_orders(mix: str, n: int) -> list[dict[str, Any]]:
    with control_api({}, {}) as sim:
        sent = send_at(OandaVenue(), sim, mix, n)
    return [kw for kw in sent if kw["task"] == "ordersync.place_order"]


@pytest.mark.parametrize("mix", ["market", "mixed", "roundtrip"])
def test_every_order_the_sender_makes_passes_its_instruments_rules(mix: str) -> None:
    """The exchange's own checks (``Reject`` if one fails) on the body ordersync's adapter
    writes: signed whole units, a price on the display precision."""
    sent = sender_orders(mix, 200)
    assert {kw["symbol"] for kw in sent} == set(INSTRUMENTS)
    for kwargs in sent:
        units = Decimal(kwargs["quantity"]) * (1 if kwargs["side"] == "buy" else -1)
        limit = "limit_price" in kwargs
        body: dict[str, object] = {"type": "LIMIT" if limit else "MARKET",
                                   "instrument": kwargs["symbol"], "units": decimal_str(units),
                                   "timeInForce": "GTC" if limit else "FOK"}  # fmt: skip
        if limit:
            body["price"] = kwargs["limit_price"]
        found = parse_order(body)
        assert found.units == units
    if mix != "market":
        eur = INSTRUMENTS["EUR_USD"]
        expected = {(eur.price * f).quantize(eur.tick) for f in LIMIT_FACTORS}
        assert limit_prices(sent, "EUR_USD") <= expected


def test_orders_are_worth_a_thousand_to_ten_thousand_dollars() -> None:
    for instrument in INSTRUMENTS.values():
        found = terms(instrument, instrument.price)
        worth = usd_per_unit(instrument, instrument.price)
        assert found.step == 1  # whole units, as every paper instrument trades
        assert found.step * found.min_steps * worth >= ORDER_USD[0] or found.min_steps == 1
        assert found.step * found.max_steps * worth <= ORDER_USD[1] + worth


def oanda_truth(cid: str | None, state: str, fills: list[tuple[str, str, str]], *,
                kind: str = "MARKET", units: str = "1000", order_id: str = "10",
                engine_status: str = "filled") -> dict[str, Any]:  # fmt: skip
    """A ``/_sim/truth`` order placed through /v3: the engine's view and OANDA's."""
    return {
        "id": "engine-uuid", "client_order_id": "engine-client", "status": engine_status,
        "symbol": "oanda:EUR_USD", "created_at": "2026-01-05T15:30:00Z", "fills": [],
        "oanda": {
            "account_id": "101-004-0000001-001", "order_id": order_id, "client_id": cid,
            "type": kind, "state": state, "units": units, "cancelling_transaction_id": None,
            "fills": [{"id": i, "units": u, "price": p, "pl": "0.0000"} for i, u, p in fills],
        },
    }  # fmt: skip


def test_the_truth_reads_oandas_part_in_ordersyncs_terms() -> None:
    canceled = oanda_truth("p-3", "CANCELLED", [], kind="LIMIT", order_id="16",
                           engine_status="canceled")  # fmt: skip
    orders = [
        oanda_truth("p-0", "FILLED", [("11", "400", "1.08001"), ("12", "600", "1.08006")]),
        oanda_truth("p-1", "FILLED", [("14", "-1000", "1.07990")], units="-1000", order_id="13"),
        oanda_truth("p-2", "CANCELLED", [], order_id="15"),  # a market order refused
        canceled,
        oanda_truth("p-4", "PENDING", [], kind="LIMIT", order_id="17"),
        oanda_truth("other-5", "FILLED", []),
        oanda_truth(None, "FILLED", []),  # placed without a client id
    ]
    read = {o.client_order_id: o for o in OandaVenue().read_truth(orders, "p-")}
    assert set(read) == {"p-0", "p-1", "p-2", "p-3", "p-4"}
    filled = read["p-0"]
    assert (filled.broker_order_id, filled.status) == ("10", OrderStatus.FILLED)
    assert [fill.id for fill in filled.fills] == ["11", "12"]
    assert (filled.filled, filled.average_price) == (Decimal(1000), Decimal("1.08004"))
    assert (filled.symbol, filled.signed_filled) == ("EUR_USD", Decimal(1000))
    assert (read["p-1"].filled, read["p-1"].signed_filled) == (Decimal(1000), Decimal(-1000))
    assert [read[c].status for c in ("p-2", "p-3", "p-4")] == [
        OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.NEW]  # fmt: skip


def test_fills_recorded_under_their_transaction_ids_compare_clean() -> None:
    (truth,) = OandaVenue().read_truth(
        [oanda_truth("p-0", "FILLED", [("11", "400", "1.08001"), ("12", "600", "1.08006")])],
        "p-",
    )
    assert recorded_under(truth, ["11", "12"]) == (0, 0, 0)
    assert recorded_under(truth, ["11", "13"])[:2] == (1, 1)


def test_requests_are_the_v3_routes_and_the_exchanges_limit_a_second_the_runs_a_minute() -> None:
    stats = {"total": 9, "by_route": {"POST /v3/accounts/{account_id}/orders": 4,
                                      "GET /v3/accounts/{account_id}/transactions/sinceid": 3,
                                      "POST /v1/accounts/{account_id}/orders": 2}}  # fmt: skip
    assert OandaVenue().requests(stats) == 7
    put = prepared(OandaVenue(), OandaVenue.rate_limit_per_min, 30)
    assert put == [{"oanda_requests_per_s": 100}, {"oanda_requests_per_s": 1}]


def test_oanda_streams() -> None:
    assert bench_venue(BrokerKind.OANDA, stream=True, sweep_orders=0).streams
