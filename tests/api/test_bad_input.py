"""Bad input is refused with a 4xx JSON body whose ``detail`` says what is wrong, and nothing
is written or sent for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiWorld
from tests.api.fixtures import make_order, row_counts

ORDERS = "/api/v1/accounts/alpha/orders"
GOOD = {"symbol": "AAPL", "side": "buy", "quantity": "10"}


@pytest.fixture
def quiet(api: ApiWorld) -> Iterator[ApiWorld]:
    """The API with one open order; the test's requests must leave every count as it was."""
    make_order(api, "alpha", "existing")
    api.client.get(ORDERS, headers=api.auth("alpha"))  # the key's last use is written now
    before = row_counts(api)
    yield api
    assert row_counts(api) == before
    assert api.sent() == []


def refused(answer: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = answer.json()
    for fragment in fragments:
        assert fragment in body["detail"], (fragment, body)
    return body


def post(api: ApiWorld, body: Any, path: str = ORDERS) -> httpx.Response:
    return api.client.post(path, json=body, headers=api.auth("alpha"))


BAD_ORDERS: list[tuple[str, Any, list[str]]] = [  # (what, body, what the detail says)
    ("unknown-field", {**GOOD, "colour": "red"}, ["colour: unknown field"]),
    ("account-field", {**GOOD, "account": "beta"}, ["account: unknown field"]),
    ("float-quantity", {**GOOD, "quantity": 10.5}, ["quantity", "send decimals as strings"]),
    ("float-limit-price", {**GOOD, "order_type": "limit", "limit_price": 187.25},
     ["limit_price", "send decimals as strings"]),
    ("bool-quantity", {**GOOD, "quantity": True}, ["quantity"]),
    ("negative", {**GOOD, "quantity": "-1"}, ["quantity", "must be positive"]),
    ("zero", {**GOOD, "quantity": "0"}, ["quantity", "must be positive"]),
    ("words", {**GOOD, "quantity": "ten"}, ["quantity", "is not a decimal"]),
    ("nan", {**GOOD, "quantity": "NaN"}, ["quantity", "not a finite decimal"]),
    ("huge", {**GOOD, "quantity": "1" * 30}, ["quantity", "out of range"]),
    ("limit-on-market", {**GOOD, "limit_price": "100"},
     ["limit_price is not allowed for a market order"]),
    ("limit-without-price", {**GOOD, "order_type": "limit"},
     ["limit_price is required for a limit order"]),
    ("exit-without-trade", {**GOOD, "intent": "EXIT"}, ["an EXIT order needs trade_id"]),
    ("symbol-space", {**GOOD, "symbol": "AA PL"}, ["symbol"]),
    ("symbol-semicolon", {**GOOD, "symbol": "AAPL;DROP"}, ["symbol"]),
    ("symbol-empty", {**GOOD, "symbol": ""}, ["symbol"]),
    ("bad-side", {**GOOD, "side": "long"}, ["side"]),
    ("unplaceable-type", {**GOOD, "order_type": "trailing_stop"}, ["cannot be placed"]),
    ("missing-quantity", {"symbol": "AAPL", "side": "buy"}, ["give quantity or notional"]),
    ("bad-client-id", {**GOOD, "client_order_id": "has space"}, ["client_order_id"]),
    ("two-deadlines", {**GOOD, "valid_for_s": 1, "expires_at": "2030-01-01T00:00:00Z"},
     ["expires_at or valid_for_s, not both"]),
    ("naive-deadline", {**GOOD, "expires_at": "2030-01-01T00:00:00"}, ["expires_at"]),
    ("a-list", [GOOD], ["Input should be a valid dictionary"]),
]  # fmt: skip


def test_a_bad_order_is_refused_saying_why(quiet: ApiWorld) -> None:
    for what, body, fragments in BAD_ORDERS:
        answer = refused(post(quiet, body), 422, *fragments)
        assert answer["errors"], (what, answer)
        assert all({"where", "message", "type"} <= set(e) for e in answer["errors"])


def test_each_problem_is_named_with_its_place(quiet: ApiWorld) -> None:
    body = refused(post(quiet, {**GOOD, "quantity": "-1", "side": "long", "x": 1}), 422)
    assert sorted(e["where"] for e in body["errors"]) == ["quantity", "side", "x"]
    assert all(set(e) == {"where", "message", "type"} for e in body["errors"])  # no raw input
    assert body["detail"].count(";") == 2


def test_a_malformed_order_id_in_the_path_is_422(quiet: ApiWorld) -> None:
    for path in [
        "not-a-uuid",
        "12345",
        "00000000-0000-0000-0000-00000000000g",
        "00000000000000000000000000000000",
        "00000000-0000-4000-8000-00000000000A",
    ]:
        for method, url in [
            ("GET", f"{ORDERS}/{path}"),
            ("POST", f"{ORDERS}/{path}/cancel"),
            ("POST", f"{ORDERS}/{path}/sync"),
        ]:
            answer = quiet.client.request(method, url, headers=quiet.auth("alpha"))
            refused(answer, 422, "order_id")


def test_a_body_over_the_limit_is_413_declared_or_streamed(quiet: ApiWorld) -> None:
    limit = quiet.settings.api_max_body_bytes
    big = json.dumps({**GOOD, "decision_id": "d" * limit}).encode()
    assert len(big) > limit
    headers = {**quiet.auth("alpha"), "Content-Type": "application/json"}
    declared = quiet.client.post(ORDERS, content=big, headers=headers)
    refused(declared, 413, f"body larger than {limit} bytes")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    streamed = quiet.client.post(ORDERS, content=chunks(), headers=headers)
    assert "content-length" not in streamed.request.headers
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    refused(streamed, 413, f"body larger than {limit} bytes")


def test_a_streamed_body_under_the_limit_is_taken(api: ApiWorld) -> None:
    raw = json.dumps(GOOD).encode()
    headers = {**api.auth("alpha"), "Content-Type": "application/json"}
    answer = api.client.post(ORDERS, content=iter([raw[:5], raw[5:]]), headers=headers)
    assert answer.status_code == 202, answer.text
    assert [task for task, _ in api.sent()] == ["ordersync.place_order"]


def test_a_body_that_is_not_json_is_415(quiet: ApiWorld) -> None:
    for content_type, content in [
        ("text/plain", json.dumps(GOOD)),
        ("application/x-www-form-urlencoded", "symbol=AAPL&side=buy&quantity=10"),
        ("multipart/form-data; boundary=x", "--x\r\n\r\n--x--"),
        ("application/jsonx", json.dumps(GOOD)),
    ]:
        headers = {**quiet.auth("alpha"), "Content-Type": content_type}
        answer = quiet.client.post(ORDERS, content=content, headers=headers)
        refused(answer, 415, "Content-Type: application/json")


def test_a_form_post_is_415(quiet: ApiWorld) -> None:
    answer = quiet.client.post(ORDERS, data={"symbol": "AAPL"}, headers=quiet.auth("alpha"))
    refused(answer, 415, "send the body as JSON")


def test_invalid_json_is_422(quiet: ApiWorld) -> None:
    headers = {**quiet.auth("alpha"), "Content-Type": "application/json"}
    for content in ['{"symbol": "AAPL",', "not json", "", "{'a': 1}"]:
        answer = quiet.client.post(ORDERS, content=content, headers=headers)
        refused(answer, 422)
        assert answer.json()["detail"], content


def test_bad_event_paging_is_422(quiet: ApiWorld) -> None:
    for query, fragment in [("?after=-1", "after"), ("?after=x", "after"), ("?limit=0", "limit"),
                            ("?limit=1001", "limit"), (f"?after={2**63}", "after")]:  # fmt: skip
        url = f"/api/v1/accounts/alpha/events{query}"
        refused(quiet.client.get(url, headers=quiet.auth("alpha")), 422, fragment)


def test_bad_order_list_parameters_are_422(quiet: ApiWorld) -> None:
    for query, fragment in [
        ("?limit=0", "limit"), ("?limit=x", "limit"), ("?symbol=AA%20PL", "symbol"),
        ("?intent=MAYBE", "intent"), ("?created_before=yesterday", "created_before"),
    ]:  # fmt: skip
        refused(quiet.client.get(f"{ORDERS}{query}", headers=quiet.auth("alpha")), 422, fragment)


def test_bad_trade_and_stream_parameters_are_422(quiet: ApiWorld) -> None:
    base = "/api/v1/accounts/alpha"
    for url, headers in [
        (f"{base}/trades?status=pending", {}),
        (f"{base}/trades?limit=0", {}),
        (f"{base}/events/stream?after=-1", {}),
        (f"{base}/events/stream", {"Last-Event-ID": "abc"}),
    ]:
        refused(quiet.client.get(url, headers={**quiet.auth("alpha"), **headers}), 422)


def test_a_whole_number_out_of_range_is_refused_not_a_crash(api: ApiWorld) -> None:
    body = {"symbol": "AAPL", "side": "buy", "quantity": 10**40}
    answer = api.client.post("/api/v1/accounts/alpha/orders", headers=api.auth("alpha"),
                             json=body)  # fmt: skip
    assert answer.status_code == 422
    assert "out of range" in answer.json()["detail"]
    assert api.sent() == []


def test_a_content_length_that_is_no_number_is_a_bad_request(api: ApiWorld) -> None:
    answer = api.client.post("/api/v1/accounts/alpha/orders", content=b"{}",
                             headers={**api.auth("alpha"), "Content-Type": "application/json",
                                      "Content-Length": "ten"})  # fmt: skip
    assert answer.status_code == 400
    assert "Content-Length" in answer.json()["detail"]
