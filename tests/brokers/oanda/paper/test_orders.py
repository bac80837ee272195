"""POST/GET/PUT orders as OANDA answers them: the batch's transactions, reject bodies,
listing by state, count, beforeID and ids, replace and cancel."""

from __future__ import annotations

from typing import Any

import httpx

from tests.paper_exchange import PaperExchange


def _place(
    api: httpx.Client,
    units: str,
    cid: str | None = None,
    kind: str = "MARKET",
    price: str | None = None,
    instrument: str = "EUR_USD",
    **extra: Any,
) -> httpx.Response:
    order: dict[str, Any] = {"type": kind, "instrument": instrument, "units": units, **extra}
    if cid is not None:
        order["clientExtensions"] = {"id": cid}
    if price is not None:
        order["price"] = price
    return api.post("/orders", json={"order": order})


def test_market_order_answers_its_create_and_fill_transactions(api: httpx.Client) -> None:
    answer = _place(api, "100", "c-1")
    assert answer.status_code == 201
    body = answer.json()
    create, fill = body["orderCreateTransaction"], body["orderFillTransaction"]
    assert create["type"] == "MARKET_ORDER"
    assert create["timeInForce"] == "FOK"
    assert create["clientExtensions"] == {"id": "c-1"}
    assert fill["orderID"] == create["id"]
    assert fill["batchID"] == create["id"]
    assert int(fill["id"]) == int(create["id"]) + 1
    assert fill["clientOrderID"] == "c-1"
    assert fill["tradeOpened"]["tradeID"] == fill["id"]
    assert fill["units"] == "100"
    assert body["relatedTransactionIDs"] == [create["id"], fill["id"]]
    assert body["lastTransactionID"] == fill["id"]
    order = api.get("/orders/@c-1").json()["order"]
    assert order["state"] == "FILLED"
    assert order["fillingTransactionID"] == fill["id"]
    assert order["tradeOpenedID"] == fill["id"]


def test_refusals_are_400_with_a_reject_transaction(api: httpx.Client) -> None:
    _place(api, "100", "dup")
    duplicate = _place(api, "100", "dup")
    assert duplicate.status_code == 400
    body = duplicate.json()
    assert body["errorCode"] == "CLIENT_ORDER_ID_ALREADY_EXISTS"
    assert body["orderRejectTransaction"]["type"] == "MARKET_ORDER_REJECT"
    assert body["orderRejectTransaction"]["rejectReason"] == "CLIENT_ORDER_ID_ALREADY_EXISTS"
    for units, reason in (("1.5", "UNITS_PRECISION_EXCEEDED"), ("0", "UNITS_INVALID"),
                          ("100000001", "UNITS_LIMIT_EXCEEDED")):  # fmt: skip
        assert _place(api, units).json()["errorCode"] == reason
    assert _place(api, "1", instrument="NOPE_USD").json()["errorCode"] == "INSTRUMENT_UNKNOWN"
    assert _place(api, "1", kind="LIMIT").json()["errorCode"] == "PRICE_MISSING"
    assert _place(api, "1", None, "LIMIT", "1.070001").json()["errorCode"] == (
        "PRICE_PRECISION_EXCEEDED"
    )
    assert _place(api, "1", timeInForce="GTC").json()["errorCode"] == "TIME_IN_FORCE_INVALID"
    not_json = api.post("/orders", content=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert "errorMessage" in not_json.json()


def test_insufficient_margin_cancels_a_market_order_in_its_batch(api: httpx.Client) -> None:
    body = _place(api, "100000000", "huge").json()  # 2.16M USD of margin on 100k
    cancel = body["orderCancelTransaction"]
    assert cancel["reason"] == "INSUFFICIENT_MARGIN"
    assert cancel["batchID"] == body["orderCreateTransaction"]["id"]
    assert "orderFillTransaction" not in body
    assert api.get("/orders/@huge").json()["order"]["state"] == "CANCELLED"


def test_listing_by_state_count_before_and_ids(api: httpx.Client) -> None:
    ids = [_place(api, "10", f"l-{n}", "LIMIT", "1.05000").json()["orderCreateTransaction"]["id"]
           for n in range(4)]  # fmt: skip
    _place(api, "10", "m-1")
    pending = [o["id"] for o in api.get("/orders").json()["orders"]]
    assert pending == ids[::-1]  # newest first
    assert [o["id"] for o in api.get("/orders", params={"count": 2}).json()["orders"]] == [
        ids[3],
        ids[2],
    ]
    before = api.get("/orders", params={"beforeID": ids[2]}).json()["orders"]
    assert [o["id"] for o in before] == [ids[1], ids[0]]
    chosen = api.get("/orders", params={"ids": f"{ids[0]},{ids[3]}"}).json()["orders"]
    assert [o["id"] for o in chosen] == [ids[3], ids[0]]
    every = api.get("/orders", params={"state": "ALL"}).json()["orders"]
    assert len(every) == 5
    assert api.get("/orders", params={"count": 501}).status_code == 400
    assert api.get("/orders/99999").json()["errorCode"] == "ORDER_DOESNT_EXIST"


def test_replace_makes_a_new_order_and_cancel_ends_it(api: httpx.Client) -> None:
    old = _place(api, "10", "r-1", "LIMIT", "1.05000").json()["orderCreateTransaction"]
    replaced = api.put(f"/orders/{old['id']}", json={"order": {
        "type": "LIMIT", "instrument": "EUR_USD", "units": "20", "price": "1.04000",
        "clientExtensions": {"id": "r-2"}}})  # fmt: skip
    assert replaced.status_code == 201
    body = replaced.json()
    assert body["orderCancelTransaction"]["reason"] == "CLIENT_REQUEST_REPLACED"
    new = body["orderCreateTransaction"]
    assert new["reason"] == "REPLACEMENT"
    assert new["replacesOrderID"] == old["id"]
    assert body["orderCancelTransaction"]["replacedByOrderID"] == new["id"]
    was = api.get(f"/orders/{old['id']}").json()["order"]
    assert (was["state"], was["replacedByOrderID"]) == ("CANCELLED", new["id"])
    cancelled = api.put("/orders/@r-2/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["orderCancelTransaction"]["reason"] == "CLIENT_REQUEST"
    again = api.put("/orders/@r-2/cancel")
    assert again.status_code == 404
    rejected = again.json()["orderCancelRejectTransaction"]
    assert rejected["rejectReason"] == "ORDER_DOESNT_EXIST"
    assert (rejected["orderID"], rejected["clientOrderID"]) == (new["id"], "r-2")
    unknown = api.put("/orders/@never/cancel").json()["orderCancelRejectTransaction"]
    assert unknown["clientOrderID"] == "never"
    assert "orderID" not in unknown


def test_pending_orders_that_cannot_rest_end_in_their_batch(
    api: httpx.Client, oanda_exchange: PaperExchange
) -> None:
    """An IOC limit away from the market is cancelled at once; a stop already crossed and a
    marketable limit fill at once; a market-if-touched order rests until touched; GTD is
    refused (the paper exchange keeps no gtdTime)."""
    ioc = _place(api, "10", "ioc", "LIMIT", "1.05000", timeInForce="IOC").json()
    assert ioc["orderCancelTransaction"]["reason"] == "TIME_IN_FORCE_EXPIRED"
    stop = _place(api, "10", "stop", "STOP", "1.07000").json()
    assert stop["orderFillTransaction"]["reason"] == "STOP_ORDER"
    limit = _place(api, "-10", "lim", "LIMIT", "1.07000").json()
    assert limit["orderFillTransaction"]["units"] == "-10"
    touched = _place(api, "10", "mit", "MARKET_IF_TOUCHED", "1.07500").json()
    assert "orderFillTransaction" not in touched
    oanda_exchange.set_price("oanda:EUR_USD", "1.07400")
    filled = oanda_exchange.wait_for(
        lambda: api.get("/orders/@mit").json()["order"]["state"] == "FILLED"
    )
    assert filled
    gtd = _place(api, "10", "gtd", "LIMIT", "1.05000", timeInForce="GTD")
    assert gtd.json()["errorCode"] == "TIME_IN_FORCE_INVALID"


def test_an_order_fills_in_one_transaction_whatever_the_partial_fill_chance(
    api: httpx.Client, oanda_exchange: PaperExchange
) -> None:
    """OANDA has no partly filled order: a resting limit fills whole, one ORDER_FILL."""
    oanda_exchange.set_faults(partial_fill_probability=1.0)
    resting = _place(api, "1000", "whole", "LIMIT", "1.07900").json()
    created = resting["orderCreateTransaction"]["id"]
    oanda_exchange.set_price("oanda:EUR_USD", "1.07800")
    order = oanda_exchange.wait_for(
        lambda: (o := api.get("/orders/@whole").json()["order"])["state"] == "FILLED" and o
    )
    since = api.get("/transactions/sinceid", params={"id": created}).json()["transactions"]
    fills = [t for t in since if t["type"] == "ORDER_FILL" and t["orderID"] == order["id"]]
    assert [(f["id"], f["units"]) for f in fills] == [(order["fillingTransactionID"], "1000")]
