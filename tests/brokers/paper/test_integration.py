"""The paper exchange as a real process, driven by a plain httpx client with Alpaca headers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from brokers.paper import load
from brokers.paper.model import parse_time, rfc3339
from tests.paper_exchange import PaperExchange

pytestmark = pytest.mark.integration


@pytest.fixture
def client(paper_exchange: PaperExchange) -> Iterator[httpx.Client]:
    paper_exchange.set_price("AAPL", "190.00")
    with httpx.Client(
        base_url=paper_exchange.base_url, headers=paper_exchange.headers, timeout=10
    ) as client:
        yield client


def resting(**extra: object) -> dict[str, object]:
    return {
        "symbol": "AAPL",
        "qty": "3",
        "side": "buy",
        "type": "limit",
        "limit_price": "100.00",
        "time_in_force": "gtc",
        "client_order_id": f"it-{uuid.uuid4()}",
        **extra,
    }


def status_of(paper_exchange: PaperExchange, order_id: str) -> str:
    status: str = paper_exchange.truth_order(order_id)["status"]
    return status


def test_place_get_list_cancel_match_truth(
    paper_exchange: PaperExchange, client: httpx.Client
) -> None:
    paper_exchange.freeze_market()
    body = resting()
    placed = client.post("/v2/orders", json=body).raise_for_status().json()
    order_id = placed["id"]
    # Acknowledged before the cancel: one canceled while still accepted never shows "new".
    paper_exchange.wait_for(lambda: status_of(paper_exchange, order_id) == "new")

    fetched = client.get(f"/v2/orders/{order_id}").json()
    by_cid = client.get(
        "/v2/orders:by_client_order_id", params={"client_order_id": body["client_order_id"]}
    ).json()
    listed = client.get("/v2/orders").json()
    canceled = client.delete(f"/v2/orders/{order_id}")
    paper_exchange.wait_for(lambda: status_of(paper_exchange, order_id) == "canceled")
    final = client.get(f"/v2/orders/{order_id}").json()

    assert placed["status"] == "accepted"
    assert fetched["id"] == by_cid["id"] == order_id
    assert [o["id"] for o in listed] == [order_id]
    assert canceled.status_code == 204
    truth = paper_exchange.truth_order(order_id)
    for field in ("id", "client_order_id", "submitted_at", "qty", "status", "canceled_at"):
        assert final[field] == truth[field]
    assert [t["status"] for t in truth["timeline"]] == [
        "accepted",
        "new",
        "pending_cancel",
        "canceled",
    ]


def test_market_fills_show_in_activities_and_positions(
    paper_exchange: PaperExchange, client: httpx.Client
) -> None:
    bought = client.post("/v2/orders", json=resting(type="market", qty="10")).json()
    paper_exchange.wait_for(lambda: status_of(paper_exchange, bought["id"]) == "filled")

    activities = client.get("/v2/account/activities/FILL", params={"direction": "asc"}).json()
    positions = client.get("/v2/positions").json()

    truth = paper_exchange.truth_order(bought["id"])
    # Listed in id order (its millisecond, then a random uuid, as Alpaca's): two fills in
    # one millisecond may list in either order.
    assert [(a["id"], a["qty"], a["price"], a["transaction_time"]) for a in activities] == [
        (f["id"], f["qty"], f["price"], f["time"]) for f in sorted(truth["fills"],
                                                                   key=lambda f: f["id"])
    ]  # fmt: skip
    assert sum(Decimal(a["qty"]) for a in activities) == 10
    assert [(p["symbol"], p["qty"], p["side"]) for p in positions] == [("AAPL", "10", "long")]


def test_without_credentials_is_401(paper_exchange: PaperExchange) -> None:
    answer = httpx.get(f"{paper_exchange.base_url}/v2/orders")
    wrong = httpx.get(
        f"{paper_exchange.base_url}/v2/orders",
        headers={**paper_exchange.headers, "APCA-API-KEY-ID": "someone-else"},
    )
    assert answer.status_code == wrong.status_code == 401
    assert answer.json() == {"code": 40110000, "message": "request is not authorized"}


def test_rate_limit_headers_and_enforcement(
    paper_exchange: PaperExchange, client: httpx.Client
) -> None:
    paper_exchange.set_faults(rate_limit_per_min=3)
    answers = [client.get("/v2/orders") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-Ratelimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {a.headers["X-Ratelimit-Limit"] for a in answers} == {"3"}
    reset = int(answers[0].headers["X-Ratelimit-Reset"])
    assert time.time() < reset <= time.time() + 61
    assert paper_exchange.requests()["rate_limited"] == 1


def test_injected_429_and_503_are_not_processed(
    paper_exchange: PaperExchange, client: httpx.Client
) -> None:
    paper_exchange.set_faults(next_429=1, next_5xx=1, routes=["POST /v2/orders"])
    body = resting()
    answers = [client.post("/v2/orders", json=body) for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 503, 200]
    assert answers[0].headers["X-Ratelimit-Remaining"] == "0"
    assert [o["client_order_id"] for o in paper_exchange.truth()] == [body["client_order_id"]]
    assert paper_exchange.requests()["faulted"] == 2


def test_timeout_delays_then_processes(paper_exchange: PaperExchange, client: httpx.Client) -> None:
    paper_exchange.set_faults(next_timeout=1, timeout_s=1.0)
    body = resting()
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v2/orders", json=body, timeout=0.2)

    # Processed once the wait is over, although nobody is listening any more.
    order = paper_exchange.wait_for(
        lambda: [
            o for o in paper_exchange.truth() if o["client_order_id"] == body["client_order_id"]
        ]
    )
    assert len(order) == 1


def test_lost_response_is_a_read_timeout_but_the_order_exists(
    paper_exchange: PaperExchange, client: httpx.Client
) -> None:
    paper_exchange.set_faults(next_lose_response=2, timeout_s=0.5)
    short, patient = resting(), resting()

    with pytest.raises(httpx.ReadTimeout):
        client.post("/v2/orders", json=short, timeout=0.2)
    gateway = client.post("/v2/orders", json=patient, timeout=5)

    assert gateway.status_code == 504
    assert gateway.json() == {"code": 50400000, "message": "gateway timeout"}
    cids = {o["client_order_id"] for o in paper_exchange.truth()}
    assert {short["client_order_id"], patient["client_order_id"]} <= cids
    found = client.get(
        "/v2/orders:by_client_order_id", params={"client_order_id": short["client_order_id"]}
    )
    assert found.status_code == 200


def test_latency_is_added(paper_exchange: PaperExchange, client: httpx.Client) -> None:
    paper_exchange.set_faults(latency_ms=[250, 250], routes=["GET /v2/account"])
    started = time.monotonic()
    client.get("/v2/account").raise_for_status()

    assert time.monotonic() - started >= 0.25


def test_load_tool_reports_figures(
    paper_exchange: PaperExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    paper_exchange.set_faults(rate_limit_per_min=123)
    asyncio.run(
        load.run(
            paper_exchange.base_url,
            paper_exchange.key_id,
            paper_exchange.secret_key,
            orders=50,
            concurrency=4,
            seconds=0.3,
        )
    )

    printed = capsys.readouterr().out
    assert "POST (fill the book)" in printed
    assert "GET /v2/orders/{id}" in printed
    assert "errors 0" in printed
    assert paper_exchange.set_faults()["rate_limit_per_min"] == 123


def test_the_fixture_accounts_are_isolated(paper_exchange: PaperExchange) -> None:
    paper_exchange.freeze_market()
    paper_exchange.set_price("AAPL", "190.00")
    keys = [key for key, _ in paper_exchange.accounts]
    body = resting(client_order_id="shared-cid")
    placed = {}
    for key in keys:
        with httpx.Client(
            base_url=paper_exchange.base_url, headers=paper_exchange.headers_for(key), timeout=10
        ) as client:
            placed[key] = client.post("/v2/orders", json=body).raise_for_status().json()["id"]
            assert [o["id"] for o in client.get("/v2/orders").json()] == [placed[key]]
    other = keys[1]
    with httpx.Client(
        base_url=paper_exchange.base_url, headers=paper_exchange.headers_for(other), timeout=10
    ) as client:
        assert client.get(f"/v2/orders/{placed[keys[0]]}").status_code == 404

    assert len(keys) == 8
    assert keys[0] == paper_exchange.key_id
    assert [o["id"] for o in paper_exchange.truth(account=other)] == [placed[other]]
    assert {o["account"] for o in paper_exchange.truth()} == set(keys)
    by_account = paper_exchange.requests()["by_account"]
    assert by_account[other] == {"total": 3, "rate_limited": 0}
    assert paper_exchange.account(other)["buying_power"] == "999700.00"  # 3 x 100.00 held
    wrong = httpx.get(
        f"{paper_exchange.base_url}/v2/orders",
        headers={**paper_exchange.headers_for(other), "APCA-API-SECRET-KEY": "test-secret"},
    )
    assert wrong.status_code == 401


def test_two_hundred_requests_a_minute_per_key(paper_exchange: PaperExchange) -> None:
    with (
        httpx.Client(base_url=paper_exchange.base_url, headers=paper_exchange.headers) as client,
        httpx.Client(
            base_url=paper_exchange.base_url,
            headers=paper_exchange.headers_for("test-key-2"),
        ) as other,
    ):
        answers = [client.get("/v2/clock") for _ in range(201)]
        others = other.get("/v2/clock")

    assert [a.status_code for a in answers] == [200] * 200 + [429]
    assert answers[0].headers["X-Ratelimit-Limit"] == "200"
    assert answers[199].headers["X-Ratelimit-Remaining"] == "0"
    assert answers[200].json() == {"code": 42910000, "message": "rate limit exceeded"}
    assert time.time() < int(answers[200].headers["X-Ratelimit-Reset"]) <= time.time() + 61
    assert others.status_code == 200
    assert others.headers["X-Ratelimit-Remaining"] == "199"
    stats = paper_exchange.requests()["by_account"]
    assert stats[paper_exchange.key_id] == {"total": 201, "rate_limited": 1}


def test_overnight_orders_route_at_the_open_with_one_submitted_at(
    paper_exchange: PaperExchange, client: httpx.Client
) -> None:
    paper_exchange.freeze_market()
    assert paper_exchange.clock()["is_open"] is True  # the fixture's market never closes
    paper_exchange.set_session(3600, 3600)
    day = client.post("/v2/orders", json=resting(time_in_force="day")).json()
    assert paper_exchange.close_day() == {"expired": 1, "done_for_day": 0}
    closed = paper_exchange.clock()
    overnight = [client.post("/v2/orders", json=resting()).json() for _ in range(3)]
    paper_exchange.wait_for(  # acknowledged, and accepted until the open
        lambda: all(paper_exchange.truth_order(o["id"])["parked"] for o in overnight)
    )
    waiting = [paper_exchange.truth_order(o["id"]) for o in overnight]
    assert {o["status"] for o in waiting} == {"accepted"}

    paper_exchange.set_session(3600, 3600)  # a new session starts now: the open

    opened = paper_exchange.clock()
    routed = [client.get(f"/v2/orders/{o['id']}").json() for o in overnight]
    listed = client.get("/v2/orders", params={"direction": "asc"}).json()
    assert paper_exchange.truth_order(day["id"])["status"] == "expired"
    assert closed["is_open"] is False
    assert opened["is_open"] is True
    assert all(o["submitted_at"] == o["created_at"] for o in waiting)
    assert {o["status"] for o in routed} == {"new"}
    assert len({o["submitted_at"] for o in routed}) == 1
    assert all(o["created_at"] < o["submitted_at"] for o in routed)
    assert [o["id"] for o in listed] == [o["id"] for o in overnight]
    at = routed[0]["submitted_at"]
    after = parse_time(at) - 1
    window = client.get(
        "/v2/orders", params={"after": rfc3339(after), "until": rfc3339(after + 2)}
    ).json()
    assert len(window) == 3


def test_a_late_activity_is_listed_later_below_one_seen_before(
    paper_exchange: PaperExchange, client: httpx.Client
) -> None:
    paper_exchange.freeze_market()
    first = client.post("/v2/orders", json=resting()).json()
    second = client.post("/v2/orders", json=resting()).json()
    paper_exchange.set_faults(next_late_activity=1, late_activity_ms=[1500, 1500])
    late = paper_exchange.force_fill(first["id"])["fill"]
    # Activity ids order by their millisecond, then at random (Alpaca's
    # ``<YYYYMMDDhhmmssSSS>::<uuid>``): the second fill must come a millisecond later.
    late_ms = parse_time(paper_exchange.truth_order(first["id"])["fills"][0]["time"]) // 1000
    paper_exchange.wait_for(
        lambda: parse_time(paper_exchange.clock()["timestamp"]) // 1000 > late_ms, timeout_s=5
    )
    on_time = paper_exchange.force_fill(second["id"])["fill"]

    listed = client.get("/v2/account/activities/FILL", params={"direction": "asc"}).json()
    assert [a["id"] for a in listed] == [on_time["id"]]
    assert paper_exchange.truth_order(first["id"])["status"] == "filled"
    paper_exchange.wait_for(
        lambda: len(client.get("/v2/account/activities/FILL").json()) == 2, timeout_s=10
    )

    assert late["id"] < on_time["id"]  # earlier transaction time, so an earlier id
    cursor = client.get(
        "/v2/account/activities/FILL", params={"direction": "asc", "page_token": on_time["id"]}
    ).json()
    assert cursor == []  # paging on from what was seen never meets it
    truth = paper_exchange.truth_order(first["id"])["fills"][0]
    assert parse_time(truth["visible_at"]) - parse_time(truth["time"]) == 1_500_000


def test_an_order_beyond_the_buying_power_is_refused(
    paper_exchange: PaperExchange, client: httpx.Client
) -> None:
    answer = client.post("/v2/orders", json=resting(type="market", qty="6000"))  # 1.14M at 190

    assert answer.status_code == 403
    assert answer.json() == {"code": 40310000, "message": "insufficient buying power"}
    assert paper_exchange.truth() == []
    account = paper_exchange.account()
    assert account["cash"] == account["buying_power"] == account["equity"] == "1000000.00"
