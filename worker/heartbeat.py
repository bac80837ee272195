"""The record of sweep runs in Redis, and the dead-man's switch over it: a sweep that has not
succeeded within ``sweep_deadman_intervals`` of its intervals is dead (the safety net is off).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from redis import Redis
from redis.typing import EncodableT, FieldT

from ordersync.metrics import record
from ordersync.settings import Settings

RECONCILE_OPEN_ORDERS: Final = "reconcile_open_orders"
DEEP_RECONCILE: Final = "deep_reconcile"
REPORT_STALE_ORDERS: Final = "report_stale_orders"
PURGE_CLOSED_ORDERS: Final = "purge_closed_orders"
SWEEPS: Final[tuple[str, ...]] = (
    RECONCILE_OPEN_ORDERS, DEEP_RECONCILE, REPORT_STALE_ORDERS, PURGE_CLOSED_ORDERS,
)  # fmt: skip

RUN_KEY_PREFIX: Final = "ordersync:sweeps:run:"
NAMES_KEY: Final = "ordersync:sweeps:names"
FIRST_MISSING_KEY: Final = "ordersync:sweeps:first_missing"
ERROR_MAX_CHARS: Final = 500

Stats = Mapping[str, int | float | str]


def run_key(name: str) -> str:
    return RUN_KEY_PREFIX + name


def sweep_intervals(settings: Settings) -> dict[str, float]:
    """Each sweep's beat interval in seconds."""
    return {
        RECONCILE_OPEN_ORDERS: settings.sweep_interval_s,
        DEEP_RECONCILE: settings.deep_reconcile_interval_s,
        REPORT_STALE_ORDERS: settings.stale_report_interval_s,
        PURGE_CLOSED_ORDERS: settings.purge_interval_s,
    }


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What Redis holds about one sweep's runs; ``last_ok`` is when a run last succeeded."""

    name: str
    last_started: datetime | None = None
    last_finished: datetime | None = None
    last_run_ok: bool | None = None  # the most recent run's outcome
    last_ok: datetime | None = None
    last_failed: datetime | None = None
    last_error: str | None = None
    runs: int = 0
    failures: int = 0
    last_duration_s: float | None = None
    last_stats: dict[str, int | float | str] = field(default_factory=dict)


def record_run(
    redis: Redis,
    name: str,
    *,
    ok: bool,
    started_at: datetime,
    finished_at: datetime,
    stats: Stats,
    error: str | None = None,
) -> None:
    """Record one finished run (atomically). A failure's text is ``error`` or ``stats["error"]``."""
    _require_aware(started_at, finished_at)
    fields: dict[FieldT, EncodableT] = {
        "last_started": _iso(started_at),
        "last_finished": _iso(finished_at),
        "last_run_ok": "1" if ok else "0",
        "last_duration_s": repr((finished_at - started_at).total_seconds()),
        "last_stats": json.dumps(dict(stats), sort_keys=True, default=str),
    }
    if ok:
        fields["last_ok"] = _iso(finished_at)
    else:
        fields["last_failed"] = _iso(finished_at)
        text = error if error is not None else str(stats.get("error", "failed"))
        fields["last_error"] = text[:ERROR_MAX_CHARS]
    pipe = redis.pipeline(transaction=True)
    pipe.hset(run_key(name), mapping=fields)
    pipe.hincrby(run_key(name), "runs", 1)
    if not ok:
        pipe.hincrby(run_key(name), "failures", 1)
    pipe.sadd(NAMES_KEY, name)
    pipe.execute()
    record.sweep_run(name, ok, (finished_at - started_at).total_seconds())


def last_runs(redis: Redis) -> dict[str, RunInfo]:
    """Every known sweep (the four, and any other name recorded), in a stable order."""
    recorded = sorted(_text(n) for n in redis.smembers(NAMES_KEY))
    names = [*SWEEPS, *(n for n in recorded if n not in SWEEPS)]
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(run_key(name))
    return {name: _run_info(name, raw) for name, raw in zip(names, pipe.execute(), strict=True)}


def _run_info(name: str, raw: Mapping[bytes | str, bytes | str]) -> RunInfo:
    h = {_text(k): _text(v) for k, v in raw.items()}
    ok = h.get("last_run_ok")
    return RunInfo(
        name=name,
        last_started=_time(h.get("last_started")),
        last_finished=_time(h.get("last_finished")),
        last_run_ok=None if ok is None else ok == "1",
        last_ok=_time(h.get("last_ok")),
        last_failed=_time(h.get("last_failed")),
        last_error=h.get("last_error"),
        runs=int(h.get("runs", 0)),
        failures=int(h.get("failures", 0)),
        last_duration_s=float(h["last_duration_s"]) if "last_duration_s" in h else None,
        last_stats=json.loads(h["last_stats"]) if "last_stats" in h else {},
    )


class Deadman(StrEnum):
    """A sweep's dead-man state."""

    OK = "ok"  # succeeded within the limit
    WAITING = "waiting"  # never succeeded; within the limit of when that was first seen
    UNWATCHED = "unwatched"  # never succeeded and no check has seen it yet
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class SweepHealth:
    """One sweep's dead-man verdict; ``since`` is its last success or first-seen-missing."""

    name: str
    state: Deadman
    interval_s: float
    limit_s: float
    since: datetime | None
    silent_s: float | None


def evaluate(
    runs: Mapping[str, RunInfo],
    first_missing: Mapping[str, datetime],
    intervals: Mapping[str, float],
    deadman_intervals: float,
    now: datetime,
) -> dict[str, SweepHealth]:
    """The dead-man verdict for each sweep in ``intervals`` (pure: no Redis)."""
    health = {}
    for name, interval_s in intervals.items():
        limit_s = deadman_intervals * interval_s
        run = runs.get(name)
        since = run.last_ok if run and run.last_ok else first_missing.get(name)
        if since is None:
            health[name] = SweepHealth(name, Deadman.UNWATCHED, interval_s, limit_s, None, None)
            continue
        silent_s = (now - since).total_seconds()
        if now - since > timedelta(seconds=limit_s):
            state = Deadman.DEAD
        else:
            state = Deadman.OK if run and run.last_ok else Deadman.WAITING
        health[name] = SweepHealth(name, state, interval_s, limit_s, since, silent_s)
    return health


def first_missing(redis: Redis) -> dict[str, datetime]:
    """When the checker first saw each never-succeeded sweep."""
    raw = redis.hgetall(FIRST_MISSING_KEY)
    return {_text(k): t for k, v in raw.items() if (t := _time(_text(v))) is not None}


def check_deadman(redis: Redis, settings: Settings, now: datetime) -> list[SweepHealth]:
    """The dead sweeps; first notes ``now`` as first-seen for sweeps that never succeeded,
    so a fresh system is given its full limit before anyone is alarmed."""
    intervals = sweep_intervals(settings)
    runs = last_runs(redis)
    pipe = redis.pipeline(transaction=False)
    for name in intervals:
        if runs[name].last_ok is None:
            pipe.hsetnx(FIRST_MISSING_KEY, name, _iso(now))
        else:
            pipe.hdel(FIRST_MISSING_KEY, name)
    pipe.execute()
    health = evaluate(runs, first_missing(redis), intervals, settings.sweep_deadman_intervals, now)
    return [h for h in health.values() if h.state is Deadman.DEAD]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _require_aware(*times: datetime) -> None:
    if any(t.tzinfo is None or t.utcoffset() is None for t in times):
        raise ValueError(f"naive datetime in {times!r}: sweep runs are recorded in UTC")
