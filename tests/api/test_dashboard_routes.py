"""What the dashboard reads beyond the orders: the links to the other tools and the fill
detection latency of an account's recent fills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.conftest import ApiWorld


def test_links_name_the_tools_where_set(api: ApiWorld) -> None:
    answer = api.client.get("/api/v1/links", headers=api.auth("alpha"))
    assert answer.status_code == 200
    assert answer.json() == {"metrics": None, "docs": "/docs", "flower": None, "grafana": None}
    assert api.client.get("/api/v1/links").status_code == 401


def test_metrics_are_the_admins_every_accounts_gauges(api: ApiWorld) -> None:
    """They name every account: no key, no metrics; an account key is not enough."""
    assert api.client.get("/metrics").status_code == 401
    assert api.client.get("/metrics", headers=api.auth("alpha")).status_code == 403
    answer = api.client.get("/metrics", headers=api.admin)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert 'ordersync_budget_tokens{account="beta"}' in answer.text


def test_fill_latency_covers_the_accounts_own_recent_fills(api: ApiWorld) -> None:
    now = datetime.now(UTC)
    # add_order records its fill 1 s after the order and commits it 1 s later: 1 s latency.
    api.add_order("alpha", "a-recent", status="FILLED", filled="10",
                  created_at=now - timedelta(minutes=5))  # fmt: skip
    api.add_order("alpha", "a-old", status="FILLED", filled="10",
                  created_at=now - timedelta(hours=3))  # fmt: skip
    api.add_order("beta", "b-recent", status="FILLED", filled="10",
                  created_at=now - timedelta(minutes=5))  # fmt: skip

    series = api.client.get("/api/v1/accounts/alpha/fill-latency",
                            headers=api.auth("alpha")).json()  # fmt: skip

    assert series["count"] == 1  # not the old one, not beta's
    assert [p["latency_s"] for p in series["points"]] == [1.0]
    assert series["p50_s"] == series["max_s"] == 1.0
    other = api.client.get("/api/v1/accounts/beta/fill-latency", headers=api.auth("alpha"))
    assert other.status_code == 404


def test_whoami_tells_an_account_key_from_the_admin(api: ApiWorld) -> None:
    mine = api.client.get("/api/v1/whoami", headers=api.auth("alpha")).json()
    admin = api.client.get("/api/v1/whoami", headers=api.admin).json()
    assert mine == {"admin": False, "account": "alpha"}
    assert admin == {"admin": True, "account": None}


def test_the_dashboard_is_served_with_strict_security_headers(api: ApiWorld) -> None:
    page = api.client.get("/dashboard/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert api.client.get("/", follow_redirects=False).headers["location"] == "/dashboard/"


def test_the_api_reference_runs_sandboxed_and_its_description_is_public(api: ApiWorld) -> None:
    """The reference's viewer comes from a CDN: sandboxed, its scripts cannot read the
    dashboard's key from this origin's storage."""
    docs = api.client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-security-policy"] == "sandbox allow-scripts allow-popups"
    described = api.client.get("/openapi.json")
    assert described.headers["access-control-allow-origin"] == "*"
    assert "/api/v1/accounts/{account}/orders" in described.json()["paths"]
