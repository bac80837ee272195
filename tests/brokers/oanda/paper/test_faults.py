"""The shared faults on /v3, and OANDA's requests per second per token."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from brokers.errors import AnswerLost
from brokers.oanda.adapter import OandaBroker
from core.enums import OrderStatus, OrderType, Side, TimeInForce
from core.reports import PlaceOrderRequest
from tests.paper_exchange import PaperExchange


def _market(cid: str) -> PlaceOrderRequest:
    return PlaceOrderRequest(client_order_id=cid, symbol="EUR_USD", side=Side.BUY,
                             order_type=OrderType.MARKET, time_in_force=TimeInForce.FOK,
                             quantity=Decimal(100))  # fmt: skip


def test_a_lost_placement_answer_is_found_by_client_id(
    broker: OandaBroker, oanda_exchange: PaperExchange
) -> None:
    oanda_exchange.set_faults(next_lose_response=1, timeout_s=0.2,
                              routes=["POST /v3/accounts/"])  # fmt: skip
    with pytest.raises(AnswerLost) as lost:
        broker.place(_market("lost-1"))
    assert lost.value.client_order_id == "lost-1"
    found = broker.get_order_by_client_id("lost-1")
    assert found.status is OrderStatus.FILLED
    truth = [o for o in oanda_exchange.truth() if "oanda" in o]
    assert [o["oanda"]["client_id"] for o in truth] == ["lost-1"]
    assert oanda_exchange.requests()["faulted"] == 1


def test_5xx_and_429_are_retried_by_the_adapter(
    broker: OandaBroker, oanda_exchange: PaperExchange
) -> None:
    oanda_exchange.set_faults(next_5xx=1, next_429=1)
    assert broker.list_positions() == []
    assert oanda_exchange.requests()["faulted"] == 2


def test_past_the_requests_per_second_a_token_gets_429(
    oanda_exchange: PaperExchange, api: httpx.Client
) -> None:
    oanda_exchange.set_faults(oanda_requests_per_s=5)
    codes = [api.get("/summary").status_code for _ in range(6)]
    assert 429 in codes
    refused = next(r for r in (api.get("/summary") for _ in range(3)) if r.status_code == 429)
    assert "errorMessage" in refused.json()
    assert not any(name.lower().startswith("x-ratelimit") for name in refused.headers)


def test_orders_cancelled_as_made_and_forgotten_orders_are_in_the_truth(
    api: httpx.Client, oanda_exchange: PaperExchange
) -> None:
    """The reject fault cancels an order as OANDA makes it (MARKET_HALTED); the forget fault
    makes the venue lose one: both stay in the ground truth."""
    oanda_exchange.set_faults(next_reject=1)
    halted = api.post("/orders", json={"order": {
        "type": "MARKET", "instrument": "EUR_USD", "units": "10",
        "clientExtensions": {"id": "halted"}}}).json()  # fmt: skip
    assert halted["orderCancelTransaction"]["reason"] == "MARKET_HALTED"
    resting = {"type": "LIMIT", "instrument": "EUR_USD", "units": "10", "price": "1.05000",
               "clientExtensions": {"id": "lost"}}  # fmt: skip
    api.post("/orders", json={"order": resting})
    truth = {o["oanda"]["client_id"]: o for o in oanda_exchange.truth() if "oanda" in o}
    assert truth["halted"]["oanda"]["state"] == "CANCELLED"
    oanda_exchange.forget(truth["lost"]["id"])
    assert api.get("/orders/@lost").json()["errorCode"] == "ORDER_DOESNT_EXIST"
    assert "lost" in {o["oanda"]["client_id"] for o in oanda_exchange.truth() if "oanda" in o}


def test_requests_are_counted_by_their_full_route(
    oanda_exchange: PaperExchange, api: httpx.Client
) -> None:
    """As every other dialect's: ``METHOD /v3/...`` with the route's template."""
    api.get("/summary").raise_for_status()
    assert oanda_exchange.requests()["by_route"] == {"GET /v3/accounts/{account_id}/summary": 1}
