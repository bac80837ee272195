"""The Tradier dialect over real HTTP: auth (token bound to its account), each endpoint's
shapes (numbers, the null/one/list quirk, XML by default), the placement form's rules (tag,
equity only, sides), the session listing and its paging, rate-limit headers and faults."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.brokers.tradier.paper import ACCOUNT, OTHER_ACCOUNT, OTHER_TOKEN, TOKEN
from tests.paper_exchange import PaperExchange

ORDERS = f"/v1/accounts/{ACCOUNT}/orders"
CALL = "AAPL300118C00200000"  # expires 2030-01-18


def body(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


def place(client: httpx.Client, **fields: str) -> httpx.Response:
    form = {"class": "equity", "symbol": "AAPL", "side": "buy", "quantity": "10",
            "type": "market", "duration": "day", **fields}  # fmt: skip
    return client.post(ORDERS, data=form)


def placed_id(client: httpx.Client, **fields: str) -> int:
    response = place(client, **fields)
    assert response.status_code == 200, response.text
    order_id: int = body(response)["order"]["id"]
    return order_id


def order(client: httpx.Client, order_id: int, **params: str) -> dict[str, Any]:
    response = client.get(f"{ORDERS}/{order_id}", params=params)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = body(response)["order"]
    return found


def filled(exchange: PaperExchange, client: httpx.Client, order_id: int) -> dict[str, Any]:
    return exchange.wait_for(
        lambda: (found := order(client, order_id))["status"] == "filled" and found
    )


# -- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [None, "Bearer nope", f"Basic {TOKEN}", f"Bearer {TOKEN}x"]
)
def test_a_missing_or_unknown_token_is_refused_with_tradiers_plain_401(
    tradier_exchange: PaperExchange, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.get(f"{tradier_exchange.base_url}{ORDERS}", headers=headers)
    assert response.status_code == 401
    assert response.text == "Invalid Access Token"


def test_a_token_acts_only_for_its_own_account(tradier: httpx.Client) -> None:
    response = tradier.get(f"/v1/accounts/{OTHER_ACCOUNT}/orders")
    assert response.status_code == 401
    assert response.text == f"Unauthorized Account: {OTHER_ACCOUNT}"
    other = {"Authorization": f"Bearer {OTHER_TOKEN}", "Accept": "application/json"}
    assert tradier.get(f"/v1/accounts/{OTHER_ACCOUNT}/orders", headers=other).status_code == 200


def test_an_order_of_another_account_is_not_found(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    order_id = placed_id(tradier)
    other = {"Authorization": f"Bearer {OTHER_TOKEN}", "Accept": "application/json"}
    response = tradier.get(f"/v1/accounts/{OTHER_ACCOUNT}/orders/{order_id}", headers=other)
    assert response.status_code == 404
    assert body(response) == {"errors": {"error": [f"Order {order_id} not found"]}}


# -- shapes -------------------------------------------------------------------------------


def test_placement_answers_id_ok_and_partner_id_and_the_order_reads_back_in_numbers(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    response = place(tradier, tag="oc-abc-1")
    assert response.headers["content-type"] == "application/json"
    ack = body(response)["order"]
    assert set(ack) == {"id", "status", "partner_id"}
    assert ack["status"] == "ok"
    assert isinstance(ack["id"], int)
    seen = filled(tradier_exchange, tradier, ack["id"])
    assert "tag" not in seen  # only with includeTags
    assert seen["type"] == "market"
    assert seen["side"] == "buy"
    assert seen["class"] == "equity"
    assert seen["quantity"] == seen["exec_quantity"] == Decimal(10)
    assert seen["remaining_quantity"] == 0
    assert seen["duration"] == "day"
    truth = tradier_exchange.truth_order(tradier_exchange.truth()[-1]["id"])["tradier"]
    assert Decimal(truth["avg_fill_price"]) == seen["avg_fill_price"]
    assert seen["last_fill_quantity"] > 0
    assert seen["last_fill_price"] > 0
    assert seen["create_date"].endswith("Z")
    assert len(seen["create_date"]) == 24
    assert order(tradier, ack["id"], includeTags="true")["tag"] == "oc-abc-1"


def test_without_accept_json_the_answer_is_xml(tradier: httpx.Client) -> None:
    order_id = placed_id(tradier)
    response = tradier.get(f"{ORDERS}/{order_id}", headers={"Accept": "application/xml"})
    assert response.headers["content-type"] == "application/xml"
    assert response.text.startswith('<?xml version="1.0" encoding="UTF-8"?><order><id>')
    assert f"<id>{order_id}</id>" in response.text
    refused = tradier.get(f"{ORDERS}/1", headers={"Accept": "*/*"})
    assert refused.text.endswith("<errors><error>Order 1 not found</error></errors>")


def test_lists_are_null_then_one_object_then_a_list(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    assert body(tradier.get(ORDERS)) == {"orders": "null"}
    assert body(tradier.get(f"/v1/accounts/{ACCOUNT}/positions")) == {"positions": "null"}
    first = placed_id(tradier)
    assert body(tradier.get(ORDERS))["orders"]["order"]["id"] == first
    second = placed_id(tradier, type="limit", price="1.00")
    tradier_exchange.wait_for(lambda: order(tradier, second)["status"] == "open")
    listed = body(tradier.get(ORDERS))["orders"]["order"]
    assert [o["id"] for o in listed] == [first, second]  # oldest first
    assert listed[1]["price"] == Decimal("1.00")
    assert listed[1]["status"] == "open"


def test_listing_pages_with_limit_and_page_and_tags_only_when_asked(
    tradier: httpx.Client,
) -> None:
    ids = [placed_id(tradier, type="limit", price="1", tag=f"t-{n}") for n in range(5)]
    page2 = body(tradier.get(ORDERS, params={"limit": "2", "page": "2", "includeTags": "true"}))
    assert [(o["id"], o["tag"]) for o in page2["orders"]["order"]] == [
        (ids[2], "t-2"), (ids[3], "t-3")
    ]  # fmt: skip
    assert all("tag" not in o for o in body(tradier.get(ORDERS))["orders"]["order"])
    every = body(tradier.get(ORDERS, params={"filter": "all", "start": "2000-01-01"}))
    assert len(every["orders"]["order"]) == 5
    assert body(tradier.get(ORDERS, params={"filter": "all", "end": "2000-01-01"})) == {
        "orders": "null"
    }
    assert tradier.get(ORDERS, params={"filter": "some"}).status_code == 400
    assert tradier.get(ORDERS, params={"limit": "0"}).status_code == 400


def test_positions_and_balances_follow_the_fills(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    seen = filled(tradier_exchange, tradier, placed_id(tradier))
    position = body(tradier.get(f"/v1/accounts/{ACCOUNT}/positions"))["positions"]["position"]
    assert position["symbol"] == "AAPL"
    assert position["quantity"] == Decimal(10)
    assert position["cost_basis"] == seen["avg_fill_price"] * 10
    first_fill = tradier_exchange.truth()[0]["fills"][0]["time"]  # microseconds
    assert position["date_acquired"] == first_fill[:23] + "Z"  # to the millisecond
    balances = body(tradier.get(f"/v1/accounts/{ACCOUNT}/balances"))["balances"]
    assert balances["account_number"] == ACCOUNT
    assert balances["long_market_value"] == Decimal(2000)  # 10 at the frozen 200


def test_cancel_answers_ok_then_the_order_is_canceled_and_a_second_cancel_is_refused(
    tradier: httpx.Client,
) -> None:
    order_id = placed_id(tradier, type="limit", price="1")
    response = tradier.delete(f"{ORDERS}/{order_id}")
    assert body(response) == {"order": {"id": order_id, "status": "ok"}}
    assert order(tradier, order_id)["status"] == "canceled"
    again = tradier.delete(f"{ORDERS}/{order_id}")
    assert again.status_code == 400
    assert again.text == "order already in finalized state"
    assert tradier.delete(f"{ORDERS}/999").status_code == 404


# -- the placement form -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"tag": "has_underscore"}, "tag"),
        ({"tag": "a" * 256}, "tag"),
        ({"tag": "sp ace"}, "tag"),
        ({"class": "option"}, "option_symbol is required"),
        ({"class": "option", "option_symbol": "AAPL300118"}, "not a valid OCC"),
        ({"class": "option", "option_symbol": "SPY300118C00200000"}, "not an option on AAPL"),
        ({"class": "option", "option_symbol": "AAPL200117C00200000"}, "expired on 2020-01-17"),
        ({"class": "option", "option_symbol": CALL}, "side 'buy' is not one of"),
        (
            {"class": "option", "option_symbol": CALL, "side": "buy_to_open", "quantity": "0.5"},
            "whole number of contracts",
        ),
        ({"class": "option", "option_symbol": CALL, "side": "buy_to_close"}, "0 contracts short"),
        ({"class": "option", "option_symbol": CALL, "side": "sell_to_close"}, "0 contracts long"),
        ({"class": "equity", "side": "buy_to_open"}, "side 'buy_to_open' is not one of"),
        ({"class": "multileg"}, "only equity and option"),
        ({"side": "sell_short", "duration": "gtc"}, "short sales are day orders"),
        ({"quantity": "1.5"}, "whole"),
        ({"quantity": "0"}, "positive"),
        ({"type": "limit"}, "price is required"),
        ({"type": "stop"}, "stop is required"),
        ({"duration": "ioc"}, "duration"),
        ({"side": "sell"}, "holds"),
        ({"side": "buy_to_cover"}, "no short"),
        ({"symbol": "aapl"}, "symbol"),
    ],
)
def test_a_bad_form_is_refused_with_tradiers_errors_and_places_nothing(
    tradier_exchange: PaperExchange, tradier: httpx.Client, fields: dict[str, str], says: str
) -> None:
    response = place(tradier, **fields)
    assert response.status_code == 400
    (message,) = body(response)["errors"]["error"]
    assert says in message
    assert tradier_exchange.truth() == []


def test_a_tag_of_255_letters_digits_and_dashes_is_taken(tradier: httpx.Client) -> None:
    tag = ("Ab-9" * 64)[:255]
    order_id = placed_id(tradier, tag=tag, type="limit", price="1")
    assert order(tradier, order_id, includeTags="true")["tag"] == tag


def test_short_sale_and_cover_use_their_own_sides(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    short = filled(tradier_exchange, tradier, placed_id(tradier, side="sell_short"))
    assert short["side"] == "sell_short"
    assert "use buy_to_cover" in body(place(tradier, side="buy"))["errors"]["error"][0]
    cover = filled(tradier_exchange, tradier, placed_id(tradier, side="buy_to_cover"))
    assert cover["side"] == "buy_to_cover"
    assert body(tradier.get(f"/v1/accounts/{ACCOUNT}/positions")) == {"positions": "null"}


def test_an_option_round_trip_reads_as_tradier_writes_it_and_moves_100_shares_a_contract(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    cash = body(tradier.get(f"/v1/accounts/{ACCOUNT}/balances"))["balances"]["total_cash"]
    tradier_exchange.set_price(CALL, "3.10")
    option = {"class": "option", "option_symbol": CALL, "quantity": "2"}
    opened = filled(tradier_exchange, tradier, placed_id(tradier, side="buy_to_open", **option))

    assert (opened["class"], opened["symbol"], opened["option_symbol"]) == ("option", "AAPL", CALL)
    assert (opened["side"], opened["exec_quantity"]) == ("buy_to_open", Decimal(2))
    paid = opened["avg_fill_price"]
    assert abs(paid - Decimal("3.10")) <= Decimal("0.01")  # a cent of slippage at most
    position = body(tradier.get(f"/v1/accounts/{ACCOUNT}/positions"))["positions"]["position"]
    assert (position["symbol"], position["quantity"]) == (CALL, Decimal(2))
    assert position["cost_basis"] == paid * 200  # 2 contracts of 100 shares
    balances = body(tradier.get(f"/v1/accounts/{ACCOUNT}/balances"))["balances"]
    assert balances["total_cash"] == cash - paid * 200
    assert balances["long_market_value"] == Decimal(620)  # at the market's 3.10
    assert "use sell_to_close" in body(place(tradier, side="sell_to_open", **option))[
        "errors"]["error"][0]  # fmt: skip

    tradier_exchange.set_price(CALL, "3.55")
    closed = filled(tradier_exchange, tradier, placed_id(tradier, side="sell_to_close", **option))
    assert closed["side"] == "sell_to_close"
    assert body(tradier.get(f"/v1/accounts/{ACCOUNT}/positions")) == {"positions": "null"}
    balances = body(tradier.get(f"/v1/accounts/{ACCOUNT}/balances"))["balances"]
    assert balances["total_cash"] == cash + (closed["avg_fill_price"] - paid) * 200


def test_a_written_contract_is_valued_at_100_shares_and_closed_no_more_than_it_is_short(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    def balances() -> dict[str, Any]:
        found: dict[str, Any] = body(tradier.get(f"/v1/accounts/{ACCOUNT}/balances"))["balances"]
        return found

    before = balances()
    tradier_exchange.set_price(CALL, "3.10")
    option = {"class": "option", "option_symbol": CALL, "quantity": "2"}
    written = filled(tradier_exchange, tradier, placed_id(tradier, side="sell_to_open", **option))

    after = balances()
    assert after["total_cash"] == before["total_cash"] + written["avg_fill_price"] * 200
    assert after["short_market_value"] == Decimal(-620)  # 2 contracts of 100 at 3.10
    power = after["margin"]["stock_buying_power"] - before["margin"]["stock_buying_power"]
    assert abs(power) <= Decimal(2)  # the premium in, the short's value out (a cent a share)
    placed_id(tradier, side="buy_to_close", type="limit", price="0.01", **option)  # resting
    refused = place(tradier, side="buy_to_close", **{**option, "quantity": "1"})
    assert "open buy orders: 2" in body(refused)["errors"]["error"][0]


def test_an_option_opening_buy_needs_its_premium_in_buying_power(tradier: httpx.Client) -> None:
    power = body(tradier.get(f"/v1/accounts/{ACCOUNT}/balances"))["balances"]["margin"][
        "stock_buying_power"]  # fmt: skip
    contracts = int(power / 500) + 1  # at a 5.00 limit, one contract more than it buys
    response = place(tradier, **{"class": "option", "option_symbol": CALL,
                                 "side": "buy_to_open", "quantity": str(contracts),
                                 "type": "limit", "price": "5.00"})  # fmt: skip
    assert response.status_code == 400
    assert "buying power" in body(response)["errors"]["error"][0]


def test_an_option_day_order_expires_at_the_close(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    tradier_exchange.set_session(3600, overnight_s=60)
    tradier_exchange.set_price(CALL, "3.10")
    day = placed_id(tradier, **{"class": "option", "option_symbol": CALL,
                                "side": "buy_to_open", "quantity": "1", "type": "limit",
                                "price": "1.00"})  # fmt: skip
    tradier_exchange.wait_for(lambda: order(tradier, day)["status"] == "open", interval_s=0.2)
    tradier_exchange.close_day()
    assert order(tradier, day)["status"] == "expired"
    late = placed_id(tradier, **{"class": "option", "option_symbol": CALL,
                                 "side": "buy_to_open", "quantity": "1"})  # fmt: skip
    seen = order(tradier, late)
    assert (seen["status"], seen["exec_quantity"]) == ("pending", 0)  # held until the open


# -- rate limits and faults ---------------------------------------------------------------


def test_reads_and_orders_count_in_their_own_buckets_and_429_past_the_limit(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    tradier_exchange.set_faults(tradier_reads_per_min=3, tradier_orders_per_min=2)
    used = [tradier.get(ORDERS).headers["X-Ratelimit-Used"] for _ in range(3)]
    assert used == ["1", "2", "3"]
    limited = tradier.get(ORDERS)
    assert limited.status_code == 429
    assert limited.headers["X-Ratelimit-Allowed"] == "3"
    assert limited.headers["X-Ratelimit-Available"] == "0"
    assert int(limited.headers["X-Ratelimit-Expiry"]) > 10**12  # epoch milliseconds
    placed = place(tradier, type="limit", price="1")
    assert placed.status_code == 200
    assert placed.headers["X-Ratelimit-Allowed"] == "2"
    assert placed.headers["X-Ratelimit-Available"] == "1"


def test_a_lost_answer_places_the_order_and_answers_504(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    tradier_exchange.set_faults(next_lose_response=1, timeout_s=0)
    response = place(tradier, tag="lost-1", type="limit", price="1")
    assert response.status_code == 504
    listed = body(tradier.get(ORDERS, params={"includeTags": "true"}))["orders"]["order"]
    assert listed["tag"] == "lost-1"
    assert tradier_exchange.truth()[0]["tradier"]["tag"] == "lost-1"


def test_shared_faults_apply_429_and_503(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    tradier_exchange.set_faults(next_429=1, next_5xx=1)
    statuses = {tradier.get(ORDERS).status_code, tradier.get(ORDERS).status_code}
    assert statuses == {429, 503}
    assert tradier.get(ORDERS).status_code == 200


# -- sessions and counts ------------------------------------------------------------------


def test_the_close_expires_day_orders_and_the_next_session_lists_only_its_own(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    tradier_exchange.set_session(3600, overnight_s=0.5)
    day = placed_id(tradier, type="limit", price="1")
    gtc = placed_id(tradier, type="limit", price="1", duration="gtc")
    tradier_exchange.wait_for(lambda: order(tradier, gtc)["status"] == "open")
    tradier_exchange.close_day()
    assert order(tradier, day)["status"] == "expired"
    assert order(tradier, gtc)["status"] == "open"
    listed = body(tradier.get(ORDERS))["orders"]["order"]  # closed: still the day's session
    assert [o["id"] for o in listed] == [day, gtc]
    tradier_exchange.wait_for(lambda: tradier_exchange.clock()["is_open"], timeout_s=5)
    assert body(tradier.get(ORDERS)) == {"orders": "null"}  # a new session
    every = body(tradier.get(ORDERS, params={"filter": "all"}))["orders"]["order"]
    assert [o["id"] for o in every] == [day, gtc]


def test_requests_are_counted_by_route_and_account(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    order_id = placed_id(tradier, type="limit", price="1")
    tradier.get(f"{ORDERS}/{order_id}")
    stats = tradier_exchange.requests()
    assert stats["by_route"]["POST /v1/accounts/{account_id}/orders"] == 1
    assert stats["by_route"]["GET /v1/accounts/{account_id}/orders/{order_id}"] == 1
    assert stats["by_account"][f"tradier:{ACCOUNT}"]["total"] == 2


def test_a_body_that_is_no_form_or_names_a_field_twice_is_refused_by_name(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    not_form = tradier.post(ORDERS, content=b"\xff\xfe", headers={"Content-Type": "text/plain"})
    assert not_form.status_code == 400
    assert "not a form" in body(not_form)["errors"]["error"][0]
    form = b"class=equity&symbol=AAPL&side=buy&quantity=1&quantity=2&type=market"
    twice = tradier.post(
        ORDERS,
        content=form + b"&duration=day",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert body(twice) == {"errors": {"error": ["quantity is given more than once"]}}
    assert tradier_exchange.truth() == []


def test_modifying_and_unknown_resources_are_refused_in_tradiers_shape(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    order_id = placed_id(tradier, type="limit", price="1")
    modify = tradier.put(f"{ORDERS}/{order_id}", data={"price": "2"})
    assert modify.status_code == 400
    assert "modifying an order is not served" in body(modify)["errors"]["error"][0]
    unknown = tradier.get(f"/v1/accounts/{ACCOUNT}/history")
    assert body(unknown) == {
        "errors": {"error": [f"GET /v1/accounts/{ACCOUNT}/history: not found"]}
    }
    assert unknown.status_code == 404
    stranger = httpx.get(f"{tradier_exchange.base_url}/v1/accounts/{ACCOUNT}/history")
    assert stranger.status_code == 401  # the token first, as everywhere


def test_a_rejected_order_is_acknowledged_then_reads_rejected(
    tradier_exchange: PaperExchange, tradier: httpx.Client
) -> None:
    tradier_exchange.set_faults(next_reject=1)
    order_id = placed_id(tradier, type="limit", price="1")
    tradier_exchange.wait_for(lambda: order(tradier, order_id)["status"] == "rejected")
    assert order(tradier, order_id)["remaining_quantity"] == 0
