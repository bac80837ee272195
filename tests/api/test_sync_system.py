"""'Sync now' and the admin debug view on real parts: a worker process places orders at the
paper exchange over HTTP (PostgreSQL, Redis), then the API, in this process on the same
database and Redis with the account's credentials, fetches the exchange's view of an order
the exchange changed behind our back, waits out (or gives up on) an order another worker
holds, and lists the exchange's orders beside ours with what differs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from api.deps import ApiState
from core.enums import OrderStatus
from models.orders import Order
from ordersync.settings import Settings
from ordersync.status import StatusReader
from tests.api.conftest import ADMIN_KEY, api_settings
from tests.conftest import migrated_database
from tests.paper_exchange import PaperExchange
from tests.processes import stop_process
from tests.worker.conftest import (  # noqa: F401  (tracking_redis_url: a fixture)
    ACCOUNT,
    CREDENTIALS_ENV,
    TrackingSystem,
    tracking_redis_url,
    tracking_system,
    wait_for,
)
from worker.context import build_context
from worker.locks import ALIVE_PREFIX, HeldLock, order_lock_name

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
SYNC_WAIT_S = 0.5


@pytest.fixture
def system(tracking_redis_url: str, paper_exchange: PaperExchange,  # noqa: F811
           tmp_path: Path) -> Iterator[TrackingSystem]:  # fmt: skip
    for database_url in migrated_database("postgresql", tmp_path):
        with tracking_system(database_url, tracking_redis_url, paper_exchange,
                             tmp_path / "var") as tracking:  # fmt: skip
            yield tracking


@pytest.fixture
def api(system: TrackingSystem, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The API on the system's database and Redis; the adapter reads the account's
    credentials from this process's environment, as a deployed API server does."""
    for name in (f"{CREDENTIALS_ENV}_KEY_ID", f"{CREDENTIALS_ENV}_SECRET_KEY"):
        monkeypatch.setenv(name, system.env[name])
    settings = api_settings(system.database_url, system.redis_url, system.var_dir / "api",
                            api_sync_wait_s=SYNC_WAIT_S)  # fmt: skip

    def state(s: Settings) -> ApiState:
        ctx = build_context(s)
        reader = StatusReader(system.redis_url, s)

        def close() -> None:
            ctx.close()
            reader.close()

        return ApiState(s, ctx, system.client.send_task, close, lambda: reader)

    with TestClient(create_app(settings, state)) as client:
        yield client


def local(system: TrackingSystem, order_id: str) -> Order:
    with Session(system.engine) as session:
        found = session.get(Order, order_id)
        assert found is not None
        return found


def lock_free(client: redis.Redis, order_id: str) -> bool:
    """Nobody holds the order's lock, or its holder's process is gone (taken over at once)."""
    token = client.get(order_lock_name(order_id))
    if token is None:
        return True
    holder = token.decode().split(".", 1)[0]
    return not client.exists(ALIVE_PREFIX + holder)


def cancel_at_exchange(exchange: PaperExchange, broker_order_id: str) -> None:
    """Cancel at the exchange itself, behind ordersync's back."""
    answer = httpx.delete(f"{exchange.base_url}/v2/orders/{broker_order_id}",
                          headers=exchange.headers, timeout=10)  # fmt: skip
    assert answer.status_code in (200, 204), answer.text
    wait_for(lambda: exchange.truth_order(broker_order_id)["status"] == "canceled", 10,
             "the exchange's order canceled")  # fmt: skip


def debug_view(api: TestClient) -> dict[str, Any]:
    answer = api.get(f"/api/v1/admin/accounts/{ACCOUNT}/broker-orders", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    view: dict[str, Any] = answer.json()
    assert (view["broker_error"], view["truncated"]) == (None, False)
    return view


def mismatches(view: dict[str, Any]) -> dict[str, list[str]]:
    """Our order id -> what differs, for every row that is ours."""
    return {r["ours"]["order_id"]: r["mismatches"] for r in view["rows"] if r["ours"]}


def sync(api: TestClient, order_id: str) -> httpx.Response:
    return api.post(f"/api/v1/accounts/{ACCOUNT}/orders/{order_id}/sync", headers=ADMIN)


def test_sync_now_and_the_debug_view_against_the_paper_exchange(
    system: TrackingSystem, api: TestClient
) -> None:
    worker = system.start_worker("w1")
    run = uuid.uuid4().hex[:8]
    placed = {
        "market": system.place(client_order_id=f"mkt-{run}", symbol="AAPL", side="buy",
                               quantity="1"),
        **{name: system.place(client_order_id=f"{name}-{run}", symbol="AAPL", side="buy",
                              quantity="2", order_type="limit", limit_price="1.00",
                              time_in_force="gtc") for name in ("rest-1", "rest-2")},
    }  # fmt: skip
    ids = {name: str(result.get(timeout=60)) for name, result in placed.items()}

    def settled() -> bool:
        market = local(system, ids["market"])
        resting = [local(system, ids[n]) for n in ("rest-1", "rest-2")]
        return (
            market.status is OrderStatus.FILLED
            and market.filled_quantity == Decimal(1)
            and all(o.status is OrderStatus.NEW and o.broker_order_id for o in resting)
        )

    wait_for(settled, 60, "the market order filled, the limits resting")
    # Nothing watches the orders from now on: what the exchange does next, only a sync sees.
    stop_process(worker, timeout_s=15, group=True)
    client = redis.Redis.from_url(system.redis_url)
    wait_for(lambda: all(lock_free(client, i) for i in ids.values()), 15, "the orders' locks free")

    # Settled orders: the exchange and ours agree.
    assert mismatches(debug_view(api)) == {i: [] for i in ids.values()}

    broker_ids = {name: str(local(system, i).broker_order_id) for name, i in ids.items()}
    for name in ("rest-1", "rest-2"):
        cancel_at_exchange(system.exchange, broker_ids[name])

    # (c) the view names what differs, row by row, the exchange's side beside ours.
    view = debug_view(api)
    stale = "status: broker CANCELED, ours NEW"
    assert mismatches(view) == {ids["market"]: [], ids["rest-1"]: [stale], ids["rest-2"]: [stale]}
    row = next(r for r in view["rows"] if r["ours"] and r["ours"]["order_id"] == ids["rest-1"])
    assert row["broker"]["broker_order_id"] == broker_ids["rest-1"]
    assert row["broker"]["client_order_id"] == f"rest-1-{run}"
    assert (row["broker"]["status"], row["broker"]["raw_status"]) == ("CANCELED", "canceled")
    assert (row["ours"]["status"], row["ours"]["quantity"]) == ("NEW", "2")
    market_row = next(r for r in view["rows"] if r["broker"]
                      and r["broker"]["broker_order_id"] == broker_ids["market"])  # fmt: skip
    assert (market_row["broker"]["filled_quantity"], market_row["ours"]["filled_quantity"]) == (
        "1", "1")  # fmt: skip

    # (a) sync now: the exchange's view, applied; the old and new status said.
    answer = sync(api, ids["rest-1"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["order_id"], body["old_status"], body["new_status"], body["outcome"]) == (
        ids["rest-1"], "NEW", "CANCELED", "applied")  # fmt: skip
    assert body["order"]["status"] == "CANCELED"
    assert local(system, ids["rest-1"]).status is OrderStatus.CANCELED
    detail = api.get(f"/api/v1/accounts/{ACCOUNT}/orders/{ids['rest-1']}", headers=ADMIN).json()
    assert detail["history"][-1]["to_status"] == "CANCELED"
    assert detail["history"][-1]["source"] == "manual"
    assert mismatches(debug_view(api)) == {ids["market"]: [], ids["rest-1"]: [],
                                           ids["rest-2"]: [stale]}  # fmt: skip

    # (b) an order another worker holds: 409 after the short wait, nothing applied.
    lock = HeldLock(client, order_lock_name(ids["rest-2"]), ttl_s=30)
    with lock as held:
        assert held
        busy = sync(api, ids["rest-2"])
        assert busy.status_code == 409, busy.text
        assert busy.headers["Retry-After"] == "1"
        assert "is busy" in busy.json()["detail"]
        assert local(system, ids["rest-2"]).status is OrderStatus.NEW
    answer = sync(api, ids["rest-2"])  # released: the sync goes through
    assert answer.status_code == 200, answer.text
    assert (answer.json()["old_status"], answer.json()["new_status"]) == ("NEW", "CANCELED")

    # A settled order syncs to what it was.
    same = sync(api, ids["market"]).json()
    assert (same["old_status"], same["new_status"], same["outcome"]) == (
        "FILLED", "FILLED", "applied")  # fmt: skip
    assert mismatches(debug_view(api)) == {i: [] for i in ids.values()}
    client.close()


def detail(api: TestClient, order_id: str) -> dict[str, Any]:
    answer = api.get(f"/api/v1/accounts/{ACCOUNT}/orders/{order_id}", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_replace_through_the_api_and_sync_now_following_a_replacement_made_outside(
    system: TrackingSystem, api: TestClient
) -> None:
    system.exchange.set_session(0)
    system.exchange.freeze_market()
    system.exchange.set_price("AAPL", "200.00")
    system.start_worker("w1")
    run = uuid.uuid4().hex[:8]
    old_id = str(system.place(client_order_id=f"rest-{run}", symbol="AAPL", side="buy",
                              quantity="3", order_type="limit", limit_price="1.00",
                              time_in_force="gtc", intent="ENTRY").get(timeout=60))  # fmt: skip
    wait_for(lambda: local(system, old_id).status is OrderStatus.NEW, 30, "resting")

    answer = api.post(f"/api/v1/accounts/{ACCOUNT}/orders/{old_id}/replace",
                      json={"limit_price": "2.00"}, headers=ADMIN)  # fmt: skip
    assert answer.status_code == 202, answer.text
    ours = answer.json()["client_order_id"]

    def linked() -> str | None:
        return detail(api, old_id)["links"]["replaced_by"]  # type: ignore[no-any-return]

    new_id = wait_for(linked, 30, "the replacement linked")
    new = detail(api, new_id)
    assert (new["order"]["client_order_id"], new["links"]["replaces"]) == (ours, old_id)
    assert (new["order"]["limit_price"], new["order"]["intent"]) == ("2", "ENTRY")
    wait_for(lambda: local(system, new_id).status is OrderStatus.NEW, 30, "the new one resting")

    # Someone else replaces ours at the exchange; "sync now" of it follows at once.
    theirs = httpx.patch(f"{system.exchange.base_url}/v2/orders/"
                         f"{local(system, new_id).broker_order_id}",
                         json={"limit_price": "3.00"}, headers=system.exchange.headers,
                         timeout=10)  # fmt: skip
    assert theirs.status_code == 200, theirs.text
    wait_for(lambda: system.exchange.truth_order(theirs.json()["replaces"])["status"]
             == "replaced", 10, "replaced at the exchange")  # fmt: skip
    # A monitor step may hold the order for a moment: 409, then again.
    synced = wait_for(lambda: (r := sync(api, new_id)).status_code == 200 and r, 30, "synced")
    assert synced.json()["new_status"] == "REPLACED"
    third = detail(api, new_id)["links"]["replaced_by"]
    assert third is not None
    assert detail(api, third)["order"]["broker_order_id"] == theirs.json()["id"]
    assert detail(api, third)["links"]["replaces"] == new_id
