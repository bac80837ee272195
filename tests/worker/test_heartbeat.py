"""Sweep run records and the dead-man's switch, with explicit times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import fakeredis
import pytest

from ordersync.settings import Settings
from worker.heartbeat import (
    DEEP_RECONCILE,
    FIRST_MISSING_KEY,
    PURGE_CLOSED_ORDERS,
    RECONCILE_OPEN_ORDERS,
    REPORT_STALE_ORDERS,
    SWEEPS,
    Deadman,
    check_deadman,
    evaluate,
    last_runs,
    record_run,
    sweep_intervals,
)

T0 = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
SETTINGS = Settings(
    sweep_interval_s=30, deep_reconcile_interval_s=300, stale_report_interval_s=20,
    purge_interval_s=3600, sweep_deadman_intervals=3,
)  # fmt: skip


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


def succeed(client: fakeredis.FakeRedis, name: str, finished: float) -> None:
    record_run(client, name, ok=True, started_at=at(finished - 1), finished_at=at(finished),
               stats={"checked": 3})  # fmt: skip


def dead(client: fakeredis.FakeRedis, seconds: float) -> set[str]:
    return {h.name for h in check_deadman(client, SETTINGS, at(seconds))}


def test_record_run_keeps_counts_outcome_error_duration_and_stats(
    client: fakeredis.FakeRedis,
) -> None:
    record_run(client, RECONCILE_OPEN_ORDERS, ok=True, started_at=at(0), finished_at=at(2.5),
               stats={"checked": 7, "ratio": 0.5, "note": "x"})  # fmt: skip
    record_run(client, RECONCILE_OPEN_ORDERS, ok=False, started_at=at(30), finished_at=at(31),
               stats={"checked": 1}, error="BrokerUnavailable: 503")  # fmt: skip
    run = last_runs(client)[RECONCILE_OPEN_ORDERS]
    assert (run.runs, run.failures) == (2, 1)
    assert run.last_started == at(30)
    assert run.last_finished == at(31)
    assert run.last_run_ok is False
    assert run.last_ok == at(2.5)
    assert run.last_failed == at(31)
    assert run.last_error == "BrokerUnavailable: 503"
    assert run.last_duration_s == 1.0
    assert run.last_stats == {"checked": 1}


def test_a_failure_text_may_come_in_the_stats(client: fakeredis.FakeRedis) -> None:
    record_run(client, DEEP_RECONCILE, ok=False, started_at=at(0), finished_at=at(1),
               stats={"error": "OperationalError: gone"})  # fmt: skip
    assert last_runs(client)[DEEP_RECONCILE].last_error == "OperationalError: gone"


def test_last_runs_lists_the_four_sweeps_and_any_other_recorded(
    client: fakeredis.FakeRedis,
) -> None:
    succeed(client, "custom_sweep", 5)
    runs = last_runs(client)
    assert list(runs) == [*SWEEPS, "custom_sweep"]
    assert runs[PURGE_CLOSED_ORDERS].runs == 0
    assert runs[PURGE_CLOSED_ORDERS].last_ok is None
    assert runs["custom_sweep"].runs == 1


def test_naive_times_are_refused(client: fakeredis.FakeRedis) -> None:
    with pytest.raises(ValueError, match="naive"):
        record_run(client, DEEP_RECONCILE, ok=True, started_at=datetime(2026, 1, 1),
                   finished_at=at(0), stats={})  # fmt: skip


def test_a_fresh_system_is_given_its_full_limit_before_alerting(
    client: fakeredis.FakeRedis,
) -> None:
    assert dead(client, 0) == set()  # first seen missing now
    assert dead(client, 60) == set()  # 3 x 20 s for the reporter: exactly at the limit
    assert dead(client, 60.001) == {REPORT_STALE_ORDERS}
    assert dead(client, 90.001) == {REPORT_STALE_ORDERS, RECONCILE_OPEN_ORDERS}
    assert dead(client, 3 * 3600.5) == set(SWEEPS)


def test_the_first_seen_time_is_kept_not_moved(client: fakeredis.FakeRedis) -> None:
    dead(client, 0)
    dead(client, 50)  # a later check must not restart the clock
    assert client.hget(FIRST_MISSING_KEY, RECONCILE_OPEN_ORDERS) == at(0).isoformat()
    assert RECONCILE_OPEN_ORDERS in dead(client, 91)


def test_measured_from_the_last_success(client: fakeredis.FakeRedis) -> None:
    dead(client, 0)
    succeed(client, RECONCILE_OPEN_ORDERS, 80)
    assert RECONCILE_OPEN_ORDERS not in dead(client, 170)
    assert client.hget(FIRST_MISSING_KEY, RECONCILE_OPEN_ORDERS) is None
    assert RECONCILE_OPEN_ORDERS in dead(client, 170.5)


def test_failures_do_not_count_as_success(client: fakeredis.FakeRedis) -> None:
    succeed(client, RECONCILE_OPEN_ORDERS, 0)
    for t in (30, 60, 90):
        record_run(client, RECONCILE_OPEN_ORDERS, ok=False, started_at=at(t),
                   finished_at=at(t + 1), stats={}, error="boom")  # fmt: skip
    assert RECONCILE_OPEN_ORDERS in dead(client, 91)
    succeed(client, RECONCILE_OPEN_ORDERS, 120)
    assert RECONCILE_OPEN_ORDERS not in dead(client, 121)


def test_each_sweep_has_its_own_interval(client: fakeredis.FakeRedis) -> None:
    for name in SWEEPS:
        succeed(client, name, 0)
    assert dead(client, 901) == {REPORT_STALE_ORDERS, RECONCILE_OPEN_ORDERS, DEEP_RECONCILE}
    assert sweep_intervals(SETTINGS)[PURGE_CLOSED_ORDERS] == 3600


def test_evaluate_reports_every_state_without_redis() -> None:
    runs = last_runs(fakeredis.FakeRedis(decode_responses=True))
    intervals = {"a": 10.0, "b": 10.0, "c": 10.0}
    health = evaluate(runs, {"a": at(0), "b": at(-31)}, intervals, 3, at(0))
    assert health["a"].state is Deadman.WAITING
    assert health["b"].state is Deadman.DEAD
    assert health["b"].silent_s == 31
    assert health["c"].state is Deadman.UNWATCHED
