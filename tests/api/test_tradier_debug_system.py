"""The admin debug view at Tradier on real parts: a worker process places orders at the
paper exchange's Tradier dialect over HTTP (PostgreSQL, Redis), another order is placed at
Tradier outside ordersync, then the API lists Tradier's orders beside ours."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from core.enums import OrderStatus
from tests.api.test_sync_system import (  # noqa: F401  (api, system: fixtures)
    ADMIN,
    api,
    local,
    lock_free,
    system,
)
from tests.processes import stop_process
from tests.worker.conftest import TrackingSystem, tracking_redis_url, wait_for  # noqa: F401
from tests.worker.test_tradier_system import ACCOUNT, NUMBER, SYMBOL, TOKEN, _tradier_account

pytestmark = pytest.mark.integration


def debug_view(api: TestClient) -> dict[str, Any]:  # noqa: F811
    answer = api.get(f"/api/v1/admin/accounts/{ACCOUNT}/broker-orders", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    view: dict[str, Any] = answer.json()
    assert (view["account"], view["broker_error"], view["truncated"]) == (ACCOUNT, None, False)
    return view


def test_the_debug_view_shows_tradiers_orders_beside_ours_and_one_placed_outside(
    system: TrackingSystem,  # noqa: F811
    api: TestClient,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ours: Tradier's numeric id, status and fills beside our row, nothing differing;
    one placed at Tradier by hand: Tradier's row alone, unknown to ordersync."""
    exchange = system.exchange
    exchange.freeze_market()
    exchange.set_price(SYMBOL, "200")
    witness = _tradier_account(system)
    monkeypatch.setenv("TR_KEY_ID", NUMBER)  # the API's adapter reads them, as deployed
    monkeypatch.setenv("TR_SECRET_KEY", TOKEN)
    worker = system.start_worker("w1")
    run = uuid.uuid4().hex[:8]
    placed = {
        "market": system.place(account=ACCOUNT, client_order_id=f"tr-mkt-{run}", symbol=SYMBOL,
                               side="buy", quantity="1"),
        "resting": system.place(account=ACCOUNT, client_order_id=f"tr-rest-{run}",
                                symbol=SYMBOL, side="buy", quantity="2", order_type="limit",
                                limit_price="1.00", time_in_force="gtc"),
    }  # fmt: skip
    ids = {name: str(result.get(timeout=60)) for name, result in placed.items()}

    def settled() -> bool:
        market, resting = local(system, ids["market"]), local(system, ids["resting"])
        filled = market.status is OrderStatus.FILLED and market.filled_quantity == Decimal(1)
        return filled and resting.status is OrderStatus.NEW and bool(resting.broker_order_id)

    wait_for(settled, 60, "the market order filled, the limit resting")
    # Nothing watches the account from now on: the order placed outside stays a stranger.
    stop_process(worker, timeout_s=15, group=True)
    client = redis.Redis.from_url(system.redis_url)
    wait_for(lambda: all(lock_free(client, i) for i in ids.values()), 15, "the orders' locks free")
    outside = witness.post("/orders", data={
        "class": "equity", "symbol": SYMBOL, "side": "buy", "quantity": "3", "type": "limit",
        "price": "1.50", "duration": "gtc"})  # fmt: skip
    assert outside.status_code == 200, outside.text
    outside_id = str(outside.json()["order"]["id"])

    view = debug_view(api)

    rows = {row["broker"]["broker_order_id"]: row for row in view["rows"] if row["broker"]}
    broker_ids = {name: str(local(system, i).broker_order_id) for name, i in ids.items()}
    assert set(rows) == {*broker_ids.values(), outside_id}
    assert all(broker_id.isdigit() for broker_id in rows)  # Tradier's own numeric ids
    market, resting = rows[broker_ids["market"]], rows[broker_ids["resting"]]
    assert (market["broker"]["client_order_id"], market["ours"]["order_id"]) == (
        f"tr-mkt-{run}", ids["market"])  # fmt: skip
    assert (market["broker"]["status"], market["broker"]["raw_status"]) == ("FILLED", "filled")
    figures = ("filled_quantity", "average_fill_price")  # Tradier's numbers read "1.0"
    ours = [Decimal(market["ours"][k]) for k in figures]
    assert [Decimal(market["broker"][k]) for k in figures] == ours
    assert ours[0] == Decimal(1)
    assert (resting["broker"]["client_order_id"], resting["ours"]["order_id"]) == (
        f"tr-rest-{run}", ids["resting"])  # fmt: skip
    assert (resting["broker"]["status"], resting["broker"]["raw_status"]) == ("NEW", "open")
    assert (resting["ours"]["status"], resting["ours"]["broker_order_id"]) == (
        "NEW", broker_ids["resting"])  # fmt: skip
    assert market["mismatches"] == resting["mismatches"] == []
    # Placed at Tradier outside ordersync: the broker's row only, no client order id.
    stranger = rows[outside_id]
    assert stranger["ours"] is None
    assert stranger["mismatches"] == ["unknown to ordersync"]
    assert stranger["broker"]["client_order_id"] is None
    assert stranger["broker"]["status"] == "NEW"
    assert Decimal(stranger["broker"]["quantity"]) == Decimal(3)
    assert len(view["rows"]) == 3  # no row of ours without Tradier's beside it
    client.close()
    witness.close()
