"""``ordersync status``: one screen of the system's live state: workers online, queue depths,
orders by account and status, each account's request budget, fill detection latency, the
outbox backlog, stale-order counts, the sweeps' last runs and dead-man state, and the event
webhooks' counts. ``--watch`` refreshes it.

Read-only: it never starts a Redis, never writes to Redis, and reads the database through a
read-only connection. Without Redis there is no status (exit 2); the database and the task
transport each only blank their own sections, saying why.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from models.db import make_engine, normalize_url
from ordersync.embedded_redis import STATE_FILE, ping
from ordersync.metrics.readings import (
    BudgetReading,
    LatencySummary,
    budgets,
    detection_latency,
    fill_gaps_open,
    orders_by_status,
    outbox_backlog,
    queue_depths,
    stream_health,
    sweeps,
    webhook_counts,
    workers_online,
    workers_seen,
)
from ordersync.settings import Settings, get_settings
from worker.heartbeat import RunInfo, SweepHealth
from worker.stale import STALE_CLASSES
from worker.stale_report import StoredReport, read_report
from worker.topology import DEAD_QUEUE

CONNECT_TIMEOUT_S = 3.0
# Workers seen within this long and no longer online are listed as offline.
OFFLINE_SHOWN_S: Final = 86_400.0
# The sections read from the database or the task transport, which may be missing alone.
DATABASE_SECTIONS: Final = ("orders", "budgets", "latency", "outbox", "streams")
QUEUES: Final = "queues"

T = TypeVar("T")


def pause(seconds: float) -> None:
    """Between two screens of --watch (its own name: a test replaces it, not time.sleep)."""
    time.sleep(seconds)


class RedisUnreachable(RuntimeError):
    """No Redis answers where the settings point (the message names where, without secrets)."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"Redis is not reachable at {where}: {why}")
        self.where = where


class DatabaseMissing(RuntimeError):
    """The configured SQLite file does not exist (status never creates one)."""


@dataclass(frozen=True, slots=True)
class Status:
    now: datetime
    stale: StoredReport | None
    runs: dict[str, RunInfo]
    health: dict[str, SweepHealth]
    # Endpoint name -> {"pending", "dead", "at"}: what the endpoint's last delivery run counted.
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    workers_online: list[str] = field(default_factory=list)
    workers_seen: dict[str, datetime] = field(default_factory=dict)  # name -> last seen
    # The sections below are None when not read; ``errors`` says why, by section name.
    queues: dict[str, int | None] | None = None
    orders: dict[tuple[str, str], int] | None = None
    fill_gaps: dict[str, int] | None = None
    budgets: list[BudgetReading] | None = None
    latency: LatencySummary | None = None
    outbox: tuple[int, float | None] | None = None
    streams: dict[str, bool] | None = None  # account -> its broker stream healthy now
    errors: dict[str, str] = field(default_factory=dict)


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
    """What Redis holds: the stale report, the sweeps, the webhooks' counts, the workers."""
    runs, health = sweeps(client, settings, now)
    return Status(
        now, read_report(client), runs, health, webhook_counts(client),
        workers_online(client, now),
        workers_seen(client, now - timedelta(seconds=OFFLINE_SHOWN_S)),
    )  # fmt: skip


def open_database(url: str) -> Engine:
    """An engine that cannot write: SQLite's ``query_only`` on an existing file (a missing
    one is ``DatabaseMissing``, never created), PostgreSQL's read-only transactions."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:") or not Path(path).is_file():
            raise DatabaseMissing(f"no SQLite database at {path or '(memory)'}")
        engine = create_engine(url, connect_args={"timeout": CONNECT_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_query_only)
        return engine
    options: dict[str, Any] = {"connect_timeout": int(CONNECT_TIMEOUT_S)}
    if parsed.get_backend_name() == "postgresql":
        options["options"] = "-c default_transaction_read_only=on"
    return make_engine(url, connect_args=options, pool_size=1, max_overflow=1)


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


class StatusReader:
    """What ``ordersync status`` reads, its connections kept from one refresh to the next."""

    def __init__(self, redis_url: str, settings: Settings) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.client = redis.Redis.from_url(
            redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=CONNECT_TIMEOUT_S, decode_responses=True,
        )  # fmt: skip
        broker = settings.celery_broker_url
        self.broker_url = redis_url if broker is None else broker.get_secret_value()
        self.amqp = settings.transport_is_amqp()
        self._engine: Engine | None = None

    def read(self, now: datetime) -> Status:
        try:
            status = read_status(self.client, self.settings, now)
        except redis.RedisError as error:
            where = redacted(self.redis_url)
            raise RedisUnreachable(where, f"{type(error).__name__}: {error}") from error
        errors: dict[str, str] = {}
        queues = _section(
            errors, QUEUES, lambda: queue_depths(self.amqp, self.broker_url),
            source="task transport", catch=(Exception,),  # kombu's errors have no common base
        )  # fmt: skip
        return replace(status, queues=queues, errors=errors, **self._from_database(now, errors))

    def _from_database(self, now: datetime, errors: dict[str, str]) -> dict[str, Any]:
        try:
            self._engine = self._engine or open_database(self.settings.database_url)
            session = Session(self._engine)
        except (DatabaseMissing, SQLAlchemyError) as error:
            errors.update(dict.fromkeys(DATABASE_SECTIONS, _unavailable("database", error)))
            return {}
        with session:
            try:
                session.connection()
            except SQLAlchemyError as error:  # no use asking four times
                errors.update(dict.fromkeys(DATABASE_SECTIONS, _unavailable("database", error)))
                return {}
            settings, window_s = self.settings, self.settings.status_latency_window_s

            def read(section: str, reading: Callable[[], T]) -> T | None:
                return _section(errors, section, reading, source="database",
                                catch=(SQLAlchemyError,), session=session)  # fmt: skip

            orders = read("orders", lambda: (orders_by_status(session), fill_gaps_open(session)))
            return {
                "orders": None if orders is None else orders[0],
                "fill_gaps": None if orders is None else orders[1],
                "budgets": read("budgets", lambda: budgets(session, self.client, settings, now)),
                "latency": read("latency", lambda: detection_latency(session, now, window_s)),
                "outbox": read("outbox", lambda: outbox_backlog(session, now)),
                "streams": read("streams", lambda: stream_health(session, self.client)),
            }

    def close(self) -> None:
        self.client.close()
        if self._engine is not None:
            self._engine.dispose()


def _section(
    errors: dict[str, str], section: str, reading: Callable[[], T], *, source: str,
    catch: tuple[type[Exception], ...], session: Session | None = None,
) -> T | None:  # fmt: skip
    """The reading, or None with the reason in ``errors`` under ``section``. A failed query's
    transaction is rolled back, so the next section can still read."""
    try:
        return reading()
    except catch as error:
        if session is not None:
            with contextlib.suppress(SQLAlchemyError):
                session.rollback()
        errors[section] = _unavailable(source, error)
    except redis.RedisError as error:
        errors[section] = _unavailable("Redis", error)
    return None


def _unavailable(source: str, error: BaseException) -> str:
    """``<source> unavailable: <error type>: <the first line of its message>``."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    detail = f": {lines[0][:200]}" if lines else ""
    return f"{source} unavailable: {type(error).__name__}{detail}"


# --- the command -----------------------------------------------------------------------------


def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    redis_url: Annotated[
        str | None, typer.Option(help="Redis URL (default: ORDERSYNC_REDIS_URL or embedded).")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Refresh until Ctrl-C (with --json: a line each).")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between refreshes with --watch.")
    ] = 2.0,
    count: Annotated[int, typer.Option(min=0, hidden=True, help="Stop after N screens.")] = 0,
) -> None:
    """Workers, queues, orders, budgets, fill latency, outbox, stale orders, sweeps, webhooks."""
    settings = get_settings()
    try:
        reader = StatusReader(redis_url_for_status(settings, redis_url), settings)
    except RedisUnreachable as error:
        _exit_unreachable(error)
    try:
        status = reader.read(datetime.now(UTC))  # no Redis at the start: exit 2
        if watch:
            _watch(reader, status, as_json=as_json, interval_s=interval, count=count)
        elif as_json:
            typer.echo(json.dumps(to_json(status), indent=2))
        else:
            render(status, Console())
    except RedisUnreachable as error:
        _exit_unreachable(error)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()


def _exit_unreachable(error: RedisUnreachable) -> NoReturn:
    Console(stderr=True).print(f"[red]{escape(str(error))}[/red]", highlight=False)
    raise typer.Exit(2) from error


def _watch(reader: StatusReader, first: Status, *, as_json: bool, interval_s: float,
           count: int) -> None:  # fmt: skip
    """Show ``first``, then a fresh reading every ``interval_s`` until Ctrl-C (or ``count``
    screens). In place on a terminal; otherwise one screen (or JSON line) after another.
    Redis going away meanwhile is shown, and the next refresh tries again."""
    console = Console()

    def frames() -> Iterator[Status | RedisUnreachable]:
        yield first
        for _ in range(count - 1) if count else itertools.count():
            pause(interval_s)
            try:
                yield reader.read(datetime.now(UTC))
            except RedisUnreachable as error:
                yield error

    if as_json:
        for frame in frames():
            document = to_json(frame) if isinstance(frame, Status) else {"error": str(frame)}
            typer.echo(json.dumps(document))
        return
    if not console.is_terminal:
        for frame in frames():
            console.print(_frame(frame))
        return
    screens = frames()
    with Live(_frame(next(screens)), console=console, auto_refresh=False) as live:
        for frame in screens:
            live.update(_frame(frame), refresh=True)


def _frame(frame: Status | RedisUnreachable) -> RenderableType:
    if isinstance(frame, Status):
        return screen(frame)
    return Text(f"{frame} (trying again)", style="red")


# --- JSON ------------------------------------------------------------------------------------


def to_json(status: Status) -> dict[str, Any]:
    stale = status.stale
    return {
        "now": status.now.isoformat(),
        "workers": {
            "online": status.workers_online,
            "last_seen": {name: seen.isoformat() for name, seen in status.workers_seen.items()},
        },
        "queues": status.queues,
        "orders": None if status.orders is None else _orders_json(status),
        "budgets": None if status.budgets is None else [asdict(b) for b in status.budgets],
        "streams": status.streams,
        "detection_latency": None if status.latency is None else asdict(status.latency),
        "outbox": None if status.outbox is None
        else {"waiting": status.outbox[0], "oldest_age_s": status.outbox[1]},
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
        "errors": status.errors,
    }  # fmt: skip


def _orders_json(status: Status) -> dict[str, Any]:
    by_account: dict[str, dict[str, int]] = {}
    for (account, order_status), n in sorted((status.orders or {}).items()):
        by_account.setdefault(account, {})[order_status] = n
    return {"by_account": by_account, "fill_gaps": status.fill_gaps or {}}


def _health_json(health: SweepHealth | None) -> dict[str, Any] | None:
    if health is None:
        return None
    return {"state": health.state.value, "interval_s": health.interval_s,
            "limit_s": health.limit_s, "since": _iso(health.since),
            "silent_s": health.silent_s}  # fmt: skip


# --- the screen ------------------------------------------------------------------------------


def render(status: Status, console: Console) -> None:
    console.print(screen(status))


def screen(status: Status) -> Group:
    """The whole screen; a section not read is left out, one that failed says why."""
    parts: list[RenderableType | None] = [
        Text(f"ordersync status at {status.now:%Y-%m-%d %H:%M:%S} UTC", style="bold"),
        _overview_table(status),
        _section_or_error(status, "orders", "Orders", status.orders, _orders_table),
        _section_or_error(status, "budgets", "Request budget", status.budgets, _budgets_table),
        _section_or_error(status, "streams", "Broker streams", status.streams, _streams_line),
        _stale_table(status),
        _sweeps_table(status),
        _webhooks_table(status) if status.webhooks else None,
    ]
    return Group(*(part for part in parts if part is not None))


def _section_or_error(
    status: Status, section: str, title: str, value: object,
    table: Callable[[Status], RenderableType],
) -> RenderableType | None:  # fmt: skip
    if section in status.errors:
        return Text(f"{title}: {status.errors[section]}", style="red")
    return None if value is None else table(status)


def _overview_table(status: Status) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("workers", _workers_text(status))
    rows: list[tuple[str, str, Any, Callable[[Any], Text]]] = [
        ("queues", QUEUES, status.queues, _queues_text),
        ("fill detection", "latency", status.latency, _latency_text),
        ("outbox", "outbox", status.outbox, _outbox_text),
    ]
    for label, section, value, text in rows:
        if section in status.errors:
            table.add_row(label, Text(status.errors[section], style="red"))
        elif value is not None:
            table.add_row(label, text(value))
    return table


def _workers_text(status: Status) -> Text:
    online = status.workers_online
    text = Text(f"{len(online)} online", style="" if online else "red")
    if online:
        text.append(": " + ", ".join(online))
    offline = [(n, seen) for n, seen in status.workers_seen.items() if n not in online]
    if offline:
        text.append("; offline: ", style="yellow")
        text.append(", ".join(f"{n} (last seen {_ago(seen, status.now)})" for n, seen in offline))
    return text


def _queues_text(queues: dict[str, int | None]) -> Text:
    text = Text()
    for index, (name, depth) in enumerate(queues.items()):
        text.append(f"{' · ' if index else ''}{name} ")
        style = "red" if depth and name == DEAD_QUEUE else ""
        text.append("not declared" if depth is None else str(depth), style=style)
    return text


def _latency_text(latency: LatencySummary) -> Text:
    window = _span(latency.window_s)
    if not latency.count:
        return Text(f"no fills recorded in the last {window}")
    figures = [("p50", latency.p50_s), ("p90", latency.p90_s), ("p99", latency.p99_s),
               ("max", latency.max_s)]  # fmt: skip
    shown = " · ".join(f"{name} {_seconds(value)}" for name, value in figures)
    fills = "fill" if latency.count == 1 else "fills"
    return Text(f"{latency.count} {fills} recorded in the last {window}: {shown}")


def _outbox_text(outbox: tuple[int, float | None]) -> Text:
    waiting, age_s = outbox
    if not waiting:
        return Text("no events waiting")
    oldest = "" if age_s is None else f", the oldest for {_span(age_s)}"
    return Text(f"{waiting} events waiting{oldest}", style="yellow")


def _orders_table(status: Status) -> RenderableType:
    orders, gaps = status.orders or {}, status.fill_gaps or {}
    accounts = sorted({account for account, _ in orders} | set(gaps))
    if not accounts:
        return Text("Orders: no accounts yet")
    present = {order_status for _, order_status in orders}
    statuses = [s.value for s in OrderStatus if s.value in present]
    table = Table(title="Orders by account and status")
    table.add_column("account", no_wrap=True)
    for name in statuses:
        table.add_column(name.lower(), justify="right")
    table.add_column("total", justify="right")
    table.add_column("fill gaps", justify="right")
    for account in accounts:
        counts = [orders.get((account, name), 0) for name in statuses]
        table.add_row(escape(account), *map(str, counts), str(sum(counts)),
                      _red_if(gaps.get(account, 0)))  # fmt: skip
    return table


def _budgets_table(status: Status) -> RenderableType:
    if not status.budgets:
        return Text("Request budget: no active accounts")
    table = Table(title="Request budget per account")
    table.add_column("account", no_wrap=True)
    table.add_column("tokens", justify="right")
    table.add_column("granted", justify="right")
    table.add_column("waited", justify="right")
    table.add_column("wait", justify="right")
    table.add_column("exhausted", justify="right")
    table.add_column("429s", justify="right")
    for b in status.budgets or []:
        tokens = f"{b.tokens:.1f} / {b.capacity}"
        table.add_row(
            escape(b.account), f"[yellow]{tokens}[/yellow]" if b.tokens < 1 else tokens,
            str(b.granted), str(b.waited), _seconds(b.wait_s), _red_if(b.exhausted),
            _red_if(b.throttled_429),
        )  # fmt: skip
    return table


def _streams_line(status: Status) -> RenderableType:
    """One line: each account's stream, healthy or down (its monitors then poll)."""
    if not status.streams:
        return Text("Broker streams: no account streams")
    states = [f"{escape(name)} {'[green]healthy[/green]' if up else '[red]down[/red]'}"
              for name, up in sorted(status.streams.items())]  # fmt: skip
    return Text.from_markup("Broker streams: " + " · ".join(states))


def _red_if(count: int) -> str:
    return f"[red]{count}[/red]" if count else "0"


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
    return _span((now - moment).total_seconds())


def _span(seconds_f: float) -> str:
    seconds = max(0, int(seconds_f))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
