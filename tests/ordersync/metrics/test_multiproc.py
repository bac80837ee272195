"""Pool processes' counts: summed across live processes, kept when a process dies (folded
into the archive), never counted twice, and the directory holds no file per dead process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ordersync.metrics import instruments
from ordersync.metrics.multiproc import MetricsDirInUse, clear_dead_nodes, enable, node_dir

SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, os, sys
    from pathlib import Path
    from ordersync.metrics.multiproc import PoolCollector, enable
    from ordersync.metrics import instruments as m

    directory = Path(sys.argv[1])
    enable(directory)

    def work(n):
        for _ in range(n):
            m.FILLS.labels("alpaca", "demo", "activities").inc()
            m.FILL_DETECTION_LATENCY.labels("alpaca", "demo", "activities").observe(0.2)

    def run(counts):
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=work, args=(n,)) for n in counts]
        for p in procs: p.start()
        for p in procs: p.join()

    def scrape():
        out = {}
        for metric in PoolCollector(directory).collect():
            for s in metric.samples:
                if s.name in ("ordersync_fills_recorded_total",
                              "ordersync_fill_detection_latency_seconds_count") or (
                    s.name == "ordersync_fill_detection_latency_seconds_bucket"
                    and s.labels.get("le") in ("0.1", "0.25", "+Inf")
                ):
                    out[s.name + s.labels.get("le", "")] = s.value
        return out

    run([3, 4, 5])
    work(1)  # this (live) process counts too
    first = scrape()
    files_after_first = sorted(p.name for p in directory.iterdir())
    again = scrape()  # compacting twice changes nothing
    run([10, 20])
    second = scrape()
    files = sorted(p.name for p in directory.iterdir())
    print(json.dumps({"first": first, "again": again, "second": second,
                      "files_after_first": files_after_first, "files": files,
                      "pid": os.getpid()}))
    """
)


def _run(tmp_path: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "pool")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_counts_of_every_pool_process_are_summed_and_survive_their_process(
    tmp_path: Path,
) -> None:
    result = _run(tmp_path)
    first, again, second = result["first"], result["again"], result["second"]
    assert first == again
    assert first == {
        "ordersync_fills_recorded_total": 13.0,
        "ordersync_fill_detection_latency_seconds_count": 13.0,
        "ordersync_fill_detection_latency_seconds_bucket0.1": 0.0,
        "ordersync_fill_detection_latency_seconds_bucket0.25": 13.0,
        "ordersync_fill_detection_latency_seconds_bucket+Inf": 13.0,
    }
    assert second == {
        "ordersync_fills_recorded_total": 43.0,
        "ordersync_fill_detection_latency_seconds_count": 43.0,
        "ordersync_fill_detection_latency_seconds_bucket0.1": 0.0,
        "ordersync_fill_detection_latency_seconds_bucket0.25": 43.0,
        "ordersync_fill_detection_latency_seconds_bucket+Inf": 43.0,
    }


def test_dead_processes_leave_no_files_behind(tmp_path: Path) -> None:
    result = _run(tmp_path)
    pid = result["pid"]
    expected = sorted(
        ["counter_archive.db", f"counter_{pid}.db", "histogram_archive.db", f"histogram_{pid}.db"]
    )
    assert result["files_after_first"] == expected
    assert result["files"] == expected


def test_switching_after_an_instrument_was_used_is_refused(tmp_path: Path) -> None:
    instruments.SWEEP_RUNS.labels("test_switch", "ok").inc()
    with pytest.raises(MetricsDirInUse) as refused:
        enable(tmp_path / "pool")
    assert "ordersync_sweep_runs" in refused.value.names
    assert not (tmp_path / "pool").exists()


def test_directories_of_dead_worker_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    gone = node_dir(tmp_path, int(dead.stdout))
    alive = node_dir(tmp_path, 1)  # init: always running
    for path in (gone, alive):
        path.mkdir()
        (path / "counter_1.db").write_bytes(b"")
    assert clear_dead_nodes(tmp_path) == [gone]
    assert alive.exists()
    assert not gone.exists()


def test_every_instrument_has_labels() -> None:
    """An unlabelled instrument would make its value at import, before the switch to files."""
    unlabelled = [
        names
        for collector, names in instruments.REGISTRY._collector_to_names.items()
        if not getattr(collector, "_labelnames", ())
    ]
    assert unlabelled == []
