"""ops/prometheus.yml: what it scrapes, and promtool's check of the file itself.

promtool checks that rule files and credential files exist, at the paths the Prometheus
container sees (/etc/prometheus/...). The check runs on a copy whose /etc/prometheus/ is a
temporary directory holding ops/ where the compose file mounts it; every other byte of the
copy is the real file's.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ops.conftest import (
    ALERTS,
    OPS,
    PROMETHEUS_CONFIG,
    assert_promtool_ok,
    load_yaml,
    run_promtool,
)

# The first test that asks for promtool may install it (apt-get update and install).
pytestmark = pytest.mark.timeout(900)

CONTAINER_DIR = "/etc/prometheus/"
OPS_MOUNT = CONTAINER_DIR + "ordersync/"  # where the compose file mounts ./ops
# Keys that hold a secret inline; the config may only name files (password_file, ...).
INLINE_SECRETS = {"password", "bearer_token", "credentials", "client_secret"}


def _config() -> dict[str, Any]:
    data = load_yaml(PROMETHEUS_CONFIG)
    assert isinstance(data, dict)
    return data


def _job(name: str) -> dict[str, Any]:
    jobs = {job["job_name"]: job for job in _config()["scrape_configs"]}
    assert name in jobs, sorted(jobs)
    job = jobs[name]
    assert isinstance(job, dict)
    return job


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key), value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _container_copy(root: Path) -> Path:
    """The config with /etc/prometheus/ moved under ``root``: ops/ copied to where the
    compose file mounts it, an empty file for each *_file the config names."""
    etc = root / "etc-prometheus"
    shutil.copytree(OPS, etc / "ordersync")
    text = PROMETHEUS_CONFIG.read_text()
    for key, value in _walk(_config()):
        if key.endswith("_file") and isinstance(value, str):
            assert value.startswith(CONTAINER_DIR), f"{key}: {value} is not in the container"
            stand_in = etc / value.removeprefix(CONTAINER_DIR)
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text("not-a-real-secret\n")
    copy = root / "prometheus.yml"
    copy.write_text(text.replace(CONTAINER_DIR, f"{etc}/"))
    return copy


def test_promtool_checks_the_config(promtool: str, tmp_path: Path) -> None:
    config = _container_copy(tmp_path)
    done = assert_promtool_ok(promtool, ["check", "config", str(config)])
    assert "SUCCESS: 1 rule files found" in done.stdout + done.stderr


def test_promtool_check_fails_when_a_rule_file_is_missing(promtool: str, tmp_path: Path) -> None:
    """The check above would catch a rule file path that is not where ops/ is mounted."""
    config = _container_copy(tmp_path)
    (tmp_path / "etc-prometheus" / "ordersync" / ALERTS.name).unlink()
    assert run_promtool(promtool, ["check", "config", str(config)]).returncode != 0


def test_rule_files_are_the_mounted_alerts() -> None:
    assert _config()["rule_files"] == [OPS_MOUNT + ALERTS.name]


def test_scrape_and_evaluation_every_15s() -> None:
    assert _config()["global"]["scrape_interval"] == "15s"
    assert _config()["global"]["evaluation_interval"] == "15s"


def test_every_worker_replica_is_scraped() -> None:
    job = _job("ordersync-workers")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert "static_configs" not in job
    assert job["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": 9808, "refresh_interval": "15s"}
    ]


def test_every_stream_replica_is_scraped() -> None:
    job = _job("ordersync-stream")
    assert "static_configs" not in job
    assert job["dns_sd_configs"] == [
        {"names": ["stream"], "type": "A", "port": 9810, "refresh_interval": "15s"}
    ]


def test_the_exporter_is_scraped() -> None:
    job = _job("ordersync-exporter")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": ["exporter:9809"]}]


def test_flower_is_scraped_without_its_password() -> None:
    """Flower 2.x serves /metrics without authentication, even with --basic-auth; its
    password would let Prometheus shut workers down, so none is given."""
    job = _job("flower")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"] == [{"targets": ["flower:5555"]}]
    assert "basic_auth" not in job


def test_the_api_job_waits_commented_out() -> None:
    """Until the API serves the exporter's metrics, a job for it would scrape nothing, and
    beside the exporter's it would double every sum."""
    jobs = {job["job_name"] for job in _config()["scrape_configs"]}
    assert jobs == {"ordersync-workers", "ordersync-stream", "ordersync-exporter", "flower"}
    assert "# - job_name: ordersync-api" in PROMETHEUS_CONFIG.read_text()


def test_no_secret_is_written_in_the_config() -> None:
    inline = {key for key, _ in _walk(_config())} & INLINE_SECRETS
    assert inline == set()
