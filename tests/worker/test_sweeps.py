"""Running a sweep over every account: one account's failure is recorded and the others are
swept all the same; the run renews its lock between requests and stops when it loses it
(fakeredis, SQLite; the per-account work is a stand-in)."""

from __future__ import annotations

import json

import pytest

from core.enums import BrokerKind
from models.accounts import ensure_account
from ordersync.metrics.instruments import REGISTRY
from tests.worker.conftest import T0, UnitWorker
from worker import sweeps
from worker.context import WorkerContext
from worker.heartbeat import run_key
from worker.reconcile import SweepStats, _keep_alive


def accounts(unit: UnitWorker, *names: str) -> list[str]:
    ids = [unit.account_id]
    with unit.ctx.sessions.begin() as session:
        for name in names:
            account = ensure_account(session, name=name, broker=BrokerKind.ALPACA,
                                     base_url="x", credentials_env="X",
                                     rate_limit_per_min=200, now=T0)  # fmt: skip
            session.flush()
            ids.append(account.id)
    return ids


def last_run(unit: UnitWorker, name: str) -> dict[str, object]:
    raw = unit.ctx.redis.hgetall(run_key(name))
    return {k: (json.loads(v) if k == "last_stats" else v) for k, v in raw.items()}


def test_one_accounts_error_does_not_stop_the_others(unit: UnitWorker) -> None:
    ids = accounts(unit, "b", "c")
    swept: list[str] = []

    def per_account(ctx: WorkerContext, account_id: str) -> SweepStats:
        if account_id == ids[1]:
            raise RuntimeError("credentials refused")
        swept.append(account_id)
        return SweepStats(account_id, watch=[f"o-{account_id}"])

    watched: list[str] = []
    run = sweeps.run_sweep(unit.ctx, "reconcile_open_orders", 30, per_account, watched.append)

    assert sorted(swept) == sorted([ids[0], ids[2]])
    assert sorted(watched) == sorted([f"o-{ids[0]}", f"o-{ids[2]}"])
    assert len(run.accounts) == 3
    record = last_run(unit, "reconcile_open_orders")
    assert record["last_run_ok"] == "0"
    assert f"account {ids[1]}: RuntimeError: credentials refused" in str(record["last_error"])


def test_the_run_renews_its_lock_between_requests_and_stops_when_it_is_lost(
    unit: UnitWorker,
) -> None:
    ids = accounts(unit, "b")
    lock = "ordersync:lock:sweep:deep_reconcile"
    ttls: list[int] = []
    swept: list[str] = []

    def per_account(ctx: WorkerContext, account_id: str) -> SweepStats:
        ctx.redis.pexpire(lock, 1000)  # as if most of its TTL had gone by
        _keep_alive()  # what the sweep does after each of its requests
        ttls.append(int(ctx.redis.pttl(lock)))
        ctx.redis.set(lock, "another-run")  # expired meanwhile and taken
        _keep_alive()
        swept.append(account_id)  # never reached
        return SweepStats(account_id)

    run = sweeps.run_sweep(unit.ctx, "deep_reconcile", 300, per_account)

    assert ttls[0] > 1000  # renewed, not left to expire
    assert swept == []
    assert run.accounts == []
    assert len(ids) == 2
    assert "lost its lock" in str(last_run(unit, "deep_reconcile")["last_error"])
    assert unit.ctx.redis.get(lock) == "another-run"  # the new holder keeps it


@pytest.mark.parametrize("error", [RuntimeError("boom")])
def test_a_failing_account_is_logged_with_its_id(
    unit: UnitWorker, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    def per_account(ctx: WorkerContext, account_id: str) -> SweepStats:
        raise error

    sweeps.run_sweep(unit.ctx, "reconcile_open_orders", 30, per_account)
    assert any(unit.account_id in r.getMessage() and r.exc_info for r in caplog.records)


def test_what_a_sweep_found_is_counted_per_account_name(unit: UnitWorker) -> None:
    (account_id,) = accounts(unit)
    with unit.ctx.sessions() as session:
        name = unit.ctx.account(session, id=account_id).name

    def labels(result: str) -> dict[str, str]:
        return {"sweep": "deep_reconcile", "account": name, "result": result}

    before = REGISTRY.get_sample_value("ordersync_reconcile_total", labels("adopted")) or 0

    def per_account(ctx: WorkerContext, account_id: str) -> SweepStats:
        return SweepStats(account_id, local_orders=4, adopted=2, misses=1, malformed=1)

    sweeps.run_sweep(unit.ctx, "deep_reconcile", 300, per_account)
    after = REGISTRY.get_sample_value
    assert (after("ordersync_reconcile_total", labels("adopted")) or 0) - before == 2
    assert (after("ordersync_reconcile_total", labels("anomaly")) or 0) >= 2
    assert (after("ordersync_reconcile_total", labels("examined")) or 0) >= 4


def test_a_failed_metrics_lookup_costs_neither_the_run_nor_its_watches(
    unit: UnitWorker,
) -> None:
    """The account vanished mid-run: its counts are skipped, the sweep itself is not."""

    def per_account(ctx: WorkerContext, account_id: str) -> SweepStats:
        return SweepStats("no-such-account", watch=["o-1", "o-2"])

    watched: list[str] = []
    run = sweeps.run_sweep(unit.ctx, "reconcile_open_orders", 30, per_account, watched.append)

    assert watched == ["o-1", "o-2"]
    assert len(run.accounts) == 1
    assert last_run(unit, "reconcile_open_orders")["last_run_ok"] == "1"
