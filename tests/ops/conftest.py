"""What the ops tests share: promtool, the metric names ordersync serves (the one list the
tests compare with) and the metric names the alert rules and the dashboard query.

promtool comes with Debian's ``prometheus`` package; when it is missing the session
installs it with apt-get (as root, or through ``sudo -n``). Where that is impossible the
promtool tests fail in CI (``CI`` set, or ``ORDERSYNC_TEST_REQUIRE_SERVICES=1`` as
``.ci/run`` sets) and are skipped elsewhere.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

import pytest
import yaml

from ordersync.metrics.collector import COLLECTED_METRICS
from ordersync.metrics.instruments import REGISTRY
from tests import debian
from tests.ops.promql import metric_names

ROOT: Final = Path(__file__).resolve().parents[2]
OPS: Final = ROOT / "ops"
PROMETHEUS_CONFIG: Final = OPS / "prometheus.yml"
ALERTS: Final = OPS / "alerts.yml"
ALERTS_TEST: Final = OPS / "alerts_test.yml"
RUNBOOK: Final = OPS / "runbook.md"
RUNBOOK_PREFIX: Final = "ops/runbook.md#"  # + the alert's name in lower case
DASHBOARD: Final = OPS / "grafana" / "dashboards" / "ordersync.json"

# Series Prometheus makes itself, which rules and panels may use beside ordersync's.
BUILTIN_METRICS: Final = frozenset({"up"})

_SAMPLE_SUFFIXES: Final = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
    "gauge": ("",),
}


def known_families() -> dict[str, str]:
    """Family name -> type of every metric ordersync serves: the workers' instruments
    (``ordersync.metrics.instruments``, job ordersync-workers) and what ``ordersync
    exporter`` reads at scrape time (``ordersync.metrics.collector``, job
    ordersync-exporter). The one list the ops files are checked against."""
    families = {family.name: family.type for family in REGISTRY.collect()}
    families.update(COLLECTED_METRICS)
    return families


def sample_families() -> dict[str, str]:
    """Sample name, as PromQL selects it -> its family: a counter ``x`` is scraped as
    ``x_total``, a histogram ``x`` as ``x_bucket``, ``x_sum`` and ``x_count``."""
    samples: dict[str, str] = {}
    for name, kind in known_families().items():
        suffixes = _SAMPLE_SUFFIXES.get(kind)
        assert suffixes is not None, f"{name}: no sample names known for a {kind}"
        samples.update({name + suffix: name for suffix in suffixes})
    return samples


def known_metric_names() -> set[str]:
    """Every sample name ordersync serves, which rules and panels may select."""
    return set(sample_families())


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of ``ops/alerts.yml``, in file order."""
    groups = load_yaml(ALERTS)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def dashboard_panels() -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for panel in dashboard_panels()
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def rule_exprs() -> list[str]:
    groups = load_yaml(ALERTS)["groups"]
    return [str(rule["expr"]) for group in groups for rule in group["rules"]]


def referenced_metric_names() -> set[str]:
    """The families of the ordersync metrics the alert rules and the dashboard query, named
    as ``prometheus_client``'s parser and registries name them (a counter without
    ``_total``, a histogram without ``_bucket``): a system test can check that each is in a
    real scrape. Prometheus' own series (``up``) are left out. A counter or histogram with
    labels is in a scrape only once something was counted under some label set."""
    samples = sample_families()
    names: set[str] = set()
    for expr in [*rule_exprs(), *dashboard_exprs()]:
        names |= metric_names(expr)
    return {samples.get(name, name) for name in names - BUILTIN_METRICS}


# promtool ------------------------------------------------------------------------------


def _install_promtool() -> None:
    """Debian's ``prometheus`` package (it brings promtool); LookupError says why not."""
    debian.install("prometheus", timeout_s=400)


def locate_promtool() -> str:
    """promtool's path, installed first when missing; LookupError says why it cannot be."""
    found = shutil.which("promtool")
    if found is None:
        _install_promtool()
        found = shutil.which("promtool")
        if found is None:
            raise LookupError("the prometheus package is installed but promtool is not on PATH")
    return found


def promtool_unavailable(reason: str) -> NoReturn:
    """Fail in CI, skip elsewhere."""
    if debian.in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def promtool() -> str:
    """The path of promtool, installed first when missing."""
    try:
        return locate_promtool()
    except (LookupError, OSError, subprocess.TimeoutExpired) as error:
        promtool_unavailable(f"promtool is missing and could not be installed: {error}")


def run_promtool(
    promtool: str, args: Sequence[str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def assert_promtool_ok(
    promtool: str, args: Sequence[str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    done = run_promtool(promtool, args, cwd)
    assert done.returncode == 0, (
        f"promtool {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    )
    return done
