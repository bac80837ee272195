"""The Grafana dashboard and its provisioning: valid JSON, panels that fit together, every
query on metrics ordersync serves, and the data source and path the provisioning names."""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.conftest import (
    BUILTIN_METRICS,
    DASHBOARD,
    OPS,
    assert_promtool_ok,
    dashboard,
    dashboard_exprs,
    dashboard_panels,
    known_metric_names,
    load_yaml,
)
from tests.ops.promql import metric_names

PROVISIONING = OPS / "grafana" / "provisioning"
DATASOURCE_UID = "prometheus"
DASHBOARDS_PATH = "/var/lib/grafana/dashboards"  # where the compose file mounts the JSON
# Grafana's variables as Prometheus would see them once Grafana filled them in.
VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "$account": ".*"}

# What the dashboard must show, by the metric that shows it.
REQUIRED_METRICS = {
    "ordersync_orders",  # orders by status and account
    "ordersync_stale_orders",
    "ordersync_fill_detection_latency_seconds_bucket",  # p50 / p90 / p99
    "ordersync_placement_latency_seconds_bucket",
    "ordersync_broker_requests_total",  # by outcome
    "ordersync_broker_rate_limited_total",  # 429s
    "ordersync_budget_tokens",
    "ordersync_budget_waits_total",
    "ordersync_budget_exhausted_total",
    "ordersync_monitor_checks_total",
    "ordersync_lock_skips_total",
    "ordersync_sweep_duration_seconds_bucket",
    "ordersync_sweep_last_success_timestamp_seconds",
    "ordersync_outbox_backlog_events",
    "ordersync_outbox_oldest_event_age_seconds",
    "ordersync_webhook_deliveries_total",
    "ordersync_webhook_dead_letters",
    "ordersync_queue_depth_messages",
    "ordersync_workers_online",
}


def _query_panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard_panels() if panel["type"] != "row"]


def test_the_dashboard_is_json_with_a_stable_uid() -> None:
    data = json.loads(DASHBOARD.read_text())
    assert data["uid"] == "ordersync"
    assert data["title"]
    assert "id" not in data or data["id"] is None  # provisioning assigns it


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in dashboard_panels()]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids))


def test_panels_do_not_overlap_and_fit_the_grid() -> None:
    boxes = []
    for panel in dashboard_panels():
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        boxes.append((panel["title"], pos["x"], pos["y"], pos["w"], pos["h"]))
    for (a, ax, ay, aw, ah), (b, bx, by, bw, bh) in combinations(boxes, 2):
        apart = ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay
        assert apart, f"{a!r} overlaps {b!r}"


def test_every_panel_queries_prometheus() -> None:
    for panel in _query_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
        targets = panel["targets"]
        assert targets, panel["title"]
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in targets:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == DATASOURCE_UID


@pytest.mark.parametrize("expr", dashboard_exprs())
def test_query_uses_only_metrics_ordersync_serves(expr: str) -> None:
    names = metric_names(expr)
    assert names, "no metric found in the expression"
    assert names - known_metric_names() - BUILTIN_METRICS == set()


@pytest.mark.timeout(900)  # may be the first to ask for promtool, which installs it
def test_every_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool parses each query, as a recording rule, with the variables filled in."""
    rules = []
    for number, expr in enumerate(dashboard_exprs()):
        for variable, value in VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = assert_promtool_ok(promtool, ["check", "rules", str(path)])
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def test_the_dashboard_shows_what_operators_need() -> None:
    shown: set[str] = set()
    for expr in dashboard_exprs():
        shown |= metric_names(expr)
    assert REQUIRED_METRICS - shown == set()


def test_template_variables_are_defined() -> None:
    defined = {variable["name"] for variable in dashboard()["templating"]["list"]}
    builtins = {"__rate_interval", "__interval", "__range"}
    for expr in dashboard_exprs():
        assert set(re.findall(r"\$(\w+)", expr)) <= defined | builtins, expr


def test_datasource_provisioning() -> None:
    data = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")
    assert data["apiVersion"] == 1
    [source] = data["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == DATASOURCE_UID
    assert source["url"] == "http://prometheus:9090"
    assert source["access"] == "proxy"


def test_dashboard_provisioning_loads_the_mounted_directory() -> None:
    data = load_yaml(PROVISIONING / "dashboards" / "ordersync.yml")
    assert data["apiVersion"] == 1
    [provider] = data["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == DASHBOARDS_PATH
