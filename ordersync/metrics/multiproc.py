"""A prefork worker's counts: every pool process writes its own files, the main process
serves their sum, and the files of dead pool processes are folded into one archive.

prometheus_client's multiprocess mode keeps a ``counter_<pid>.db`` / ``histogram_<pid>.db``
per process and sums them at scrape time. Pool processes come and go (a crash, a kill, a
recycle), so files would pile up; deleting them would make counters go backwards. Instead
``compact`` merges a dead process's files into ``counter_archive.db`` / ``histogram_archive
.db`` (same sum, one file) and removes them, under the lock every scrape takes, so no scrape
sees a value twice or not at all. The directory is emptied when the worker starts: counts
start at zero, which Prometheus reads as a counter reset, never as a double count.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Metric, values
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ordersync.metrics.instruments import REGISTRY

ARCHIVE: Final = "archive"
MERGED_TYPES: Final = ("counter", "histogram")
ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


class MetricsDirInUse(RuntimeError):
    """Instruments already hold values in memory: switching to files now would lose them."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"instruments used before the switch to multiprocess files: {names}")
        self.names = names


def node_dir(base: Path, pid: int) -> Path:
    """One directory per worker main process: two workers on a host never share files."""
    return base / f"worker-{pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_dead_nodes(base: Path) -> list[Path]:
    """Remove the directories of worker main processes that no longer run (a killed worker
    never cleaned up after itself)."""
    removed = []
    for path in base.glob("worker-*"):
        pid = path.name.removeprefix("worker-")
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def enable(directory: Path) -> None:
    """Make every value created from now on live in files under ``directory`` (emptied
    first). Called in the worker's main process before the pool forks."""
    used = [
        m._name
        for m in _instruments(REGISTRY)
        if not m._labelnames or m._metrics  # an unlabelled one made its value at import
    ]
    if used:
        raise MetricsDirInUse(used)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[ENV] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def _instruments(registry: CollectorRegistry) -> Iterable[MetricWrapperBase]:
    collectors = registry._collector_to_names  # the registry keeps no public list
    return [c for c in collectors if isinstance(c, MetricWrapperBase)]


class PoolCollector(Collector):
    """The sum of every pool process's files, with dead processes compacted first; an
    instrument nothing has used yet is still described (its name and help, no sample)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._inner = MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()

    def collect(self):  # type: ignore[no-untyped-def]  # prometheus_client's own signature
        with self._lock:
            compact(self.directory)
            found = list(self._inner.collect())  # type: ignore[no-untyped-call]
        seen = {metric.name for metric in found}
        unused = [
            Metric(instrument._name, instrument._documentation, instrument._type or "untyped")
            for instrument in _instruments(REGISTRY)
            if instrument._name not in seen
        ]
        return found + unused


def _pid_of(path: str) -> int | None:
    stem = Path(path).stem  # counter_1234
    pid = stem.rsplit("_", 1)[-1]
    return int(pid) if pid.isdigit() else None


def dead_files(directory: Path, kind: str) -> list[str]:
    own = os.getpid()
    files = []
    for path in glob.glob(os.path.join(directory, f"{kind}_*.db")):
        pid = _pid_of(path)
        if pid is not None and pid != own and not _alive(pid):
            files.append(path)
    return sorted(files)


def compact(directory: Path) -> int:
    """Fold the files of dead processes into the archive; returns how many were folded.
    Callers hold the collector's lock (the only reader of these files)."""
    folded = 0
    for kind in MERGED_TYPES:
        dead = dead_files(directory, kind)
        if not dead:
            continue
        archive = directory / f"{kind}_{ARCHIVE}.db"
        sources = [*dead, str(archive)] if archive.exists() else dead
        merged = MultiProcessCollector.merge(sources, accumulate=False)  # type: ignore[no-untyped-call]
        staging = directory / f"{kind}_{ARCHIVE}.staging"
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        target = MmapedDict(str(staging))  # type: ignore[no-untyped-call]
        try:
            for metric in merged:
                for sample in metric.samples:
                    labels = dict(sample.labels)
                    key = mmap_key(
                        metric.name, sample.name, list(labels), list(labels.values()),
                        metric.documentation,
                    )  # fmt: skip
                    target.write_value(key, sample.value, 0.0)  # type: ignore[no-untyped-call]
        finally:
            target.close()  # type: ignore[no-untyped-call]
        os.replace(staging, archive)  # the archive now holds the dead files' counts
        for path in dead:
            os.unlink(path)
        folded += len(dead)
    return folded
