"""``ordersync status``: stale-order counts by class, the sweeps' last runs and their dead-man
state, and the event webhooks' pending and dead deliveries as their last run counted them,
read from Redis (read-only: it never starts a Redis nor writes to one)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import redis
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ordersync.embedded_redis import STATE_FILE, ping
from ordersync.settings import Settings, get_settings
from worker.heartbeat import (
    RunInfo,
    SweepHealth,
    evaluate,
    first_missing,
    last_runs,
    sweep_intervals,
)
from worker.stale import STALE_CLASSES
from worker.stale_report import StoredReport, read_report
from worker.webhooks import COUNTS_KEY

CONNECT_TIMEOUT_S = 3.0


class RedisUnreachable(RuntimeError):
    """No Redis answers where the settings point (the message names where, without secrets)."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"Redis is not reachable at {where}: {why}")
        self.where = where


@dataclass(frozen=True, slots=True)
class Status:
    now: datetime
    stale: StoredReport | None
    runs: dict[str, RunInfo]
    health: dict[str, SweepHealth]
    # Endpoint name -> {"pending", "dead", "at"}: what the endpoint's last delivery run counted.
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)


def redacted(url: str) -> str:
    """The URL with any password replaced (Redis URLs may carry one)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def redis_url_for_status(settings: Settings, override: str | None = None) -> str:
    """The configured URL, else the running embedded server's (never starts one: a fresh,
    empty server would only report that nothing ever ran)."""
    if override or settings.redis_url:
        return override or str(settings.redis_url)
    state = settings.var_dir / STATE_FILE
    try:
        url = str(json.loads(state.read_text())["url"])
    except (OSError, ValueError, KeyError) as error:
        raise RedisUnreachable(
            f"the embedded Redis of {settings.var_dir}",
            "none is running (start `ordersync up`, or set ORDERSYNC_REDIS_URL)",
        ) from error
    if not ping(url):
        raise RedisUnreachable(url, "the embedded server recorded in the var dir is not running")
    return url


def read_status(client: redis.Redis, settings: Settings, now: datetime) -> Status:
    runs = last_runs(client)
    intervals = sweep_intervals(settings)
    health = evaluate(runs, first_missing(client), intervals, settings.sweep_deadman_intervals, now)
    return Status(now, read_report(client), runs, health, _webhook_counts(client))


def _webhook_counts(client: redis.Redis) -> dict[str, dict[str, Any]]:
    counts: dict[str, dict[str, Any]] = {}
    for name, raw in sorted(client.hgetall(COUNTS_KEY).items()):
        try:
            value = json.loads(raw)
        except ValueError:
            continue  # a garbled entry is skipped; the next run rewrites it
        if isinstance(value, dict):
            counts[str(name)] = value
    return counts


def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    redis_url: Annotated[
        str | None, typer.Option(help="Redis URL (default: ORDERSYNC_REDIS_URL or embedded).")
    ] = None,
) -> None:
    """Stale orders by class, the sweeps' last runs, and the dead-man's switch."""
    settings = get_settings()
    try:
        url = redis_url_for_status(settings, redis_url)
        status = _read(url, settings)
    except RedisUnreachable as error:
        Console(stderr=True).print(f"[red]{escape(str(error))}[/red]", highlight=False)
        raise typer.Exit(2) from error
    if as_json:
        typer.echo(json.dumps(to_json(status), indent=2))
    else:
        render(status, Console())


def _read(url: str, settings: Settings) -> Status:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S,
        decode_responses=True,
    )  # fmt: skip
    try:
        return read_status(client, settings, datetime.now(UTC))
    except redis.RedisError as error:
        raise RedisUnreachable(redacted(url), f"{type(error).__name__}: {error}") from error
    finally:
        client.close()


def to_json(status: Status) -> dict[str, Any]:
    stale = status.stale
    return {
        "now": status.now.isoformat(),
        "stale": None
        if stale is None
        else {"at": stale.at.isoformat(), "counts": stale.counts, "order_ids": stale.order_ids},
        "sweeps": {
            name: {
                "last_started": _iso(run.last_started),
                "last_finished": _iso(run.last_finished),
                "last_run_ok": run.last_run_ok,
                "last_ok": _iso(run.last_ok),
                "last_error": run.last_error,
                "runs": run.runs,
                "failures": run.failures,
                "last_duration_s": run.last_duration_s,
                "last_stats": run.last_stats,
                "deadman": _health_json(status.health.get(name)),
            }
            for name, run in status.runs.items()
        },
        "webhooks": status.webhooks,
    }


def _health_json(health: SweepHealth | None) -> dict[str, Any] | None:
    if health is None:
        return None
    return {"state": health.state.value, "interval_s": health.interval_s,
            "limit_s": health.limit_s, "since": _iso(health.since),
            "silent_s": health.silent_s}  # fmt: skip


def render(status: Status, console: Console) -> None:
    console.print(_stale_table(status))
    console.print(_sweeps_table(status))
    if status.webhooks:
        console.print(_webhooks_table(status))


def _stale_table(status: Status) -> Table:
    stale = status.stale
    when = "no report yet" if stale is None else f"reported {_age(stale.at, status.now)} ago"
    table = Table(title=f"Stale orders ({when})")
    table.add_column("class", no_wrap=True)
    table.add_column("count", justify="right")
    table.add_column("order ids (first 3)")
    for name in STALE_CLASSES:
        count = stale.counts.get(name, 0) if stale else 0
        ids = stale.order_ids.get(name, [])[:3] if stale else []
        style = "red" if count else ""
        table.add_row(name, f"[{style}]{count}[/{style}]" if style else str(count), " ".join(ids))
    return table


def _sweeps_table(status: Status) -> Table:
    table = Table(title="Sweeps")
    table.add_column("sweep", no_wrap=True)
    table.add_column("last run")
    table.add_column("last ok", no_wrap=True)
    table.add_column("runs", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("dead-man", no_wrap=True)
    errors = []
    for name, run in status.runs.items():
        last = _ago(run.last_started, status.now)
        if run.last_run_ok is not None:
            last += " [green]ok[/green]" if run.last_run_ok else " [red]failed[/red]"
        if run.last_run_ok is False and run.last_error:
            errors.append(f"{name}: {run.last_error}")
        health = status.health.get(name)
        state = "-" if health is None else health.state.value
        state = "[red]dead[/red]" if state == "dead" else state
        table.add_row(name, last, _ago(run.last_ok, status.now), str(run.runs),
                      str(run.failures), state)  # fmt: skip
    if errors:
        table.caption = escape("last errors: " + "; ".join(errors))
    return table


def _webhooks_table(status: Status) -> Table:
    table = Table(title="Event webhooks")
    table.add_column("endpoint", no_wrap=True)
    table.add_column("pending", justify="right")
    table.add_column("dead", justify="right")
    table.add_column("counted", no_wrap=True)
    for name, counts in status.webhooks.items():
        dead = int(counts.get("dead", 0))
        counted = _ago(_moment(counts.get("at")), status.now)
        table.add_row(escape(name), str(counts.get("pending", 0)),
                      f"[red]{dead}[/red]" if dead else "0", counted)  # fmt: skip
    if any(int(c.get("dead", 0)) for c in status.webhooks.values()):
        table.caption = "dead letters: ordersync events dead; ordersync events replay --all-dead"
    return table


def _moment(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _ago(moment: datetime | None, now: datetime) -> str:
    return "never" if moment is None else f"{_age(moment, now)} ago"


def _age(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
