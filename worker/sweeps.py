"""Running a beat sweep as a singleton: one run at a time (a Redis lock), and at most one
run per interval however many beats send it; every run is recorded for the dead-man check."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from models.orders import Account
from ordersync.metrics import record
from worker.context import WorkerContext
from worker.heartbeat import record_run
from worker.locks import HeldLock
from worker.reconcile import SweepStats, kept_alive

logger = logging.getLogger(__name__)
# A run claims its interval for this fraction of it: two beats ticking at any offset
# still start at most one run per interval.
CLAIM_FRACTION = 0.9


class SweepLockLost(RuntimeError):
    """The run's lock expired or was taken: another run may be going on; this one stops."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"{name}: the sweep lost its lock; the run stops")


def skipped_key(name: str) -> str:
    return f"ordersync:stats:sweep_skipped:{name}"


def executions_key(name: str) -> str:
    return f"ordersync:stats:sweep_executions:{name}"


@dataclass
class SweepRun:
    name: str
    ran: bool
    reason: str = ""
    accounts: list[dict[str, Any]] = field(default_factory=list)

    def totals(self) -> dict[str, int | float | str]:
        totals: dict[str, int | float | str] = {"accounts": len(self.accounts)}
        for summary in self.accounts:
            for key, value in summary.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    current = totals.get(key, 0)
                    assert isinstance(current, int | float)
                    totals[key] = current + value
        yielded = [str(s["yielded"]) for s in self.accounts if s.get("yielded")]
        if yielded:
            totals["yielded"] = "; ".join(yielded)[:500]
        return totals


def active_accounts(ctx: WorkerContext) -> list[str]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Account.id).where(Account.is_active)))


def run_sweep(
    ctx: WorkerContext,
    name: str,
    interval_s: float,
    per_account: Callable[[WorkerContext, str], SweepStats],
    watch: Callable[[str], None] | None = None,
) -> SweepRun:
    """Claim the interval, take the lock, sweep every active account, record the run."""
    claimed = ctx.redis.set(f"ordersync:sweep:claim:{name}", 1, nx=True,
                            px=max(1, int(interval_s * CLAIM_FRACTION * 1000)))  # fmt: skip
    if not claimed:
        ctx.redis.incr(skipped_key(name))
        return SweepRun(name, ran=False, reason="already ran in this interval")
    lock = HeldLock(ctx.redis, f"ordersync:lock:sweep:{name}", ttl_s=max(60.0, 2 * interval_s))
    with lock as held:
        if not held:
            ctx.redis.incr(skipped_key(name))
            record.lock_skip(name)
            return SweepRun(name, ran=False, reason="the previous run is still going")
        ctx.redis.incr(executions_key(name))
        started = ctx.now()
        run = SweepRun(name, ran=True)
        errors: list[str] = []

        def renew() -> None:
            if not lock.renew():
                raise SweepLockLost(name)

        try:
            with kept_alive(renew):
                for account_id in active_accounts(ctx):
                    error = _sweep_account(ctx, name, account_id, per_account, watch, run)
                    if error:
                        errors.append(error)
        except SweepLockLost as lost:  # another run may go on now; this one stops here
            errors.append(str(lost))
            logger.error("%s", lost)
        finally:
            record_run(ctx.redis, name, ok=not errors, started_at=started, finished_at=ctx.now(),
                       stats=run.totals(), error="; ".join(errors)[:500] or None)  # fmt: skip
        logger.info("%s: %s", name, run.totals())
        return run


def _sweep_account(
    ctx: WorkerContext, name: str, account_id: str,
    per_account: Callable[[WorkerContext, str], SweepStats],
    watch: Callable[[str], None] | None, run: SweepRun,
) -> str | None:  # fmt: skip
    """One account; its failure is recorded and logged, and the next account is swept all
    the same. Returns the error, if any."""
    try:
        stats = per_account(ctx, account_id)
        run.accounts.append(stats.summary())
        if watch is not None:
            for order_id in dict.fromkeys(stats.watch):
                watch(order_id)
        _count(ctx, name, stats)
    except SweepLockLost:
        raise
    except Exception as exc:
        logger.exception("%s of account %s failed", name, account_id)
        run.accounts.append({"account_id": account_id, "error": f"{type(exc).__name__}"})
        return f"account {account_id}: {type(exc).__name__}: {exc}"
    return None


def _count(ctx: WorkerContext, name: str, stats: SweepStats) -> None:
    """What the run found for the account, as counters labelled with its name (a failed
    name lookup costs the counts, never the sweep)."""
    try:
        with ctx.sessions() as session:
            account = ctx.account(session, id=stats.account_id).name
    except Exception as error:
        logger.warning("%s: metrics skipped for account %s: %s", name, stats.account_id, error)
        return
    record.reconciled(name, account, {
        "examined": stats.local_orders, "anomaly": stats.misses + stats.malformed,
        "adopted": stats.adopted, "lost": stats.declared_lost,
        "position_mismatch": len(stats.position_mismatches),
    })  # fmt: skip
