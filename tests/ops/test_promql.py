"""The metric-name extractor and the name lists the ops tests rely on."""

from __future__ import annotations

import pytest

from tests.ops.conftest import known_families, known_metric_names, referenced_metric_names
from tests.ops.promql import metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('up{job="ordersync-workers"} == 0', {"up"}),
        (
            "histogram_quantile(0.99, sum by (le, broker) ("
            'rate(ordersync_fill_detection_latency_seconds_bucket{source=~"a|b"}[5m]))) > 1',
            {"ordersync_fill_detection_latency_seconds_bucket"},
        ),
        (
            "time() - ordersync_sweep_last_success_timestamp_seconds"
            " > 3 * ordersync_sweep_interval_seconds",
            {"ordersync_sweep_last_success_timestamp_seconds", "ordersync_sweep_interval_seconds"},
        ),
        # keywords, grouping labels, offsets and numbers are not metrics
        (
            "sum without (instance) (a_total unless a_total offset 10m)"
            " and on (job, instance) (up offset 10m == 1) or vector(1e3) > bool 2",
            {"a_total", "up"},
        ),
        (
            "sum(x) by (account) / ignoring (le) group_left (status) y",
            {"x", "y"},
        ),
        # Grafana variables, strings, subqueries and comments
        (
            'sum by (source) (rate(fills_total{account=~"$account"}[$__rate_interval]))',
            {"fills_total"},
        ),
        ('label_replace(z, "dst", "$1", "src", "(.*)")', {"z"}),
        ("max_over_time(rate(c_total[5m])[1h:5m])  # not_a_metric here", {"c_total"}),
        (
            "count(ordersync_collector_source_up == 0) or vector(0)",
            {"ordersync_collector_source_up"},
        ),
        ("+Inf > NaN", set()),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_function_name_is_not_a_metric_however_spaced() -> None:
    assert metric_names("rate (x[1m])") == {"x"}
    assert metric_names("sum\n  (x)") == {"x"}


def test_known_names_are_sample_names_of_both_jobs() -> None:
    known = known_metric_names()
    assert {
        "ordersync_placements_dropped_total",  # a worker's counter
        "ordersync_fill_detection_latency_seconds_bucket",  # a worker's histogram
        "ordersync_budget_exhausted_total",  # the exporter's counter
        "ordersync_stale_orders",  # the exporter's gauge
    } <= known
    assert "ordersync_placements_dropped" not in known  # a family, not a sample
    assert "ordersync_fill_detection_latency_seconds" not in known


def test_referenced_names_are_families_of_both_jobs() -> None:
    """As a scrape parsed by prometheus_client names them, for the system test."""
    referenced = referenced_metric_names()
    assert referenced <= set(known_families())
    assert {
        "ordersync_placements_dropped",
        "ordersync_fill_detection_latency_seconds",
        "ordersync_budget_exhausted",
        "ordersync_stale_orders",
    } <= referenced
    assert "up" not in referenced
