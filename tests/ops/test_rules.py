"""ops/alerts.yml: valid for promtool, unit-tested by ops/alerts_test.yml (each alert firing
and not firing), every rule annotated and linked to the runbook, and querying only metrics
ordersync serves. The runbook's sections: test_runbook.py."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.ops.conftest import (
    ALERTS,
    ALERTS_TEST,
    BUILTIN_METRICS,
    OPS,
    RUNBOOK_PREFIX,
    alert_rules,
    assert_promtool_ok,
    known_metric_names,
    load_yaml,
    run_promtool,
)
from tests.ops.promql import metric_names

# The first test that asks for promtool may install it (apt-get update and install).
pytestmark = pytest.mark.timeout(900)

SEVERITIES = {"critical", "warning"}


def _alert_names() -> list[str]:
    return [str(rule["alert"]) for rule in alert_rules()]


def test_promtool_checks_the_rules(promtool: str) -> None:
    done = assert_promtool_ok(promtool, ["check", "rules", str(ALERTS)])
    count = sum(len(group["rules"]) for group in load_yaml(ALERTS)["groups"])
    assert f"SUCCESS: {count} rules found" in done.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    assert_promtool_ok(promtool, ["test", "rules", ALERTS_TEST.name], cwd=OPS)


@pytest.mark.parametrize(
    ("original", "changed", "alert"),
    [
        # every source, the sweeps' slow-by-design fills included
        ('source=~"placement|monitor|stream"', 'source=~".+"', "OrdersyncFillDetectionSlow"),
        # increase() alone: a counter's first step (its series appearing at 1) is missed
        (
            "ordersync_placements_dropped_total unless ordersync_placements_dropped_total"
            " offset 10m",
            "ordersync_placements_dropped_total unless ordersync_placements_dropped_total",
            "OrdersyncPlacementsDropped",
        ),
    ],
)
def test_the_unit_tests_catch_a_changed_rule(
    promtool: str, tmp_path: Path, original: str, changed: str, alert: str
) -> None:
    """The unit tests are not vacuous: a rule changed for the worse fails them."""
    shutil.copy(ALERTS_TEST, tmp_path)
    rules = ALERTS.read_text()
    assert rules.count(original) == 1
    (tmp_path / ALERTS.name).write_text(rules.replace(original, changed))
    done = run_promtool(promtool, ["test", "rules", ALERTS_TEST.name], cwd=tmp_path)
    assert done.returncode != 0
    assert f"alertname: {alert}," in done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(ALERTS_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            expected = check.get("exp_alerts") or []
            (firing if expected else quiet).add(check["alertname"])
            for alert in expected:
                # promtool compares annotations too: expecting none would fail, but keep
                # each firing case explicit about what the alert says
                assert set(alert.get("exp_annotations", {})) == {
                    "summary",
                    "description",
                    "runbook_url",
                }, check["alertname"]
    names = set(_alert_names())
    # a test of a misspelt alert name expecting nothing would pass vacuously
    assert (firing | quiet) <= names
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"


def test_alert_names_are_unique() -> None:
    names = _alert_names()
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_rule_has_severity_annotations_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    anchor = str(rule["alert"]).lower()
    assert annotations["runbook_url"] == RUNBOOK_PREFIX + anchor


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_rule_queries_only_metrics_ordersync_serves(rule: dict[str, Any]) -> None:
    names = metric_names(str(rule["expr"]))
    assert names, "no metric found in the expression"
    assert names - known_metric_names() - BUILTIN_METRICS == set()
