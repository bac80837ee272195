"""Orders through the API: the list and its filters, cursor pages, one order by each of its
three ids with everything tied to it, placing (the task really sent), and cancelling."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.enums import Intent, OrderStatus
from models.orders import Account
from tests.api.conftest import ApiWorld
from tests.api.fixtures import (
    add_history,
    apply,
    at,
    closed_trade,
    make_order,
    random_order_id,
    row_counts,
    without,
)

S = OrderStatus
DASH = "\u2013"


def listed(api: ApiWorld, query: str = "", account: str = "alpha") -> list[str]:
    answer = api.client.get(f"/api/v1/accounts/{account}/orders{query}", headers=api.auth(account))
    assert answer.status_code == 200, answer.text
    return [o["client_order_id"] for o in answer.json()["items"]]


def test_the_list_shows_open_orders_unless_asked_for_other_statuses(api: ApiWorld) -> None:
    for n, status in enumerate([S.PENDING_NEW, S.NEW, S.PARTIALLY_FILLED, S.PENDING_CANCEL,
                                S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED]):  # fmt: skip
        make_order(api, "alpha", status.value.lower(), status=status, created_at=at(n))
    newest_first = ["expired", "rejected", "canceled", "filled", "pending_cancel",
                    "partially_filled", "new", "pending_new"]  # fmt: skip
    open_ = ["pending_cancel", "partially_filled", "new", "pending_new"]
    closed = ["expired", "rejected", "canceled", "filled"]

    assert listed(api) == open_
    assert listed(api, "?status=open") == open_
    assert listed(api, "?status=closed") == closed
    assert listed(api, "?status=all") == newest_first
    assert listed(api, "?status=open&status=closed") == newest_first
    assert listed(api, "?status=filled") == ["filled"]
    assert listed(api, "?status=CANCELED") == ["canceled"]
    assert listed(api, "?status=new&status=rejected") == ["rejected", "new"]
    assert listed(api, "?status=open&status=filled") == ["filled", *open_]

    for query in ["?status=bogus", "?status=all&status=bogus", "?status=new&status=fild"]:
        unknown = api.client.get(f"/api/v1/accounts/alpha/orders{query}",
                                 headers=api.auth("alpha"))  # fmt: skip
        assert unknown.status_code == 422, query
        assert "unknown status '" in unknown.json()["detail"]
        assert "PARTIALLY_FILLED" in unknown.json()["detail"]  # says what it may be


def test_the_list_filters_by_symbol_intent_and_creation_time(api: ApiWorld) -> None:
    make_order(api, "alpha", "aapl-entry", symbol="AAPL", intent=Intent.ENTRY, created_at=at(0))
    make_order(api, "alpha", "msft-entry", symbol="MSFT", intent=Intent.ENTRY, created_at=at(10))
    make_order(api, "alpha", "msft-exit", symbol="MSFT", intent=Intent.EXIT, trade_id="t",
               created_at=at(20))  # fmt: skip
    make_order(api, "alpha", "msft-plain", symbol="MSFT", created_at=at(30))

    assert listed(api, "?symbol=MSFT") == ["msft-plain", "msft-exit", "msft-entry"]
    assert listed(api, "?symbol=msft") == ["msft-plain", "msft-exit", "msft-entry"]
    assert listed(api, "?symbol=NVDA") == []
    assert listed(api, "?intent=ENTRY") == ["msft-entry", "aapl-entry"]
    assert listed(api, "?intent=EXIT") == ["msft-exit"]
    assert listed(api, "?intent=ENTRY&symbol=AAPL") == ["aapl-entry"]
    after, before = at(10).isoformat(), at(30).isoformat()
    # created_after is inclusive, created_before exclusive
    assert listed(api, "?" + _q(created_after=after)) == ["msft-plain", "msft-exit", "msft-entry"]
    assert listed(api, "?" + _q(created_before=before)) == ["msft-exit", "msft-entry",
                                                            "aapl-entry"]  # fmt: skip
    assert listed(api, "?" + _q(created_after=after, created_before=before)) == [
        "msft-exit", "msft-entry"]  # fmt: skip
    # Another offset is the same instant: 15:30:10+01:00 is 14:30:10 UTC.
    assert listed(api, "?" + _q(created_after="2026-12-01T15:30:10+01:00")) == [
        "msft-plain", "msft-exit", "msft-entry"]  # fmt: skip
    for query in ["created_after=2026-12-01T14:30:00",  # no offset
                  "created_after=0001-01-01T00:00:00%2B01:00",  # out of range in UTC
                  "created_before=9999-12-31T23:59:59-01:00"]:  # fmt: skip
        bad = api.client.get(f"/api/v1/accounts/alpha/orders?{query}", headers=api.auth("alpha"))
        assert bad.status_code == 422, query
        assert query.split("=")[0] in bad.json()["detail"]


def _q(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def test_cursor_pages_return_every_order_once_newest_first(api: ApiWorld) -> None:
    # Two pairs share a creation time: the id breaks the tie, so no page skips or repeats.
    seconds = [0, 1, 1, 2, 3, 3, 4]
    ids = [make_order(api, "alpha", f"p-{n}", created_at=at(s)) for n, s in enumerate(seconds)]
    make_order(api, "beta", "beta-order", created_at=at(2))
    expected = [i for _, i in sorted(zip(seconds, ids, strict=True), reverse=True)]

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        answer = api.client.get(f"/api/v1/accounts/alpha/orders{query}", headers=api.auth("alpha"))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages.append([o["order_id"] for o in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 5, "the pages never end"
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == expected


def test_a_cursor_this_api_did_not_return_is_refused(api: ApiWorld) -> None:
    make_order(api, "alpha", "one")

    def encoded(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    an_id = random_order_id()
    for cursor in [
        "garbage!", "Zm9v", encoded({"a": 1}), encoded(["2026-12-01T14:30:00+00:00"]),
        encoded(["2026-12-01T14:30:00", an_id]),  # no UTC offset
        encoded(["0001-01-01T00:00:00+01:00", an_id]),  # before year 1 once in UTC
        encoded(["2026-12-01T14:30:00+00:00", "\x00"]),  # not an order id
        encoded(["2026-12-01T14:30:00+00:00", an_id.upper()]),
        encoded(["2026-12-01T14:30:00+00:00", 7]),
    ]:  # fmt: skip
        answer = api.client.get("/api/v1/accounts/alpha/orders", params={"cursor": cursor},
                                headers=api.auth("alpha"))  # fmt: skip
        assert answer.status_code == 422, cursor
        assert answer.json()["detail"] == "cursor is not one this API returned"


def detail(api: ApiWorld, path: str, account: str = "alpha") -> dict[str, Any]:
    answer = api.client.get(f"/api/v1/accounts/{account}/orders/{path}", headers=api.auth(account))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_one_order_by_each_of_its_ids_with_history_fills_trade_and_outcome(api: ApiWorld) -> None:
    entry, exit_ = closed_trade(api, "alpha", "t-1")
    report = {"id": "b-t-1-exit", "status": "filled", "filled_qty": "10"}
    add_history(api, exit_, report=json.dumps(report), detail="the last report", second=61)

    by_id = detail(api, exit_)
    assert detail(api, "by-client-id/t-1-exit") == by_id
    assert detail(api, "by-broker-id/b-t-1-exit") == by_id

    order = by_id["order"]
    assert order["order_id"] == exit_
    assert (order["account"], order["client_order_id"], order["broker_order_id"]) == (
        "alpha", "t-1-exit", "b-t-1-exit")  # fmt: skip
    assert (order["symbol"], order["side"], order["intent"], order["trade_id"]) == (
        "AAPL", "sell", "EXIT", "t-1")  # fmt: skip
    assert (order["status"], order["quantity"], order["filled_quantity"]) == (
        "FILLED", "10", "10")  # fmt: skip
    assert (order["average_fill_price"], order["fees"]) == ("110", "0.5")
    assert order["lifecycle"] == f"Exit filled {DASH} trade CLOSED"
    assert order["created_at"] == "2026-12-01T14:30:30Z"

    assert [(h["from_status"], h["to_status"]) for h in by_id["history"]][-1] == ("NEW", None)
    assert any(h["to_status"] == "FILLED" for h in by_id["history"])
    assert [h["id"] for h in by_id["history"]] == sorted(h["id"] for h in by_id["history"])
    assert by_id["last_broker_report"] == report

    assert [(f["broker_fill_id"], f["quantity"], f["price"], f["fee"]) for f in by_id["fills"]] == [
        ("t-1-x1", "10", "110", "0.5")]  # fmt: skip

    trade = by_id["trade"]
    assert (trade["trade_id"], trade["status"], trade["entry_order_id"]) == ("t-1", "CLOSED", entry)
    assert (trade["entry_quantity"], trade["exit_quantity"], trade["open_quantity"]) == (
        "10", "10", "0")  # fmt: skip
    assert (trade["entry_average_price"], trade["exit_average_price"]) == ("100", "110")
    assert trade["realized_pnl"] == "99"  # 100 gained, two fees of 0.50
    assert trade["lifecycle"] == f"Trade CLOSED {DASH} 10 exited {DASH} realized PnL 99"
    outcome = by_id["outcome"]
    assert (outcome["quantity"], outcome["realized_pnl"], outcome["fees"]) == ("10", "99", "1")
    assert (outcome["entry_average_price"], outcome["exit_average_price"]) == ("100", "110")
    assert by_id["links"] == {"replaced_by": None, "replaces": None, "parent": None, "legs": []}

    entry_detail = detail(api, entry)
    assert entry_detail["order"]["lifecycle"] == f"Entry filled {DASH} trade CLOSED"
    assert entry_detail["trade"] == trade


def test_an_order_without_trade_or_reports_has_none(api: ApiWorld) -> None:
    order_id = api.add_order("alpha", "plain", filled="4", price="12.5",
                             status=S.PARTIALLY_FILLED)  # fmt: skip
    body = detail(api, order_id)
    assert (body["trade"], body["outcome"], body["last_broker_report"], body["history"]) == (
        None, None, None, [])  # fmt: skip
    assert body["order"]["lifecycle"] == f"Order partially filled {DASH} 4 of 10"
    assert [(f["quantity"], f["price"]) for f in body["fills"]] == [("4", "12.5")]
    add_history(api, order_id, report="not json {", detail="odd", second=3)
    assert detail(api, order_id)["last_broker_report"] == {"unparsed": "not json {"}


def listed_orders(api: ApiWorld) -> list[dict[str, Any]]:
    answer = api.client.get("/api/v1/accounts/alpha/orders", headers=api.auth("alpha"))
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_a_notional_order_shows_its_amount_and_no_quantity(api: ApiWorld) -> None:
    order_id = make_order(api, "alpha", "notional-1", notional="500", intent=Intent.ENTRY,
                          trade_id="t-n")  # fmt: skip
    apply(api, order_id, S.PARTIALLY_FILLED, "1", ("n-1", "1", "200"), second=1)
    order = detail(api, order_id)["order"]
    assert (order["quantity"], order["notional"]) == (None, "500")
    assert order["lifecycle"] == f"Entry partially filled {DASH} 1 of $500 {DASH} trade OPEN"
    assert [o["notional"] for o in listed_orders(api)] == ["500"]

    apply(api, order_id, S.FILLED, "2.5", ("n-1", "1", "200"), ("n-2", "1.5", "200"), second=2)
    order = detail(api, order_id)["order"]
    assert (order["status"], order["filled_quantity"]) == ("FILLED", "2.5")
    assert order["lifecycle"] == f"Entry filled {DASH} trade OPEN"


def test_an_unknown_id_of_each_kind_is_404(api: ApiWorld) -> None:
    for path in [random_order_id(), "by-client-id/nope", "by-broker-id/nope"]:
        answer = api.client.get(f"/api/v1/accounts/alpha/orders/{path}", headers=api.auth("alpha"))
        assert answer.status_code == 404, path
        assert answer.json()["detail"] == f"no order {path.rsplit('/', 1)[-1]!r} in this account"


# --- placing ---------------------------------------------------------------------------------


def place(api: ApiWorld, body: dict[str, Any], account: str = "alpha") -> Any:
    return api.client.post(f"/api/v1/accounts/{account}/orders", json=body,
                           headers=api.auth(account))  # fmt: skip


def test_placing_sends_the_place_order_task_with_the_paths_account_and_the_bodys_terms(
    api: ApiWorld,
) -> None:
    answer = place(
        api,
        {
            "symbol": "msft",
            "side": "buy",
            "quantity": "12",
            "order_type": "limit",
            "limit_price": "187.25",
            "time_in_force": "gtc",
            "intent": "ENTRY",
            "requested_price": "187",
            "valid_for_s": 30,
        },
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    client_order_id = body["client_order_id"]
    assert client_order_id.startswith("os-")
    url = f"/api/v1/accounts/alpha/orders/by-client-id/{client_order_id}"
    assert (answer.headers["Location"], body["status_url"]) == (url, url)
    assert len(body["task_id"]) == 36

    [(task, kwargs)] = api.sent()
    assert task == "ordersync.place_order"
    assert kwargs == {
        "account": "alpha", "symbol": "MSFT", "side": "buy", "quantity": "12",
        "order_type": "limit", "limit_price": "187.25", "time_in_force": "gtc",
        "intent": "ENTRY", "requested_price": "187", "valid_for_s": 30.0,
        "client_order_id": client_order_id,
    }  # fmt: skip
    assert all(isinstance(kwargs[k], str) for k in ("quantity", "limit_price", "requested_price"))
    # Sent, not written: the worker writes the order.
    assert row_counts(api)["orders"] == 0
    # The answer's status URL finds the order once a worker has written it.
    make_order(api, "alpha", client_order_id)
    assert api.client.get(url, headers=api.auth("alpha")).status_code == 200


def test_terms_the_broker_would_refuse_get_422_and_nothing_is_sent(api: ApiWorld) -> None:
    body = {"symbol": "BTC/USD", "side": "buy", "quantity": "0.5", "time_in_force": "day"}
    answer = place(api, body)
    assert answer.status_code == 422
    assert "BTC/USD is crypto: time_in_force must be gtc or ioc, not day" in answer.text
    assert api.sent() == []
    crypto = place(api, {"symbol": "BTC/USD", "side": "buy", "quantity": "0.5"})
    assert crypto.status_code == 202, crypto.text
    [(_, kwargs)] = api.sent()
    assert "time_in_force" not in kwargs  # the worker gives crypto its default, gtc


def test_a_notional_order_is_sent_with_its_amount(api: ApiWorld) -> None:
    answer = place(api, {"symbol": "aapl", "side": "buy", "notional": "500.25"})
    assert answer.status_code == 202, answer.text
    [(_, kwargs)] = api.sent()
    assert (kwargs["notional"], "quantity" in kwargs) == ("500.25", False)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"quantity": "1", "notional": "500"}, "give quantity or notional (an amount of money), "
         "not both"),
        ({}, "give quantity or notional (an amount of money)"),
        ({"notional": "500", "order_type": "limit", "limit_price": "10"},
         "a notional order must be market, not limit"),
        ({"notional": "500", "time_in_force": "gtc"},
         "a notional order of AAPL must be day, not gtc"),
        ({"quantity": "1.5", "time_in_force": "gtc"},
         "a fractional quantity of AAPL (1.5) must be a market order, day, not market, gtc"),
    ],
)  # fmt: skip
def test_notional_and_fractional_terms_the_broker_refuses_get_422(
    api: ApiWorld, body: dict[str, str], problem: str
) -> None:
    answer = place(api, {"symbol": "AAPL", "side": "buy", **body})
    assert answer.status_code == 422
    assert answer.json()["detail"] == problem
    assert api.sent() == []


def test_a_repeated_request_is_the_same_order(api: ApiWorld) -> None:
    terms = {"symbol": "AAPL", "side": "sell", "quantity": "3"}
    by_client_id = [place(api, {**terms, "client_order_id": "mine-1"}).json() for _ in range(2)]
    by_decision = [place(api, {**terms, "decision_id": "d-7"}).json() for _ in range(2)]
    fresh = [place(api, terms).json() for _ in range(2)]

    assert [b["client_order_id"] for b in by_client_id] == ["mine-1", "mine-1"]
    assert by_decision[0]["client_order_id"] == by_decision[1]["client_order_id"]
    assert by_decision[0]["client_order_id"] != fresh[0]["client_order_id"]
    assert fresh[0]["client_order_id"] != fresh[1]["client_order_id"]
    # The same decision in another account is another order.
    beta = place(api, {**terms, "decision_id": "d-7"}, account="beta").json()
    assert beta["client_order_id"] != by_decision[0]["client_order_id"]
    sent = [kwargs["client_order_id"] for _, kwargs in api.sent()]
    assert sent == [b["client_order_id"] for b in [*by_client_id, *by_decision, *fresh, beta]]
    assert len({b["task_id"] for b in [*by_client_id, *by_decision, *fresh]}) == 6


def test_a_disabled_account_places_nothing(api: ApiWorld) -> None:
    with Session(api.engine) as session:
        session.execute(update(Account).where(Account.name == "alpha").values(is_active=False))
        session.commit()
    before = row_counts(api)
    answer = place(api, {"symbol": "AAPL", "side": "buy", "quantity": "1"})
    assert answer.status_code == 409
    assert answer.json() == {"detail": "account 'alpha' is disabled"}
    assert row_counts(api) == before
    assert api.sent() == []


# --- cancelling ------------------------------------------------------------------------------


def test_cancelling_an_open_order_sends_the_cancel_task(api: ApiWorld) -> None:
    for status in (S.NEW, S.PARTIALLY_FILLED, S.PENDING_NEW):
        order_id = make_order(api, "alpha", f"c-{status.value}", status=status)
        answer = api.client.post(f"/api/v1/accounts/alpha/orders/{order_id}/cancel",
                                 headers=api.auth("alpha"))  # fmt: skip
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert (body["order_id"], body["status"]) == (order_id, status.value)
        assert "PENDING_CANCEL" in body["detail"]
        assert api.sent()[-1] == ("ordersync.cancel_order",
                                  {"account": "alpha", "order_id": order_id})  # fmt: skip
    assert len(api.sent()) == 3


def test_cancelling_a_finished_order_is_a_conflict(api: ApiWorld) -> None:
    for status in (S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED):
        order_id = make_order(api, "alpha", f"t-{status.value}", status=status)
        answer = api.client.post(f"/api/v1/accounts/alpha/orders/{order_id}/cancel",
                                 headers=api.auth("alpha"))  # fmt: skip
        assert answer.status_code == 409, status
        assert answer.json() == {"detail": f"order {order_id} is {status.value}: nothing to cancel"}
    assert api.sent() == []


def test_cancelling_another_accounts_order_looks_like_cancelling_none(api: ApiWorld) -> None:
    theirs = make_order(api, "beta", "theirs")
    missing = random_order_id()
    answers = [api.client.post(f"/api/v1/accounts/alpha/orders/{i}/cancel",
                               headers=api.auth("alpha")) for i in (theirs, missing)]  # fmt: skip
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].headers.keys() == answers[1].headers.keys()
    assert without(answers[0].json(), theirs, "ID") == without(answers[1].json(), missing, "ID")
    assert api.sent() == []


def test_one_sync_of_an_order_at_a_time(api: ApiWorld) -> None:
    """A second sync of an order while one runs is refused at once, not queued behind it
    holding a server thread and the account's request budget."""
    order_id = api.add_order("alpha", "a-sync")
    api.redis.set(f"ordersync:api:sync:{order_id}", "1", ex=30)  # one is running
    answer = api.client.post(f"/api/v1/accounts/alpha/orders/{order_id}/sync",
                             headers=api.auth("alpha"))  # fmt: skip
    assert answer.status_code == 409
    assert "being synced already" in answer.json()["detail"]
    assert answer.headers["Retry-After"] == "1"
