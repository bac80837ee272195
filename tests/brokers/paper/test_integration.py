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
    assert [(a["id"], a["qty"], a["price"], a["transaction_time"]) for a in activities] == [
        (f["id"], f["qty"], f["price"], f["time"]) for f in truth["fills"]
    ]
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
