"""Replacing through the API: checked against the order as it is, then the replace task
really sent; refusals send nothing; one order's detail links both ends of a replacement."""

from __future__ import annotations

import httpx
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.enums import OrderStatus, OrderType
from models.orders import Account, Order
from tests.api.conftest import ApiWorld
from tests.api.fixtures import make_order, random_order_id, without

S = OrderStatus


def replace(api: ApiWorld, order_id: str, body: dict[str, object],
            account: str = "alpha") -> httpx.Response:  # fmt: skip
    return api.client.post(f"/api/v1/accounts/{account}/orders/{order_id}/replace", json=body,
                           headers=api.auth(account))  # fmt: skip


def limit_order(api: ApiWorld, client_order_id: str = "l-1", **fields: object) -> str:
    return make_order(api, "alpha", client_order_id, order_type=OrderType.LIMIT,
                      limit_price="100", **fields)  # type: ignore[arg-type]  # fmt: skip


def test_replacing_sends_the_replace_task_and_answers_where_to_look(api: ApiWorld) -> None:
    order_id = limit_order(api)
    answer = replace(api, order_id, {"limit_price": "101.25", "quantity": "4"})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["replaces"] == order_id
    assert body["status_url"] == (
        f"/api/v1/accounts/alpha/orders/by-client-id/{body['client_order_id']}"
    )
    assert answer.headers["Location"] == body["status_url"]
    assert api.sent() == [("ordersync.replace_order", {
        "account": "alpha", "order_id": order_id, "limit_price": "101.25", "quantity": "4",
        "new_client_order_id": body["client_order_id"]})]  # fmt: skip


def test_a_given_client_order_id_makes_a_retried_request_the_same_replacement(
    api: ApiWorld,
) -> None:
    order_id = limit_order(api)
    answers = [replace(api, order_id, {"limit_price": "99", "new_client_order_id": "mine-1"})
               for _ in range(2)]  # fmt: skip
    assert [a.json()["client_order_id"] for a in answers] == ["mine-1", "mine-1"]
    assert [kwargs["new_client_order_id"] for _, kwargs in api.sent()] == ["mine-1", "mine-1"]


def test_an_order_that_cannot_be_replaced_is_a_conflict(api: ApiWorld) -> None:
    cases = {
        limit_order(api, "done", status=S.FILLED): "is FILLED: only a working order",
        limit_order(api, "canceling", status=S.PENDING_CANCEL): "has a cancel pending",
    }
    with Session(api.engine) as session:
        unacked = limit_order(api, "unacked", status=S.PENDING_NEW)
        session.execute(update(Order).where(Order.id == unacked).values(broker_order_id=None))
        session.commit()
    cases[unacked] = "not acknowledged by the broker yet"
    working = limit_order(api, "working")
    first = replace(api, working, {"limit_price": "99"})
    assert first.status_code == 202
    for order_id, problem in cases.items():
        answer = replace(api, order_id, {"limit_price": "99"})
        assert answer.status_code == 409, answer.text
        assert problem in answer.json()["detail"]
    assert len(api.sent()) == 1


def test_bad_terms_are_refused_and_nothing_is_sent(api: ApiWorld) -> None:
    order_id = limit_order(api)
    market = make_order(api, "alpha", "m-1")
    cases = [
        (order_id, {}, "give at least one of quantity"),
        (order_id, {"quantity": 4.5}, "send decimals as strings"),
        (order_id, {"quantity": "-1"}, "must be positive"),
        (order_id, {"stop_price": "90"}, "stop_price does not apply to a limit order"),
        (order_id, {"limit_price": "100"}, "the changes leave order"),
        (order_id, {"limit_price": "99", "account": "beta"}, "account"),
        (order_id, {"time_in_force": "opg"}, "time_in_force opg cannot be placed"),
        (market, {"limit_price": "99"}, "limit_price does not apply to a market order"),
    ]
    for target, body, problem in cases:
        answer = replace(api, target, body)
        assert answer.status_code == 422, (body, answer.text)
        assert problem in answer.text, (body, answer.text)
    assert api.sent() == []


def test_replacing_another_accounts_order_looks_like_replacing_none(api: ApiWorld) -> None:
    theirs = make_order(api, "beta", "theirs", order_type=OrderType.LIMIT, limit_price="10")
    missing = random_order_id()
    answers = [replace(api, i, {"limit_price": "11"}) for i in (theirs, missing)]
    assert [a.status_code for a in answers] == [404, 404]
    assert without(answers[0].json(), theirs, "ID") == without(answers[1].json(), missing, "ID")
    assert api.sent() == []


def test_a_disabled_account_replaces_nothing(api: ApiWorld) -> None:
    order_id = limit_order(api)
    with Session(api.engine) as session:
        session.execute(update(Account).where(Account.name == "alpha").values(is_active=False))
        session.commit()
    answer = replace(api, order_id, {"limit_price": "99"})
    assert answer.status_code == 409
    assert api.sent() == []


def test_the_detail_links_both_ends_of_a_replacement(api: ApiWorld) -> None:
    old = limit_order(api, "old", status=S.REPLACED)
    new = limit_order(api, "new")
    with Session(api.engine) as session:
        session.execute(update(Order).where(Order.id == old).values(replaced_by_id=new))
        session.execute(update(Order).where(Order.id == new).values(replaces_id=old))
        session.commit()
    links = {
        order_id: api.client.get(f"/api/v1/accounts/alpha/orders/{order_id}",
                                 headers=api.auth("alpha")).json()["links"]
        for order_id in (old, new)
    }  # fmt: skip
    assert links[old] == {"replaced_by": new, "replaces": None, "parent": None, "legs": []}
    assert links[new] == {"replaced_by": None, "replaces": old, "parent": None, "legs": []}


def test_a_cancel_of_a_replaced_order_goes_to_the_order_in_its_place(api: ApiWorld) -> None:
    old = limit_order(api, "old", status=S.REPLACED)
    new = limit_order(api, "new")
    unlinked = limit_order(api, "unlinked", status=S.REPLACED)
    with Session(api.engine) as session:
        session.execute(update(Order).where(Order.id == old).values(replaced_by_id=new))
        session.commit()
    for order_id in (old, unlinked):  # the task finds the live order (or waits to know it)
        answer = api.client.post(f"/api/v1/accounts/alpha/orders/{order_id}/cancel",
                                 headers=api.auth("alpha"))  # fmt: skip
        assert answer.status_code == 202, answer.text
    with Session(api.engine) as session:
        session.execute(update(Order).where(Order.id == new).values(status=S.FILLED))
        session.commit()
    answer = api.client.post(f"/api/v1/accounts/alpha/orders/{old}/cancel",
                             headers=api.auth("alpha"))  # fmt: skip
    assert answer.status_code == 409
    assert answer.json()["detail"] == (
        f"order {new} is FILLED: nothing to cancel (it was replaced by order {new})"
    )
    assert len(api.sent()) == 2


def test_a_replace_asked_again_once_its_row_exists_is_answered_the_same(api: ApiWorld) -> None:
    old = limit_order(api, "old")
    limit_order(api, "mine-1")
    with Session(api.engine) as session:
        session.execute(update(Order).where(Order.client_order_id == "mine-1")
                        .values(replaces_id=old))  # fmt: skip
        session.commit()
    answer = replace(api, old, {"limit_price": "99", "new_client_order_id": "mine-1"})
    assert answer.status_code == 202, answer.text
    assert (answer.json()["client_order_id"], answer.json()["task_id"]) == ("mine-1", None)
    taken = replace(api, old, {"limit_price": "99", "new_client_order_id": "old"})
    assert taken.status_code == 409
    assert api.sent() == []
