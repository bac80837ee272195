"""Health and readiness (also with Redis or the database away), the accounts a key reaches,
the monitoring status (whole for the admin, one account's share for a key) and the OpenAPI
document."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import ApiState
from core.enums import OrderStatus
from ordersync.settings import Settings
from ordersync.status import StatusReader
from tests.api.conftest import ADMIN_KEY, ApiWorld, api_settings
from tests.api.fixtures import make_order
from worker.context import build_context
from worker.heartbeat import record_run
from worker.stale import LOST, UNCHECKED
from worker.stale_report import REPORT_KEY
from worker.webhooks import COUNTS_KEY as WEBHOOK_COUNTS_KEY


def test_healthz_needs_no_key(api: ApiWorld) -> None:
    answer = api.client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "checks": {}}


def test_readyz_checks_the_database_redis_and_the_transport(api: ApiWorld) -> None:
    answer = api.client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok",
                                                        "transport": "ok"}}  # fmt: skip


def closed_port() -> int:
    """A local port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def never_sent(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("nothing is sent here")


def state_factory(s: Settings) -> ApiState:
    """The conftest's state, with a reader on this app's own Redis."""
    ctx = build_context(s)
    assert s.redis_url is not None
    reader = StatusReader(s.redis_url, s)

    def close() -> None:
        ctx.close()
        reader.close()

    return ApiState(s, ctx, never_sent, close, lambda: reader)


@pytest.fixture
def app_with(api: ApiWorld, tmp_path: Path) -> Iterator[Any]:
    """Build another app on the fixture's database and Redis with some settings replaced."""
    clients: list[TestClient] = []

    def build(**replaced: Any) -> TestClient:
        fields = {"database_url": api.settings.database_url, "redis_url": api.settings.redis_url,
                  **replaced}  # fmt: skip
        settings = api_settings(fields.pop("database_url"), fields.pop("redis_url"),
                                tmp_path / "var-2", **fields)  # fmt: skip
        client = TestClient(create_app(settings, state_factory))
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def test_readyz_is_503_while_redis_does_not_answer(app_with: Any) -> None:
    client = app_with(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    answer = client.get("/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error: ")
    # Without a transport of its own, tasks travel over that same Redis.
    assert body["checks"]["transport"].startswith("error: ")
    assert client.get("/healthz").status_code == 200  # up, just not ready
    # No key can be checked against the failure counters: refused, not let through.
    refused = client.get("/api/v1/accounts", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert refused.status_code == 503
    assert "Redis does not answer" in refused.json()["detail"]


def test_readyz_is_503_while_the_database_does_not_answer(app_with: Any) -> None:
    client = app_with(database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/none")
    answer = client.get("/readyz")
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert checks["database"].startswith("error: ")
    assert (checks["redis"], checks["transport"]) == ("ok", "ok")


def test_readyz_checks_the_configured_transport(app_with: Any) -> None:
    client = app_with(celery_broker_url=f"amqp://guest:guest@127.0.0.1:{closed_port()}//")
    answer = client.get("/readyz")
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert (checks["database"], checks["redis"]) == ("ok", "ok")
    assert checks["transport"].startswith("error: ")


def test_a_key_lists_its_own_account_and_the_admin_every_one(api: ApiWorld) -> None:
    mine = api.client.get("/api/v1/accounts", headers=api.auth("alpha")).json()
    assert [a["name"] for a in mine] == ["alpha"]
    assert set(mine[0]) == {"name", "broker", "base_url", "is_active", "rate_limit_per_min",
                            "created_at"}  # no credentials_env, no id  # fmt: skip
    assert (mine[0]["broker"], mine[0]["is_active"], mine[0]["rate_limit_per_min"]) == (
        "alpaca", True, 200)  # fmt: skip
    assert [a["name"] for a in api.client.get("/api/v1/accounts", headers=api.auth("beta")).json()
            ] == ["beta"]  # fmt: skip
    every = api.client.get("/api/v1/accounts", headers=api.admin).json()
    assert [a["name"] for a in every] == ["alpha", "beta"]
    assert api.client.get("/api/v1/accounts").status_code == 401


def seed_status(api: ApiWorld) -> tuple[str, str]:
    """Orders of both accounts, a stale report naming one of each, a webhook's counts."""
    alpha = make_order(api, "alpha", "a-stale")
    beta = make_order(api, "beta", "b-stale")
    make_order(api, "beta", "b-done", status=OrderStatus.FILLED)
    report = {"at": datetime.now(UTC).isoformat(), "counts": {UNCHECKED: 2, LOST: 0},
              "order_ids": {UNCHECKED: [alpha, beta], LOST: []}}  # fmt: skip
    api.redis.set(REPORT_KEY, json.dumps(report))
    api.redis.hset(
        WEBHOOK_COUNTS_KEY,
        "hooks.example",
        json.dumps({"pending": 3, "dead": 1, "at": "2026-12-01T14:30:00+00:00"}),
    )
    return alpha, beta


def test_the_admin_sees_the_whole_status(api: ApiWorld) -> None:
    alpha, beta = seed_status(api)
    answer = api.client.get("/api/v1/status", headers=api.admin)
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert status["orders"]["by_account"] == {"alpha": {"NEW": 1},
                                              "beta": {"FILLED": 1, "NEW": 1}}  # fmt: skip
    assert set(status["orders"]["fill_gaps"]) == {"alpha", "beta"}
    assert [b["account"] for b in status["budgets"]] == ["alpha", "beta"]
    assert status["streams"] == {"alpha": False, "beta": False}
    assert status["stale"]["order_ids"][UNCHECKED] == [alpha, beta]
    assert status["webhooks"] == {"hooks.example": {"pending": 3, "dead": 1,
                                                    "at": "2026-12-01T14:30:00+00:00"}}  # fmt: skip
    assert status["queues"] == {"celery": 0, "ordersync.monitor": 0}
    assert status["errors"] == {}
    assert {"workers", "sweeps", "detection_latency", "outbox", "now"} <= set(status)


def test_a_key_sees_the_systems_health_and_its_own_account_only(api: ApiWorld) -> None:
    alpha, beta = seed_status(api)
    now = datetime.now(UTC)
    record_run(api.redis, "reconcile_open_orders", ok=False, started_at=now, finished_at=now,
               stats={"yielded": {"beta": "429"}}, error="account beta: 429")  # fmt: skip
    answer = api.client.get("/api/v1/status", headers=api.auth("alpha"))
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert status["orders"] == {"by_account": {"alpha": {"NEW": 1}}, "fill_gaps": {"alpha": 0}}
    assert [b["account"] for b in status["budgets"]] == ["alpha"]
    assert status["streams"] == {"alpha": False}
    assert status["stale"]["order_ids"][UNCHECKED] == [alpha]
    assert status["stale"]["counts"][UNCHECKED] == 1  # its own, not the system's 2
    assert beta not in json.dumps(status)
    assert "beta" not in json.dumps(status)
    assert status["webhooks"] == {}
    assert "hooks.example" not in json.dumps(status)
    assert {"workers", "sweeps", "queues"} <= set(status)
    sweep = status["sweeps"]["reconcile_open_orders"]
    assert (sweep["last_run_ok"], sweep["failures"]) == (False, 1)  # its state, not its text
    assert "last_error" not in sweep
    assert "last_stats" not in sweep
    assert status["detection_latency"]["count"] == 0  # its own fills only: none
    assert api.client.get("/api/v1/status").status_code == 401


def declared_routes(routes: list[Any]) -> Iterator[tuple[str, str]]:
    """(path, method) of every API route the app serves, through included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield from ((route.path, m.lower()) for m in route.methods)
        elif hasattr(route, "original_router"):  # FastAPI's include_router, unflattened
            assert not route.include_context.prefix, "a prefix given at inclusion"
            yield from declared_routes(route.original_router.routes)


def test_openapi_lists_every_route_under_api_v1(api: ApiWorld) -> None:
    document = api.client.get("/openapi.json").json()
    paths = document["paths"]
    orders = "/api/v1/accounts/{account}/orders"
    expected = {
        "/api/v1/accounts": {"get"},
        "/api/v1/status": {"get"},
        orders: {"get", "post"},
        f"{orders}/{{order_id}}": {"get"},
        f"{orders}/by-client-id/{{client_order_id}}": {"get"},
        f"{orders}/by-broker-id/{{broker_order_id}}": {"get"},
        f"{orders}/{{order_id}}/cancel": {"post"},
        f"{orders}/{{order_id}}/sync": {"post"},
        "/api/v1/accounts/{account}/trades": {"get"},
        "/api/v1/accounts/{account}/positions": {"get"},
        "/api/v1/accounts/{account}/fees": {"get"},
        "/api/v1/accounts/{account}/events": {"get"},
        "/api/v1/accounts/{account}/events/stream": {"get"},
        "/api/v1/admin/accounts/{account}/broker-orders": {"get"},
    }
    documented = {(p, m) for p, methods in paths.items() for m in methods}
    assert {(p, m) for p, methods in expected.items() for m in methods} <= documented
    # Every route the app serves under /api/v1 is in the document, and nothing else is.
    served = set(declared_routes(api.client.app.routes))
    assert {(p, m) for p, m in served if p.startswith("/api/v1")} == {
        (p, m) for p, m in documented if p.startswith("/api/v1")}  # fmt: skip
    assert {"/healthz", "/readyz"} <= set(paths)
    assert document["components"]["securitySchemes"]["HTTPBearer"]["type"] == "http"
    place = paths[orders]["post"]
    assert place["responses"].keys() >= {"202", "401", "404", "409", "413", "415", "422"}
    terms = document["components"]["schemas"]["PlaceOrderTerms"]
    # Decimals travel as strings; quantity or notional (an amount of money) may be null.
    for money in ("quantity", "notional"):
        assert {t.get("type") for t in terms["properties"][money]["anyOf"]} == {"string", "null"}
