"""Create Order, Get Order and Batch Cancel in Coinbase's shapes: success and failure
answers, a reused client_order_id, statuses without a partial one, the commission in the
quote currency per fill, and what open orders hold."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from brokers.paper.state import Sim
from tests.brokers.coinbase.paper import Signer, coinbase_client, make_coinbase_sim
from tests.brokers.paper import FakeClock, RecordingSleep

pytestmark = pytest.mark.anyio
MARKET = {"market_market_ioc": {"base_size": "0.01"}}


def limit(size: str, price: str, **extra: Any) -> dict[str, Any]:
    return {"limit_limit_gtc": {"base_size": size, "limit_price": price, **extra}}


async def _order(api: Signer, placed: dict[str, Any]) -> dict[str, Any]:
    order_id = placed["success_response"]["order_id"]
    found: dict[str, Any] = (await api.ok("GET", f"/orders/historical/{order_id}"))["order"]
    return found


async def _balance(api: Signer, currency: str) -> tuple[Decimal, Decimal]:
    accounts = (await api.ok("GET", "/accounts"))["accounts"]
    wallet = next(a for a in accounts if a["currency"] == currency)
    return Decimal(wallet["available_balance"]["value"]), Decimal(wallet["hold"]["value"])


async def test_a_market_buy_is_filled_and_pays_its_commission_in_usd(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    sim.engine.set_price("coinbase:BTC-USD", Decimal("60000"))
    async with coinbase_client(sim, clock) as api:
        placed = await api.place("buy-1", MARKET)
        order = await _order(api, placed)
        fills = (await api.ok("GET", "/orders/historical/fills"))["fills"]
        usd, _ = await _balance(api, "USD")
        btc, _ = await _balance(api, "BTC")
    assert placed == {
        "success": True,
        "success_response": {"order_id": order["order_id"], "product_id": "BTC-USD",
                             "side": "BUY", "client_order_id": "buy-1", "attached_order_id": ""},
        "order_configuration": MARKET,
    }  # fmt: skip
    assert order["status"] == "FILLED"
    assert (order["order_type"], order["time_in_force"]) == ("MARKET", "IMMEDIATE_OR_CANCEL")
    [fill] = fills
    value = Decimal(fill["price"]) * Decimal(fill["size"])
    assert fill["liquidity_indicator"] == "TAKER"
    assert Decimal(fill["commission"]) == value * Decimal("0.006")  # 60 bps taker
    assert Decimal(order["total_fees"]) == Decimal(fill["commission"])
    assert Decimal(order["total_value_after_fees"]) == value + Decimal(fill["commission"])
    assert btc == Decimal("0.01")
    assert usd == Decimal(100_000) - value - Decimal(fill["commission"])
    assert len(fill["entry_id"]) == 64


async def test_a_market_order_is_never_left_pending(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep, fill_delay_ms=(200, 200))
    async with coinbase_client(sim, clock) as api:
        placed = await api.place("slow", MARKET)
        working = await _order(api, placed)
        clock.tick(250)
        done = await _order(api, placed)
    assert (working["status"], working["filled_size"]) == ("OPEN", "0")
    assert done["status"] == "FILLED"


async def test_a_partly_filled_order_is_open_with_its_filled_size(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        placed = await api.place("rest", limit("0.02", "50000.00"))
        sim.engine.force_fill(placed["success_response"]["order_id"], Decimal("0.005"))
        order = await _order(api, placed)
        _, held = await _balance(api, "USD")
    assert (order["status"], order["filled_size"], order["number_of_fills"]) == (
        "OPEN", "0.005", "1",
    )  # fmt: skip
    assert order["completion_percentage"] == "25"
    # What is left holds its value at the limit with the taker commission on top.
    assert held == Decimal("0.015") * Decimal(50000) * Decimal("1.006")
    assert Decimal(order["outstanding_hold_amount"]) == held


async def test_a_resting_limit_order_that_fills_later_is_a_maker(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    sim.engine.set_price("coinbase:BTC-USD", Decimal("60000"))
    async with coinbase_client(sim, clock) as api:
        await api.place("maker", limit("0.01", "59000.00"))
        sim.engine.set_price("coinbase:BTC-USD", Decimal("58900"))
        [fill] = (await api.ok("GET", "/orders/historical/fills"))["fills"]
    assert fill["liquidity_indicator"] == "MAKER"
    assert Decimal(fill["commission"]) == Decimal(fill["price"]) * Decimal("0.01") * Decimal(
        "0.004"
    )


async def test_a_reused_client_order_id_answers_the_order_made_under_it(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        first = await api.place("same", limit("0.01", "50000.00"))
        again = await api.place("same", limit("0.01", "50000.00"))
        listed = (await api.ok("GET", "/orders/historical/batch"))["orders"]
    assert again == first
    assert len(listed) == 1


@pytest.mark.parametrize(
    ("config", "error", "preview"),
    [
        ({"market_market_ioc": {"base_size": "5"}}, "INSUFFICIENT_FUND",
         "PREVIEW_INSUFFICIENT_FUND"),
        (limit("0.01", "50000.001"), "INVALID_PRICE_PRECISION",
         "PREVIEW_INVALID_PRICE_PRECISION"),
        (limit("0.000000001", "50000"), "INVALID_SIZE_PRECISION",
         "PREVIEW_INVALID_SIZE_PRECISION"),
        (limit("0.01", "0"), "INVALID_LIMIT_PRICE", "PREVIEW_INVALID_LIMIT_PRICE"),
        (limit("4000", "1.00"), "UNKNOWN_FAILURE_REASON", "PREVIEW_INVALID_BASE_SIZE_TOO_LARGE"),
        ({"market_market_ioc": {"quote_size": "0.50"}}, "UNKNOWN_FAILURE_REASON",
         "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"),
        (limit("0.01", "70000.00", post_only=True), "INVALID_LIMIT_PRICE_POST_ONLY",
         "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY"),
        ({"stop_limit_stop_limit_gtc": {"base_size": "0.01", "limit_price": "59000.00",
          "stop_price": "59500.00", "stop_direction": "STOP_DIRECTION_STOP_UP"}},
         "UNKNOWN_FAILURE_REASON", "PREVIEW_STOP_PRICE_BELOW_LAST_TRADE_PRICE"),
        ({"trigger_bracket_gtc": {"base_size": "0.01"}}, "UNSUPPORTED_ORDER_CONFIGURATION",
         "PREVIEW_INVALID_ORDER_CONFIG"),
    ],
)  # fmt: skip
async def test_an_order_coinbase_will_not_make_is_success_false(
    clock: FakeClock, sleep: RecordingSleep, config: dict[str, Any], error: str, preview: str
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    sim.engine.set_price("coinbase:BTC-USD", Decimal("60000"))
    async with coinbase_client(sim, clock) as api:
        body = {"client_order_id": "no", "product_id": "BTC-USD", "side": "BUY",
                "order_configuration": config}  # fmt: skip
        answer = await api.send("POST", "/orders", json=body)
        listed = (await api.ok("GET", "/orders/historical/batch"))["orders"]
    assert answer.status_code == 200
    refused = answer.json()
    assert refused["success"] is False
    assert refused["error_response"]["error"] == error
    assert refused["error_response"]["preview_failure_reason"] == preview
    assert refused["order_configuration"] == config
    assert "success_response" not in refused
    assert listed == []


async def test_insufficient_funds_speaks_coinbase_s_words(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        answer = await api.place("sell", {"market_market_ioc": {"base_size": "1"}}, side="SELL")
    assert answer["error_response"] == {
        "error": "INSUFFICIENT_FUND",
        "message": "Insufficient balance in source account",
        "error_details": "Insufficient balance in source account",
        "preview_failure_reason": "PREVIEW_INSUFFICIENT_FUND",
    }


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"not json", "not valid JSON"),
        ({"product_id": "BTC-USD", "side": "BUY", "order_configuration": MARKET},
         "client_order_id"),
        ({"client_order_id": "x", "product_id": "BTC-USD", "side": "HOLD",
          "order_configuration": MARKET}, "side"),
        ({"client_order_id": "x", "product_id": "BTC-USD", "side": "BUY",
          "order_configuration": {"market_market_ioc": {"base_size": 0.01}}}, "base_size"),
        ({"client_order_id": "x", "product_id": "BTC-USD", "side": "BUY",
          "order_configuration": {"market_market_ioc": {"base_size": "1", "quote_size": "5"}}},
         "exactly one of"),
        ({"client_order_id": "x", "product_id": "BTC-USD", "side": "BUY",
          "order_configuration": {"limit_limit_teleport": {}}}, "limit_limit_teleport"),
    ],
)  # fmt: skip
async def test_a_body_coinbase_cannot_read_is_400_naming_the_field(
    clock: FakeClock, sleep: RecordingSleep, body: Any, names: str
) -> None:
    async with coinbase_client(make_coinbase_sim(clock, sleep), clock) as api:
        if isinstance(body, bytes):
            answer = await api.send("POST", "/orders", content=body)
        else:
            answer = await api.send("POST", "/orders", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"] == "INVALID_ARGUMENT"
    assert names in answer.json()["message"]


async def test_an_unknown_product_is_refused(clock: FakeClock, sleep: RecordingSleep) -> None:
    async with coinbase_client(make_coinbase_sim(clock, sleep), clock) as api:
        answer = await api.place("x", MARKET, product="DOGE-EUR")
        product = await api.send("GET", "/products/DOGE-EUR")
    assert answer["error_response"]["error"] == "INVALID_PRODUCT_ID"
    assert product.status_code == 404


async def test_batch_cancel_answers_each_id(clock: FakeClock, sleep: RecordingSleep) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        resting = await api.place("rest", limit("0.01", "50000.00"))
        filled = await api.place("fill", MARKET)
        ids = [resting["success_response"]["order_id"], filled["success_response"]["order_id"]]
        first = await api.ok("POST", "/orders/batch_cancel", json={"order_ids": [*ids, "nope"]})
        again = await api.ok("POST", "/orders/batch_cancel", json={"order_ids": ids[:1]})
        canceled = await _order(api, resting)
        empty = await api.send("POST", "/orders/batch_cancel", json={"order_ids": []})
        _, held = await _balance(api, "USD")
    assert first == {
        "results": [
            {"success": True, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON",
             "order_id": ids[0]},
            {"success": False, "failure_reason": "ORDER_IS_FULLY_FILLED", "order_id": ids[1]},
            {"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": "nope"},
        ]
    }  # fmt: skip
    assert again["results"][0]["failure_reason"] == "DUPLICATE_CANCEL_REQUEST"
    assert (canceled["status"], canceled["cancel_message"]) == (
        "CANCELLED", "User requested cancel",
    )  # fmt: skip
    assert empty.status_code == 400
    assert held == 0


async def test_an_unfilled_fok_expires_and_a_gtd_order_expires_at_its_end_time(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim: Sim = make_coinbase_sim(clock, sleep)
    sim.engine.set_price("coinbase:BTC-USD", Decimal("60000"))
    end = "2026-03-02T14:31:00Z"  # a minute after the fake clock's start
    async with coinbase_client(sim, clock) as api:
        fok = await api.place(
            "fok", {"limit_limit_fok": {"base_size": "0.01", "limit_price": "50000.00"}}
        )
        gtd = await api.place(
            "gtd", {"limit_limit_gtd": {"base_size": "0.01", "limit_price": "50000.00",
                                        "end_time": end, "post_only": False}},
        )  # fmt: skip
        before = await _order(api, gtd)
        clock.tick(61_000)
        after = await _order(api, gtd)
        fok_order = await _order(api, fok)
    assert fok_order["status"] == "EXPIRED"
    assert (before["status"], before["time_in_force"]) == ("OPEN", "GOOD_UNTIL_DATE_TIME")
    assert after["status"] == "EXPIRED"


async def test_a_stop_limit_waits_for_its_stop(clock: FakeClock, sleep: RecordingSleep) -> None:
    sim = make_coinbase_sim(clock, sleep)
    sim.engine.set_price("coinbase:BTC-USD", Decimal("60000"))
    stop = {"stop_limit_stop_limit_gtc": {"base_size": "0.01", "limit_price": "61000.00",
            "stop_price": "60500.00", "stop_direction": "STOP_DIRECTION_STOP_UP"}}  # fmt: skip
    async with coinbase_client(sim, clock) as api:
        placed = await api.place("stop", stop)
        waiting = await _order(api, placed)
        sim.engine.set_price("coinbase:BTC-USD", Decimal("60600"))
        done = await _order(api, placed)
    assert (waiting["status"], waiting["trigger_status"]) == ("OPEN", "STOP_PENDING")
    assert waiting["order_type"] == "STOP_LIMIT"
    assert (done["status"], done["trigger_status"]) == ("FILLED", "STOP_TRIGGERED")


async def test_an_unknown_order_is_404_in_coinbase_s_shape(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with coinbase_client(make_coinbase_sim(clock, sleep), clock) as api:
        answer = await api.send("GET", "/orders/historical/no-such-order")
        unknown_path = await api.send("GET", "/orders/teleport")
    assert answer.status_code == 404
    assert answer.json()["error"] == "NOT_FOUND"
    assert unknown_path.status_code == 404
    assert unknown_path.json() == {
        "error": "NOT_FOUND", "error_details": "Not Found", "message": "Not Found",
    }  # fmt: skip
