"""Bearer tokens bound to account ids, OANDA's 401 and 403 bodies, and the time format a
request asks for."""

from __future__ import annotations

import re

import httpx

from tests.brokers.oanda.paper import ACCOUNT, OTHER_ACCOUNT, STRANGER, TOKEN
from tests.paper_exchange import PaperExchange

UNAUTHORIZED = {"errorMessage": "Insufficient authorization to perform request."}
FORBIDDEN = {"errorMessage": "The provided request was forbidden."}


def _get(exchange: PaperExchange, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{exchange.base_url}/v3{path}", headers=headers, timeout=10)


def test_missing_or_unknown_token_is_401_with_oandas_body(oanda_exchange: PaperExchange) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        answer = _get(oanda_exchange, f"/accounts/{ACCOUNT}/summary", **headers)
        assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED)


def test_a_token_opens_its_accounts_only(oanda_exchange: PaperExchange) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert _get(oanda_exchange, f"/accounts/{OTHER_ACCOUNT}/summary", **bearer).status_code == 200
    answer = _get(oanda_exchange, f"/accounts/{STRANGER}/summary", **bearer)
    assert (answer.status_code, answer.json()) == (403, FORBIDDEN)
    listed = _get(oanda_exchange, "/accounts", **bearer).json()
    assert listed == {"accounts": [{"id": ACCOUNT, "tags": []},
                                   {"id": OTHER_ACCOUNT, "tags": []}]}  # fmt: skip


def test_times_are_rfc3339_or_unix_as_asked(oanda_exchange: PaperExchange) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    path = f"/accounts/{ACCOUNT}/summary"
    rfc = _get(oanda_exchange, path, **bearer).json()["account"]["createdTime"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", rfc)
    unix = _get(oanda_exchange, path, **bearer, **{"Accept-Datetime-Format": "UNIX"})
    assert re.fullmatch(r"\d{10}\.\d{9}", unix.json()["account"]["createdTime"])
    bad = _get(oanda_exchange, path, **bearer, **{"Accept-Datetime-Format": "ISO"})
    assert bad.status_code == 400


def test_unknown_path_is_404(oanda_exchange: PaperExchange) -> None:
    answer = _get(oanda_exchange, f"/accounts/{ACCOUNT}/nothing", Authorization=f"Bearer {TOKEN}")
    assert answer.status_code == 404
    assert "errorMessage" in answer.json()


def test_a_token_of_odd_bytes_is_401_not_an_error(oanda_exchange: PaperExchange) -> None:
    headers = {b"Authorization": "Bearer tok\u00e9n".encode("latin-1")}
    for path in (f"/accounts/{ACCOUNT}/summary", "/accounts"):
        answer = httpx.get(f"{oanda_exchange.base_url}/v3{path}", headers=headers, timeout=10)
        assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED)
