"""``ordersync up`` as a user runs it: prints where everything is (the dashboard and the
keys that open it too), counts orders, stops cleanly on Ctrl-C or SIGTERM, starts again; and
the demo trading service it runs."""

from __future__ import annotations

import ast
import json
import os
import queue
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from core.enums import BrokerKind
from models import migrate
from models.accounts import ensure_account
from ordersync import demo_trader
from ordersync.embedded_redis import free_port
from ordersync.settings import Settings
from ordersync.stack import STACK_FILE, Stack, StackConfig, group_members
from ordersync.up import api_port, api_rows
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

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.var_dir = tmp_path / "var"
        full_env = {**os.environ, "ORDERSYNC_VAR_DIR": str(self.var_dir),
                    "ORDERSYNC_DATABASE_URL": database_url(tmp_path),
                    "ORDERSYNC_METRICS_PORT": str(free_port()),
                    "ORDERSYNC_EXPORTER_PORT": str(free_port())}  # fmt: skip
        for name in ("ORDERSYNC_REDIS_URL", "ORDERSYNC_API_ADMIN_KEY"):
            full_env.pop(name, None)
        full_env.update(env or {})
        self.stderr = (tmp_path / "up.stderr").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ordersync", "up", "--workers", "1",
             "--sim-port", str(free_port()), "--flower-port", str(free_port()),
             "--api-port", str(free_port()), *args],
            cwd=tmp_path, env=full_env, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
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
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code

    def close(self) -> None:
        stop_process(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr.close()


def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'o.db'}"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def accounts_seen(api: str, key: str) -> list[str]:
    answer = httpx.get(f"{api}/api/v1/accounts", headers=bearer(key), timeout=10)
    assert answer.status_code == 200, answer.text
    return [account["name"] for account in answer.json()]


def add_account(url: str, name: str) -> None:
    """An account beside the demo's, which only the admin key sees."""
    migrate.upgrade(url)
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        ensure_account(
            session, name=name, broker=BrokerKind.ALPACA, base_url="http://127.0.0.1:9",
            credentials_env="ORDERSYNC_ACCOUNT_" + name.upper(), rate_limit_per_min=200,
            now=datetime.now(UTC),
        )  # fmt: skip
    engine.dispose()


def check_the_api(up: Up, admin_key: str | None) -> list[str]:
    """The banner's dashboard and keys: the API answers /healthz and /readyz, the demo key
    sees the demo account, the admin key (printed when generated, else ``admin_key``) every
    account. Returns the keys."""
    api = up.wait_for_line(r"^\s+dashboard\s+(http://127\.0\.0\.1:\d+)/dashboard/ ", 5)[1]
    assert up.wait_for_line(r"^\s+api\s+(\S+)", 5)[1] == f"{api}/api/v1"
    demo_key = up.wait_for_line(r"^\s+api key \(demo\)\s+(osk_\S+) ", 5)[1]
    admin = up.wait_for_line(r"^\s+admin key\s+(.+)$", 5)[1]
    if admin_key is None:
        admin_key = admin.split()[0]
        assert "generated for this run" in admin
    else:
        assert admin == "from ORDERSYNC_API_ADMIN_KEY"
    assert httpx.get(f"{api}/healthz", timeout=10).json()["status"] == "ok"
    ready = httpx.get(f"{api}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert accounts_seen(api, demo_key) == ["demo"]
    assert accounts_seen(api, admin_key) == ["demo", "other-desk"]
    return [demo_key, admin_key]


@pytest.mark.integration
def test_up_prints_where_things_are_stops_on_signals_and_starts_again(tmp_path: Path) -> None:
    """Started twice: first with an admin key it generates, then with one configured,
    which it never prints. No key is written to a file under var/."""
    add_account(database_url(tmp_path), "other-desk")
    configured = secrets.token_urlsafe(32)
    keys: list[str] = []
    for sig, admin_key in ((signal.SIGINT, None), (signal.SIGTERM, configured)):
        env = {} if admin_key is None else {"ORDERSYNC_API_ADMIN_KEY": admin_key}
        up = Up(tmp_path, "--no-demo", env=env)
        try:
            up.wait_for_line("ordersync is up", 120)
            run_keys = check_the_api(up, admin_key)
            for name in ("paper exchange", "flower", "redis"):  # in the order printed
                up.wait_for_line(rf"^\s+{name}\s+\S+", 5)
            metrics = [up.wait_for_line(rf"^\s+metrics \({part}\)\s+(\S+)", 5).group(1)
                       for part in ("worker", "state")]  # fmt: skip
            up.wait_for_line(r"^\s+database\s+\S+", 5)
            up.wait_for_line(r"orders: placed 0 \| working 0 \| filled 0", 10)
            for url in metrics:  # the worker's counters and the exporter's gauges answer
                assert "ordersync_" in httpx.get(url, timeout=5).text
            pids = up.pids()
            assert len(pids) == 8  # redis, exchange, worker, beat, flower, exporter, api, stream
            assert up.stop(sig) == 0
            assert not any(group_members(pid) for pid in pids)
            assert not (up.var_dir / STACK_FILE).exists()
            output = "\n".join(up.seen)
            assert output.count(run_keys[0]) == 1  # the demo key: printed once
            assert output.count(run_keys[1]) == (1 if admin_key is None else 0)
            keys += run_keys
        finally:
            up.close()
    assert len(set(keys)) == 4  # a new demo key each run
    files = [path for path in up.var_dir.rglob("*") if path.is_file()]
    assert any(path.name == "api.log" for path in files)
    for path in files:
        for key in keys:
            assert key.encode() not in path.read_bytes(), path


def test_up_keeps_a_chosen_api_port_and_moves_off_a_taken_default() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        chosen = Settings(api_port=port)  # as ORDERSYNC_API_PORT sets it
        assert api_port(chosen, None) == (port, None)  # refused by the stack, clearly
        assert api_port(chosen, 1234) == (1234, None)
        default = Settings.model_construct(_fields_set=set(), api_port=port)  # the default
        moved, note = api_port(default, None)
        assert moved == 0
        assert note is not None
        assert f"port {port} is in use" in note
        assert "ORDERSYNC_API_PORT" in note
    assert api_port(default, None) == (port, None)  # free again


def test_up_prints_a_generated_admin_key_and_never_a_configured_one(tmp_path: Path) -> None:
    stack = Stack(StackConfig(var_dir=tmp_path, database_url="sqlite://"))
    assert api_rows(stack, "osk_demo") == []  # no API started
    stack.api_url = "http://127.0.0.1:8000"
    stack.api_admin_key, stack.api_admin_key_generated = "configured-admin-key", False
    rows = dict(api_rows(stack, "osk_demo"))
    assert rows["dashboard"].startswith("http://127.0.0.1:8000/dashboard/ ")
    assert rows["api key (demo)"].startswith("osk_demo ")
    assert rows["admin key"] == "from ORDERSYNC_API_ADMIN_KEY"
    assert "configured-admin-key" not in repr(rows)
    stack.api_admin_key, stack.api_admin_key_generated = "generated-admin-key", True
    assert dict(api_rows(stack, None))["admin key"].startswith("generated-admin-key ")


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
