"""Orders through /api/v3: placement, the answers' shapes, refusals, lookups and cancels."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.brokers.binance.paper import binance_client, make_binance_sim
from tests.brokers.paper import FakeClock, RecordingSleep

pytestmark = pytest.mark.anyio
BUY_LIMIT = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "0.01000",
    "price": "80000.00",
}


async def test_a_market_buy_fills_with_full_fills_and_commission_in_the_base(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        body = await api.ok(
            "POST", "/api/v3/order", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01"
        )
    assert body["status"] == "FILLED"
    assert body["orderId"] == 1
    assert body["orderListId"] == -1
    assert len(body["clientOrderId"]) == 22
    assert body["origQty"] == "0.01000000"
    assert body["executedQty"] == "0.01000000"
    assert body["timeInForce"] == "GTC"
    assert body["selfTradePreventionMode"] == "NONE"
    [fill] = body["fills"]
    assert fill["tradeId"] == 1
    assert fill["commissionAsset"] == "BTC"
    assert Decimal(fill["commission"]) == Decimal("0.00001")  # 0.1% of 0.01
    quote = Decimal(fill["price"]) * Decimal(fill["qty"])
    assert Decimal(body["cummulativeQuoteQty"]) == quote


async def test_ids_increase_per_symbol(clock: FakeClock, sleep: RecordingSleep) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        first = await api.ok("POST", "/api/v3/order", **BUY_LIMIT)
        second = await api.ok("POST", "/api/v3/order", **BUY_LIMIT)
        eth = await api.ok(
            "POST", "/api/v3/order", **{**BUY_LIMIT, "symbol": "ETHUSDT", "price": "2000.00"}
        )
    assert [first["orderId"], second["orderId"], eth["orderId"]] == [1, 2, 1]


async def test_a_resting_limit_order_as_get_order_shows_it(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        placed = await api.ok("POST", "/api/v3/order", **BUY_LIMIT, newClientOrderId="my-order_1")
        by_id = await api.ok("GET", "/api/v3/order", symbol="BTCUSDT", orderId=placed["orderId"])
        by_cid = await api.ok(
            "GET", "/api/v3/order", symbol="BTCUSDT", origClientOrderId="my-order_1"
        )
    assert placed["fills"] == []
    assert by_id == by_cid
    assert list(by_id) == [
        "symbol", "orderId", "orderListId", "clientOrderId", "price", "origQty", "executedQty",
        "origQuoteOrderQty", "cummulativeQuoteQty", "status", "timeInForce", "type", "side",
        "stopPrice", "icebergQty", "time", "updateTime", "isWorking", "workingTime",
        "selfTradePreventionMode",
    ]  # fmt: skip
    assert by_id["status"] == "NEW"
    assert by_id["price"] == "80000.00000000"
    assert by_id["clientOrderId"] == "my-order_1"
    assert by_id["isWorking"] is True
    assert by_id["time"] == int(clock().timestamp() * 1000)


async def test_ack_and_result_answers(clock: FakeClock, sleep: RecordingSleep) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        ack = await api.ok("POST", "/api/v3/order", **BUY_LIMIT, newOrderRespType="ACK")
        result = await api.ok("POST", "/api/v3/order", **BUY_LIMIT, newOrderRespType="RESULT")
    assert set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    assert "fills" not in result
    assert result["status"] == "NEW"


async def test_cancel_answers_canceled_and_a_second_cancel_is_unknown(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        placed = await api.ok("POST", "/api/v3/order", **BUY_LIMIT)
        canceled = await api.ok(
            "DELETE", "/api/v3/order", symbol="BTCUSDT", orderId=placed["orderId"]
        )
        again = await api.send(
            "DELETE", "/api/v3/order", symbol="BTCUSDT", orderId=placed["orderId"]
        )
        missing = await api.send("GET", "/api/v3/order", symbol="BTCUSDT", orderId=99)
    assert canceled["status"] == "CANCELED"
    assert canceled["origClientOrderId"] == placed["clientOrderId"]
    assert again.status_code == 400
    assert again.json() == {"code": -2011, "msg": "Unknown order sent."}
    assert missing.json() == {"code": -2013, "msg": "Order does not exist."}


async def test_ioc_and_fok_remainders_expire(clock: FakeClock, sleep: RecordingSleep) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        ioc = await api.ok("POST", "/api/v3/order", **{**BUY_LIMIT, "timeInForce": "IOC"})
        fok = await api.ok("POST", "/api/v3/order", **{**BUY_LIMIT, "timeInForce": "FOK"})
        filled = await api.ok(
            "POST", "/api/v3/order", **{**BUY_LIMIT, "timeInForce": "FOK", "price": "95000.00"}
        )
    assert (ioc["status"], fok["status"]) == ("EXPIRED", "EXPIRED")
    assert ioc["timeInForce"] == "IOC"
    assert filled["status"] == "FILLED"


async def test_limit_maker_that_would_take_is_refused(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        params = {k: v for k, v in BUY_LIMIT.items() if k != "timeInForce"}
        taking = await api.send(
            "POST", "/api/v3/order", **{**params, "type": "LIMIT_MAKER", "price": "95000.00"}
        )
        making = await api.ok(
            "POST", "/api/v3/order", **{**params, "type": "LIMIT_MAKER"}, newOrderRespType="RESULT"
        )
    assert taking.json() == {"code": -2010, "msg": "Order would immediately match and take."}
    assert making["status"] == "NEW"
    assert making["type"] == "LIMIT_MAKER"


@pytest.mark.parametrize(
    ("changes", "code", "msg"),
    [
        ({"quantity": "0.000001"}, -1013, "Filter failure: LOT_SIZE"),
        ({"quantity": "0.010001"}, -1013, "Filter failure: LOT_SIZE"),
        ({"price": "80000.001"}, -1013, "Filter failure: PRICE_FILTER"),
        ({"quantity": "0.00005"}, -1013, "Filter failure: NOTIONAL"),
        (
            {"quantity": "0.0024600000000000004"},
            -1111,
            "Parameter 'quantity' has too much precision.",
        ),
        (
            {"quantity": "1e-2"},
            -1100,
            "Illegal characters found in parameter 'quantity'; legal range is "
            "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        ),
        ({"symbol": "DOGEUSDT"}, -1121, "Invalid symbol."),
        ({"side": "HOLD"}, -1117, "Invalid side."),
        ({"type": "ICEBERG"}, -1116, "Invalid orderType."),
        ({"type": "TAKE_PROFIT"}, -2010, "Take profit orders are not supported for this symbol."),
        ({"newOrderRespType": "ALL"}, -1136, "Invalid newOrderRespType."),
        ({"timeInForce": "GTD"}, -1115, "Invalid timeInForce."),
        (
            {"price": ""},
            -1102,
            "Mandatory parameter 'price' was not sent, was empty/null, or malformed.",
        ),
        ({"quantity": "2"}, -2010, "Account has insufficient balance for requested action."),
    ],
)
async def test_refusals(
    clock: FakeClock, sleep: RecordingSleep, changes: dict[str, str], code: int, msg: str
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        answer = await api.send("POST", "/api/v3/order", **{**BUY_LIMIT, **changes})
    assert answer.status_code == 400
    assert answer.json() == {"code": code, "msg": msg}


async def test_a_client_id_open_twice_is_a_duplicate_but_free_once_closed(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        first = await api.ok("POST", "/api/v3/order", **BUY_LIMIT, newClientOrderId="same")
        twice = await api.send("POST", "/api/v3/order", **BUY_LIMIT, newClientOrderId="same")
        await api.ok("DELETE", "/api/v3/order", symbol="BTCUSDT", orderId=first["orderId"])
        again = await api.send("POST", "/api/v3/order", **BUY_LIMIT, newClientOrderId="same")
        bad = await api.send("POST", "/api/v3/order", **BUY_LIMIT, newClientOrderId="a b")
    assert twice.json() == {"code": -2010, "msg": "Duplicate order sent."}
    assert again.status_code == 200
    assert bad.json()["code"] == -1100


async def test_a_sell_beyond_the_base_held_is_refused(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    """No shorting: the account holds no BTC at the start."""
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        answer = await api.send(
            "POST", "/api/v3/order", symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.01"
        )
    assert answer.json() == {
        "code": -2010,
        "msg": "Account has insufficient balance for requested action.",
    }


async def test_a_sell_of_a_funded_wallet_fills_though_no_order_bought_it(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    """The wallet decides, not the engine's own ledger of what orders bought (which knows
    nothing of a starting balance): a fractional sell of funded BTC fills."""
    wallet = (("USDT", Decimal(1000)), ("BTC", Decimal(2)))
    async with binance_client(make_binance_sim(clock, sleep, balances=wallet), clock) as api:
        answer = await api.send("POST", "/api/v3/order", symbol="BTCUSDT", side="SELL",
                                type="MARKET", quantity="1.5")  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "FILLED"


async def test_a_stop_loss_limit_waits_for_its_stop_then_works_as_a_limit(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    sim = make_binance_sim(clock, sleep)
    async with binance_client(sim, clock) as api:
        sim.engine.set_price("binance:BTCUSDT", Decimal("90000"))
        placed = await api.ok(
            "POST", "/api/v3/order", **{**BUY_LIMIT, "type": "STOP_LOSS_LIMIT",
            "price": "95100.00", "stopPrice": "95000.00"},
        )  # fmt: skip
        waiting = await api.ok("GET", "/api/v3/order", symbol="BTCUSDT", orderId=1)
        sim.engine.set_price("binance:BTCUSDT", Decimal("95050"))
        triggered = await api.ok("GET", "/api/v3/order", symbol="BTCUSDT", orderId=1)
    assert set(placed) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    assert (waiting["status"], waiting["isWorking"], waiting["stopPrice"]) == (
        "NEW",
        False,
        "95000.00000000",
    )
    assert waiting["workingTime"] == -1
    assert (triggered["status"], triggered["isWorking"]) == ("FILLED", True)


async def test_unsupported_order_lists_answer_binance_error(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        answer = await api.send("POST", "/api/v3/orderList/oco", symbol="BTCUSDT")
    assert answer.status_code == 400
    assert answer.json()["code"] == -1014


async def test_cancel_replace_answers_both_halves_and_stops_on_a_failed_cancel(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    """Binance's cancelReplace: both halves' answers on success; with STOP_ON_FAILURE a
    cancel that fails places nothing (-2022), with ALLOW_FAILURE the new order stands
    (-2021, 409), and a refused new order after the cancel is -2021 too."""
    resting = {**BUY_LIMIT, "price": "30000.00"}
    async with binance_client(make_binance_sim(clock, sleep), clock) as api:
        old = await api.ok("POST", "/api/v3/order", **resting, newClientOrderId="cr-old")
        done = await api.ok("POST", "/api/v3/order/cancelReplace", **resting,
                            newClientOrderId="cr-new", cancelOrderId=str(old["orderId"]),
                            cancelReplaceMode="STOP_ON_FAILURE")  # fmt: skip
        stopped = await api.send("POST", "/api/v3/order/cancelReplace", **resting,
                                 newClientOrderId="cr-never", cancelOrderId=str(old["orderId"]),
                                 cancelReplaceMode="STOP_ON_FAILURE")  # fmt: skip
        allowed = await api.send("POST", "/api/v3/order/cancelReplace", **resting,
                                 newClientOrderId="cr-anyway", cancelOrderId=str(old["orderId"]),
                                 cancelReplaceMode="ALLOW_FAILURE")  # fmt: skip
        refused = await api.send("POST", "/api/v3/order/cancelReplace",
                                 **{**resting, "quantity": "500.00000"},
                                 newClientOrderId="cr-too-big",
                                 cancelOrigClientOrderId="cr-new",
                                 cancelReplaceMode="STOP_ON_FAILURE")  # fmt: skip
        listed = await api.ok("GET", "/api/v3/allOrders", symbol="BTCUSDT")
    assert (done["cancelResult"], done["newOrderResult"]) == ("SUCCESS", "SUCCESS")
    assert done["cancelResponse"]["status"] == "CANCELED"
    assert done["cancelResponse"]["origClientOrderId"] == "cr-old"
    assert done["newOrderResponse"]["clientOrderId"] == "cr-new"
    assert (stopped.status_code, stopped.json()["code"]) == (400, -2022)
    assert stopped.json()["data"]["cancelResponse"] == {"code": -2011, "msg": "Unknown order sent."}
    assert stopped.json()["data"]["newOrderResult"] == "NOT_ATTEMPTED"
    assert (allowed.status_code, allowed.json()["code"]) == (409, -2021)
    assert allowed.json()["data"]["newOrderResponse"]["clientOrderId"] == "cr-anyway"
    assert (refused.status_code, refused.json()["code"]) == (409, -2021)
    assert refused.json()["data"]["cancelResult"] == "SUCCESS"
    assert {o["clientOrderId"]: o["status"] for o in listed} == {
        "cr-old": "CANCELED", "cr-new": "CANCELED", "cr-anyway": "NEW"}  # fmt: skip
