"""``ordersync up`` as a user runs it: prints where everything is, counts orders, stops
cleanly on Ctrl-C or SIGTERM, starts again; and the demo trading service it runs."""

from __future__ import annotations

import ast
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordersync import demo_trader
from ordersync.embedded_redis import free_port
from ordersync.stack import STACK_FILE, group_members
from tests.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
TASKS_EXIST = 'name="ordersync.place_order"' in (REPO_ROOT / "worker" / "tasks.py").read_text()
STDLIB = sys.stdlib_module_names


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_demo_trader_imports_only_celery_kombu_and_the_standard_library() -> None:
    roots = imported_roots(Path(demo_trader.__file__)) - STDLIB - {"__future__"}
    assert roots == {"celery", "kombu"}


class FakeCelery:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_task(self, name: str, kwargs: dict[str, Any]) -> None:
        self.sent.append((name, kwargs))


def test_the_demo_trader_closes_entries_and_cancels_what_rests() -> None:
    app = FakeCelery()
    trader = demo_trader.Trader(
        app,  # type: ignore[arg-type]
        "demo",
        demo_trader.Prices(None),
        random.Random(3),
    )
    for _ in range(40):
        trader.new_order()
    for item in list(trader.due):  # the exits and cancels, as if their time had come
        item.action()
    places = [kw for name, kw in app.sent if name == "ordersync.place_order"]
    cancels = [kw for name, kw in app.sent if name == "ordersync.cancel_order"]
    entries = {kw["decision_id"]: kw for kw in places if kw.get("intent") == "ENTRY"}
    exits = [kw for kw in places if kw.get("intent") == "EXIT"]
    limits = {kw["client_order_id"]: kw for kw in places if kw.get("order_type") == "limit"}
    assert entries
    assert exits
    assert limits
    assert cancels
    for kw in places:
        assert kw["account"] == "demo"
        assert isinstance(kw["quantity"], str)
        assert Decimal(kw["quantity"]) > 0
    for kw in exits:
        entry = entries[kw["trade_id"]]
        assert (kw["symbol"], kw["quantity"]) == (entry["symbol"], entry["quantity"])
        assert {kw["side"], entry["side"]} == {"buy", "sell"}
    for kw in cancels:
        assert kw["client_order_id"] in limits
    for kw in limits.values():
        price = Decimal(kw["limit_price"])
        assert 10 < price < 600
        assert price == price.quantize(Decimal("0.01"))


class Up:
    """``ordersync up`` in a subprocess; its stdout lines are read on a thread."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.var_dir = tmp_path / "var"
        env = {**os.environ, "ORDERSYNC_VAR_DIR": str(self.var_dir),
               "ORDERSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'o.db'}",
               "ORDERSYNC_METRICS_PORT": str(free_port()),
               "ORDERSYNC_EXPORTER_PORT": str(free_port())}  # fmt: skip
        env.pop("ORDERSYNC_REDIS_URL", None)
        self.stderr = (tmp_path / "up.stderr").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ordersync", "up", "--workers", "1",
             "--sim-port", str(free_port()), "--flower-port", str(free_port()), *args],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r} in {timeout_s} s: {self.seen}")

    def pids(self) -> list[int]:
        recorded = json.loads((self.var_dir / STACK_FILE).read_text())
        return [int(entry["pid"]) for entry in recorded["processes"]]

    def stop(self, sig: signal.Signals) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=90)
        self.reader.join(timeout=10)
        return code

    def close(self) -> None:
        stop_process(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr.close()


@pytest.mark.integration
def test_up_prints_where_things_are_stops_on_signals_and_starts_again(tmp_path: Path) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        up = Up(tmp_path, "--no-demo")
        try:
            up.wait_for_line("ordersync is up", 120)
            for name in ("paper exchange", "flower", "redis"):  # in the order printed
                up.wait_for_line(rf"^\s+{name}\s+\S+", 5)
            metrics = [up.wait_for_line(rf"^\s+metrics \({part}\)\s+(\S+)", 5).group(1)
                       for part in ("worker", "state")]  # fmt: skip
            up.wait_for_line(r"^\s+database\s+\S+", 5)
            up.wait_for_line(r"orders: placed 0 \| working 0 \| filled 0", 10)
            for url in metrics:  # the worker's counters and the exporter's gauges answer
                assert "ordersync_" in httpx.get(url, timeout=5).text
            pids = up.pids()
            assert len(pids) == 6  # redis, exchange, worker, beat, flower, exporter
            assert up.stop(sig) == 0
            assert not any(group_members(pid) for pid in pids)
            assert not (up.var_dir / STACK_FILE).exists()
        finally:
            up.close()


@pytest.mark.integration
@pytest.mark.skipif(not TASKS_EXIST, reason="ordersync.place_order is not written yet")
def test_up_with_the_demo_fills_orders(tmp_path: Path) -> None:
    up = Up(tmp_path, "--demo-orders-per-s", "4")
    try:
        up.wait_for_line("ordersync is up", 120)
        pids = up.pids()
        up.wait_for_line(r"filled [1-9]", 60)
        assert up.stop(signal.SIGINT) == 0
        assert not any(group_members(pid) for pid in pids)
    finally:
        up.close()
