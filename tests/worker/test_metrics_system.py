"""Metrics on real parts: a prefork worker with two pool processes serves counts equal to
the work done, a killed pool process loses none and a restarted worker doubles none; the
exporter serves the database's and Redis's gauges; every metric the alert rules and the
dashboard name is in a real scrape."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from core.enums import OrderStatus
from ordersync.embedded_redis import free_port
from ordersync.stack import group_members
from tests.conftest import migrated_database
from tests.ops.conftest import referenced_metric_names
from tests.worker.conftest import TrackingSystem, tracking_system, wait_for

pytestmark = pytest.mark.integration
ORDERS = 12


@pytest.fixture
def metered(
    tracking_redis_url: str, paper_exchange: object, tmp_path: Path
) -> Iterator[TrackingSystem]:
    for database_url in migrated_database("sqlite", tmp_path):
        with tracking_system(database_url, tracking_redis_url, paper_exchange,  # type: ignore[arg-type]
                             tmp_path / "var") as system:  # fmt: skip
            system.env["ORDERSYNC_METRICS_PORT"] = str(free_port())
            yield system


def scrape(url: str) -> dict[str, list[Sample]]:
    """Family name -> samples (a family described without samples maps to [])."""
    text = httpx.get(url, timeout=5).text
    return {family.name: list(family.samples) for family in text_string_to_metric_families(text)}


def total(families: dict[str, list[Sample]], sample: str, **labels: str) -> float:
    family = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    return sum(
        s.value
        for s in families.get(family, [])
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _metrics_url(system: TrackingSystem) -> str:
    return f"http://127.0.0.1:{system.env['ORDERSYNC_METRICS_PORT']}/metrics"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _place_and_fill(system: TrackingSystem, n: int) -> list[str]:
    cids = [f"metrics-{uuid.uuid4().hex[:12]}" for _ in range(n)]
    for cid in cids:
        system.place(client_order_id=cid, symbol="AAPL", side="buy", quantity="1",
                     order_type="market", time_in_force="day")  # fmt: skip

    def filled() -> bool:
        orders = {o.client_order_id: o for o in system.orders()}
        return all(
            cid in orders and orders[cid].status is OrderStatus.FILLED
            and orders[cid].filled_quantity == orders[cid].quantity
            for cid in cids
        )  # fmt: skip

    wait_for(filled, 60, f"{n} orders filled and their fills recorded")
    return cids


def _pool_pids(worker: subprocess.Popen[bytes]) -> list[int]:
    return [pid for pid in group_members(worker.pid) if pid != worker.pid]


def test_a_prefork_worker_serves_the_work_of_every_pool_process(metered: TrackingSystem) -> None:
    system = metered
    worker = system.start_worker("w1", concurrency=2)
    url = _metrics_url(system)
    wait_for(lambda: _answers(url), 60, "the worker's metrics endpoint")
    _place_and_fill(system, ORDERS)
    fills = len(system.fills())

    def counted() -> dict[str, list[Sample]]:
        families = scrape(url)
        placed = total(families, "ordersync_placements_total", outcome="acknowledged")
        assert placed == ORDERS
        assert total(families, "ordersync_fills_recorded_total") == fills
        return families

    wait_for(lambda: _no_error(counted), 30, "the scrape counting every placement and fill")
    families = counted()
    assert total(families, "ordersync_placement_latency_seconds_count") == ORDERS
    assert total(families, "ordersync_fill_detection_latency_seconds_count") == fills
    assert total(families, "ordersync_fill_detection_latency_seconds_sum") > 0
    assert total(families, "ordersync_broker_requests_total", endpoint="POST /v2/orders",
                 outcome="2xx") == ORDERS  # fmt: skip
    assert total(families, "ordersync_monitor_checks_total") > 0
    # The work really went through both pool processes' files.
    pool_dir = next((system.var_dir / "metrics").glob(f"worker-{worker.pid}"))
    writers = {p.stem.rsplit("_", 1)[1] for p in pool_dir.glob("counter_*.db")}
    assert len(writers - {"archive"}) >= 2, writers

    # A pool process killed: Celery starts another; nothing it counted is lost or doubled.
    victim = _pool_pids(worker)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in _pool_pids(worker) and len(_pool_pids(worker)) == 2, 30,
             "the pool process replaced")  # fmt: skip
    after_kill = scrape(url)
    for name in ("ordersync_placements_total", "ordersync_fills_recorded_total",
                 "ordersync_placement_latency_seconds_count"):  # fmt: skip
        assert total(after_kill, name) == total(families, name), name
    assert (pool_dir / "counter_archive.db").exists()
    assert not (pool_dir / f"counter_{victim}.db").exists()

    # The worker restarted: its counts start again from zero (a counter reset), not doubled.
    worker.send_signal(signal.SIGTERM)
    worker.wait(60)
    system.start_worker("w1", concurrency=2)
    wait_for(lambda: _answers(url), 60, "the restarted worker's metrics endpoint")
    assert total(scrape(url), "ordersync_placements_total") == 0
    _place_and_fill(system, 3)
    wait_for(lambda: total(scrape(url), "ordersync_placements_total") == 3, 30,
             "the restarted worker counting only its own placements")  # fmt: skip
    assert not pool_dir.exists()  # the stopped worker's directory went with it on restart


def test_the_exporter_serves_live_state_and_every_name_ops_uses_is_scraped(
    metered: TrackingSystem,
) -> None:
    system = metered
    system.start_worker("w1", concurrency=2)
    worker_url = _metrics_url(system)
    wait_for(lambda: _answers(worker_url), 60, "the worker's metrics endpoint")
    _place_and_fill(system, 4)
    port = free_port()
    with (system.var_dir / "exporter.log").open("wb") as log:
        exporter = subprocess.Popen(
            [sys.executable, "-m", "ordersync.cli", "exporter", "--host", "127.0.0.1",
             "--port", str(port)],
            env=system.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: _answers(url), 30, "the exporter")
        wait_for(lambda: total(scrape(url), "ordersync_workers_online") == 1, 30,
                 "the worker online")  # fmt: skip
        state = scrape(url)
        assert total(state, "ordersync_orders", account="test", status="FILLED") == 4
        for source in ("database", "redis", "transport"):
            assert total(state, "ordersync_collector_source_up", source=source) == 1, source
        depths = {s.labels["queue"] for s in state["ordersync_queue_depth_messages"]}
        assert {"celery", "ordersync.monitor"} <= depths
        capacity = total(state, "ordersync_budget_capacity_tokens", account="test")
        tokens = total(state, "ordersync_budget_tokens", account="test")
        assert 0 <= tokens <= capacity
        assert capacity > 0
        assert total(state, "ordersync_budget_granted_total", account="test") > 0

        scraped = set(state) | set(scrape(worker_url))
        ours = {name for name in referenced_metric_names() if name.startswith("ordersync_")}
        missing = sorted(ours - scraped)
        assert missing == []
    finally:
        exporter.terminate()
        exporter.wait(20)


def test_status_shows_the_running_systems_real_numbers(metered: TrackingSystem) -> None:
    """`ordersync status --json` next to running workers: what they did, as it happened."""
    system = metered
    system.start_worker("w1", concurrency=2)
    wait_for(lambda: _answers(_metrics_url(system)), 60, "the worker")
    _place_and_fill(system, 5)
    fills = len(system.fills())
    done = subprocess.run(
        [sys.executable, "-m", "ordersync.cli", "status", "--json"],
        env=system.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["errors"] == {}
    assert len(status["workers"]["online"]) == 1
    assert status["orders"]["by_account"]["test"]["FILLED"] == 5
    assert status["detection_latency"]["count"] == fills
    assert status["detection_latency"]["p99_s"] >= status["detection_latency"]["p50_s"] >= 0
    assert set(status["queues"]) == {"celery", "ordersync.monitor"}
    (budget,) = [b for b in status["budgets"] if b["account"] == "test"]
    assert budget["granted"] > 0


def _no_error(check: object) -> bool:
    try:
        check()  # type: ignore[operator]
    except AssertionError:
        return False
    return True
