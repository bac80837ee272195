"""The stale-order report run by beat: count stale orders by class, keep the counts in Redis
for the metrics endpoint and ``ordersync status``, check the sweeps' dead-man's switch, alert.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from redis import Redis

from worker.alerts import Alert, AlertKind, Webhook, send_alert
from worker.context import WorkerContext
from worker.heartbeat import SweepHealth, check_deadman
from worker.stale import STALE_CLASSES, StaleClass, Thresholds, classify, load_candidates

COUNTS_KEY: Final = "ordersync:stale:counts"  # hash: class -> count
REPORT_KEY: Final = "ordersync:stale:report"  # JSON: at, counts, order_ids (capped)


@dataclass(frozen=True, slots=True)
class StaleReport:
    """One report: the classes, the dead sweeps, and what was alerted (cooldowns applied)."""

    at: datetime
    classes: dict[str, StaleClass]
    dead_sweeps: tuple[SweepHealth, ...]
    alerted: tuple[str, ...]

    @property
    def counts(self) -> dict[str, int]:
        return {name: c.count for name, c in self.classes.items()}

    def stats(self) -> dict[str, int]:
        """Flat figures for the sweep's run record."""
        return {**self.counts, "dead_sweeps": len(self.dead_sweeps), "alerts": len(self.alerted)}


@dataclass(frozen=True, slots=True)
class StoredReport:
    """The last report as kept in Redis."""

    at: datetime
    counts: dict[str, int]
    order_ids: dict[str, list[str]]


def report_stale_orders(ctx: WorkerContext) -> StaleReport:
    """Query, classify, store, check the dead-man's switch, alert (what the beat task calls)."""
    now, limits = ctx.now(), Thresholds.of(ctx.settings)
    with ctx.sessions() as session:
        candidates = load_candidates(session, now, limits)
    classes = classify(candidates, now, limits)
    store_report(ctx.redis, now, classes)
    dead = tuple(check_deadman(ctx.redis, ctx.settings, now))
    alerts = [
        Alert(AlertKind.STALE_ORDERS, c.name, c.count, c.order_ids, now)
        for c in classes.values()
        if c.count
    ] + [_deadman_alert(sweep, now) for sweep in dead]
    webhook = Webhook(ctx.settings.alert_webhook_url)
    alerted = tuple(
        a.name
        for a in alerts
        if send_alert(ctx.redis, ctx.settings, a, webhook=webhook) is not None
    )
    return StaleReport(now, classes, dead, alerted)


def _deadman_alert(sweep: SweepHealth, now: datetime) -> Alert:
    silent_s = sweep.silent_s or 0.0
    since = sweep.since.astimezone(UTC).isoformat() if sweep.since else "never"
    detail = (
        f"sweep {sweep.name} has not succeeded for {silent_s:.0f} s (since {since}); "
        f"limit {sweep.limit_s:.0f} s"
    )
    return Alert(AlertKind.SWEEP_DEADMAN, sweep.name, int(silent_s // sweep.interval_s), (),
                 now, detail)  # fmt: skip


def store_report(redis: Redis, at: datetime, classes: Mapping[str, StaleClass]) -> None:
    """Replace the stored counts and ids in one transaction."""
    document = {
        "at": at.astimezone(UTC).isoformat(),
        "counts": {name: c.count for name, c in classes.items()},
        "order_ids": {name: list(c.order_ids) for name, c in classes.items()},
    }
    pipe = redis.pipeline(transaction=True)
    pipe.delete(COUNTS_KEY)
    pipe.hset(COUNTS_KEY, mapping={name: c.count for name, c in classes.items()})
    pipe.set(REPORT_KEY, json.dumps(document))
    pipe.execute()


def read_report(redis: Redis) -> StoredReport | None:
    """The last stored report, or None before the first one."""
    raw = redis.get(REPORT_KEY)
    if raw is None:
        return None
    document = json.loads(raw)
    counts = {name: int(document["counts"].get(name, 0)) for name in STALE_CLASSES}
    order_ids = {name: list(document["order_ids"].get(name, [])) for name in STALE_CLASSES}
    return StoredReport(datetime.fromisoformat(document["at"]), counts, order_ids)
