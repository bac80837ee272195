"""``ordersync bench --sweep-orders``: the seeded orders, the verdict, and a real run against
the paper exchange."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from brokers.paper.model import initial_price
from ordersync import bench_sweep
from ordersync.cli import app

ORDERS, PAGE = 125, 25  # five full pages: the listing needs a sixth, empty one to know


def test_seeded_orders_are_buy_limits_far_below_the_market_in_decimal_strings() -> None:
    bodies = bench_sweep.seed_bodies(20, "p-", {"AAPL": "200.00"})
    assert [body["client_order_id"] for body in bodies] == [f"p-{n}" for n in range(20)]
    for body in bodies:
        assert (body["side"], body["type"], body["time_in_force"]) == ("buy", "limit", "gtc")
        market = Decimal("200.00") if body["symbol"] == "AAPL" else initial_price(body["symbol"])
        assert Decimal(body["limit_price"]) <= market / 2
        assert Decimal(body["qty"]) > 0


def figures(**changes: Any) -> dict[str, Any]:
    return {"all_checked": True, "requests_within_target": True, **changes}


def test_the_sweep_bench_fails_on_unchecked_orders_or_extra_requests_not_on_time() -> None:
    assert not bench_sweep.failed(figures(wall_within_target=False))
    assert bench_sweep.failed(figures(all_checked=False))
    assert bench_sweep.failed(figures(requests_within_target=False))


def test_the_bench_refuses_to_measure_nothing() -> None:
    result = CliRunner().invoke(app, ["bench", "--orders", "0"])
    assert result.exit_code == 2
    assert "--sweep-orders" in result.output


@pytest.mark.integration
def test_sweep_bench_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "ORDERSYNC_VAR_DIR": str(tmp_path / "var")}
    env.pop("ORDERSYNC_DATABASE_URL", None)
    env.pop("ORDERSYNC_REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "ordersync", "bench", "--orders", "0", "--json", str(out),
         "--sweep-orders", str(ORDERS), "--sweep-page-size", str(PAGE), "--sweep-runs", "2"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    sweep = json.loads(out.read_text())["sweep"]
    target = 1 + math.ceil(ORDERS / PAGE)
    assert (sweep["open_orders"], sweep["page_size"], sweep["target_requests"]) == (
        ORDERS, PAGE, target,
    )  # fmt: skip
    assert len(sweep["runs"]) == 2
    for run in sweep["runs"]:
        # counted by the exchange: every request a listing page, exactly the target
        assert run["requests"] == run["list_requests"] == run["pages"] == target, run
        assert run["sweep_counted_requests"] == target
        assert run["checked"] == run["local_orders"] == run["unchanged"] == ORDERS, run
        assert (run["applied"], run["lookups"], run["yielded"]) == (0, 0, None)
        assert run["queries"] > 0
        assert run["wall_s"] > 0
    assert sweep["requests_per_sweep"] == target
    assert (sweep["all_checked"], sweep["requests_within_target"]) == (True, True)
    assert {"runs", "page_size", "sweep_fresh_s", "database"} <= set(sweep["settings"])
    assert "sweep: 125 open orders, page size 25 (sqlite)" in result.stdout
    with sqlite3.connect(tmp_path / "var" / "bench" / "bench.db") as db:
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (0,)  # cleaned up
