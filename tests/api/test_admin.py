"""Who reaches what: an account key reaches its own account only, and another account (or
another account's order) looks exactly like one that does not exist; the admin key reaches
every account; the admin-only debug view refuses account keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from core.reports import OrderReport, Page
from tests.api.conftest import ApiWorld
from tests.api.fixtures import make_order, random_order_id, row_counts, without

ORDER_ID = "00000000-0000-4000-8000-000000000000"  # valid, and nobody's
PLACE = {"symbol": "AAPL", "side": "buy", "quantity": "1"}


def scoped_requests(order_id: str, client_id: str, broker_id: str) -> list[tuple[str, str, Any]]:
    """(method, path under the account, JSON body) of every account-scoped endpoint."""
    return [
        ("GET", "orders", None),
        ("GET", "orders?status=all", None),
        ("GET", f"orders/{order_id}", None),
        ("GET", f"orders/by-client-id/{client_id}", None),
        ("GET", f"orders/by-broker-id/{broker_id}", None),
        ("POST", "orders", PLACE),
        ("POST", f"orders/{order_id}/cancel", None),
        ("POST", f"orders/{order_id}/sync", None),
        ("GET", "trades", None),
        ("GET", "positions", None),
        ("GET", "events", None),
        ("GET", "events?after=0", None),
        ("GET", "events/stream?after=0", None),
    ]


def call(api: ApiWorld, method: str, url: str, body: Any, headers: dict[str, str]
         ) -> httpx.Response:  # fmt: skip
    if url.endswith("/events/stream?after=0"):
        with api.client.stream(method, url, headers=headers) as streamed:
            if streamed.status_code == 200:  # the stream never ends: its first line will do
                return httpx.Response(200, text=next(streamed.iter_lines()))
            streamed.read()
            return httpx.Response(streamed.status_code, headers=streamed.headers,
                                  content=streamed.content)  # fmt: skip
    return api.client.request(method, url, json=body, headers=headers)


def test_another_account_answers_exactly_as_a_missing_one(api: ApiWorld) -> None:
    theirs = make_order(api, "beta", "their-order")
    before = row_counts(api)
    for method, path, body in scoped_requests(theirs, "their-order", "b-their-order"):
        other = call(api, method, f"/api/v1/accounts/beta/{path}", body, api.auth("alpha"))
        missing = call(api, method, f"/api/v1/accounts/gamma/{path}", body, api.auth("alpha"))
        assert (other.status_code, missing.status_code) == (404, 404), (method, path)
        assert dict(other.headers) == {**missing.headers, "content-length":
                                       other.headers["content-length"]}, path  # fmt: skip
        assert other.json() == {"detail": "no account 'beta'"}
        assert without(other.json(), "beta", "X") == without(missing.json(), "gamma", "X")
    assert row_counts(api) == before
    assert api.sent() == []


def test_another_accounts_order_answers_exactly_as_a_missing_one(api: ApiWorld) -> None:
    theirs = make_order(api, "beta", "their-order")
    make_order(api, "alpha", "mine")
    missing = random_order_id()
    other_requests = scoped_requests(theirs, "their-order", "b-their-order")
    missing_requests = scoped_requests(missing, "nope", "b-nope")
    by_order = [(o, m) for o, m in zip(other_requests, missing_requests, strict=True)
                if o != m]  # fmt: skip
    assert len(by_order) == 5  # by each id, cancel, sync
    for (method, path, body), (_, missing_path, _) in by_order:
        other = call(api, method, f"/api/v1/accounts/alpha/{path}", body, api.auth("alpha"))
        absent = call(api, method, f"/api/v1/accounts/alpha/{missing_path}", body,
                      api.auth("alpha"))  # fmt: skip
        assert (other.status_code, absent.status_code) == (404, 404), path
        ref = path.removesuffix("/cancel").removesuffix("/sync").rsplit("/", 1)[-1]
        absent_ref = missing_path.removesuffix("/cancel").removesuffix("/sync").rsplit("/", 1)[-1]
        assert other.json() == {"detail": f"no order {ref!r} in this account"}
        assert without(other.json(), ref, "X") == without(absent.json(), absent_ref, "X")
    assert api.sent() == []


@pytest.mark.parametrize("account", ["alpha", "beta"])
def test_the_admin_reaches_every_account(api: ApiWorld, account: str) -> None:
    order_id = make_order(api, account, f"{account}-order")
    for method, path, body in scoped_requests(order_id, f"{account}-order", f"b-{account}-order"):
        if path.endswith("/sync"):
            continue  # asks the broker: the admin's reach is shown without one (below)
        answer = call(api, method, f"/api/v1/accounts/{account}/{path}", body, api.admin)
        assert answer.status_code in (200, 202), (path, answer.text)
    assert [kwargs["account"] for _, kwargs in api.sent()] == [account, account]
    detail = api.client.get(f"/api/v1/accounts/{account}/orders/{order_id}", headers=api.admin)
    assert detail.json()["order"]["account"] == account
    # The path still scopes the admin: the order is not found under the other account.
    other = "beta" if account == "alpha" else "alpha"
    assert api.client.get(f"/api/v1/accounts/{other}/orders/{order_id}",
                          headers=api.admin).status_code == 404  # fmt: skip


def test_the_admin_sync_reaches_the_accounts_order_and_its_broker(api: ApiWorld) -> None:
    """The test accounts' credentials are not set: the sync is tried (not 404, not 403) and
    answers that the broker could not be asked, without naming the server's variables."""
    order_id = make_order(api, "beta", "beta-order")
    answer = api.client.post(f"/api/v1/accounts/beta/orders/{order_id}/sync", headers=api.admin)
    assert answer.status_code == 502, answer.text
    assert "no broker credentials for account 'beta'" in answer.json()["detail"]
    assert "TEST_BETA" not in answer.text
    own = api.client.post(f"/api/v1/accounts/beta/orders/{order_id}/sync", headers=api.auth("beta"))
    assert own.status_code == 502


def test_the_debug_view_is_for_the_admin_only(api: ApiWorld) -> None:
    for account in ("alpha", "beta", "gamma"):
        url = f"/api/v1/admin/accounts/{account}/broker-orders"
        for key in ("alpha", "beta"):
            answer = api.client.get(url, headers=api.auth(key))
            assert answer.status_code == 403, (account, key)
            assert answer.json() == {"detail": "this needs the admin key"}
        assert api.client.get(url).status_code == 401
    missing = api.client.get("/api/v1/admin/accounts/gamma/broker-orders", headers=api.admin)
    assert missing.status_code == 404


def test_the_debug_view_says_when_the_broker_cannot_be_asked(api: ApiWorld) -> None:
    """No credentials for the test accounts: 502, saying so (the real view is in
    test_sync_system.py, beside a paper exchange)."""
    make_order(api, "alpha", "mine")
    answer = api.client.get("/api/v1/admin/accounts/alpha/broker-orders", headers=api.admin)
    assert answer.status_code == 502, answer.text
    assert "no broker credentials for account 'alpha'" in answer.json()["detail"]


def test_the_debug_views_window_is_bounded(api: ApiWorld) -> None:
    for query in ["?hours=0", "?hours=-1", "?hours=1000", "?limit=0", "?limit=1001", "?hours=x"]:
        answer = api.client.get(f"/api/v1/admin/accounts/alpha/broker-orders{query}",
                                headers=api.admin)  # fmt: skip
        assert answer.status_code == 422, query


class PerSymbolBroker:
    """A broker that lists one symbol at a time (Binance): it lists what it is asked for."""

    lists_by_symbol = True

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def list_orders(self, *, symbols: list[str], **_: Any) -> Page[OrderReport]:
        self.asked.append(list(symbols))
        return Page(())


def test_the_debug_view_asks_a_per_symbol_broker_for_the_symbols_of_ours(api: ApiWorld) -> None:
    now = datetime.now(UTC)  # within the view's window
    make_order(api, "alpha", "btc", symbol="BTCUSDT", created_at=now)
    make_order(api, "alpha", "eth", symbol="ETHUSDT", created_at=now)
    broker = PerSymbolBroker()
    api.client.app.state.api.ctx.adapter = lambda account: broker  # type: ignore[attr-defined]

    answer = api.client.get("/api/v1/admin/accounts/alpha/broker-orders", headers=api.admin)

    assert answer.status_code == 200, answer.text
    assert broker.asked == [["BTCUSDT", "ETHUSDT"]]
    assert {row["ours"]["client_order_id"] for row in answer.json()["rows"]} == {"btc", "eth"}
