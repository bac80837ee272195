"""``ordersync up``: the whole system on one machine, a demo order flow, the HTTP API and
dashboard with keys to open it, and a live count of orders by state, until Ctrl-C or SIGTERM
stops everything cleanly."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from core.enums import OPEN_STATUSES, OrderStatus
from models.db import make_engine
from models.orders import Order
from ordersync.embedded_redis import EmbeddedRedisError
from ordersync.settings import Settings, get_settings
from ordersync.stack import (
    FLOWER_PORT,
    RATE_LIMIT_PER_MIN,
    Stack,
    StackConfig,
    StackError,
    port_free,
    redact_url,
)

DEMO_TRADER = Path(__file__).with_name("demo_trader.py")
REFRESH_S = 1.0
# Started again when they exit, as a process supervisor would (the exchange is not: it would
# come back empty, and the demo trader's end is the demo's end).
SUPERVISED = frozenset({"worker", "beat", "flower", "exporter", "api", "stream"})
DEMO_KEY_LABEL = "demo"
errors = Console(stderr=True)


def order_counts(engine: Engine) -> dict[str, int]:
    """placed / working / filled / canceled / rejected, from one GROUP BY on status."""
    with engine.connect() as connection:
        rows = connection.execute(select(Order.status, func.count()).group_by(Order.status))
        by_status = {OrderStatus(status): int(count) for status, count in rows}
    return {
        "placed": sum(by_status.values()),
        "working": sum(n for status, n in by_status.items() if status in OPEN_STATUSES),
        "filled": by_status.get(OrderStatus.FILLED, 0),
        "canceled": by_status.get(OrderStatus.CANCELED, 0),
        "rejected": by_status.get(OrderStatus.REJECTED, 0),
    }


def count_line(counts: dict[str, int]) -> str:
    return "orders: " + " | ".join(f"{name} {n}" for name, n in counts.items())


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM, and SIGHUP from a closed terminal, stop the same way Ctrl-C does."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def flower_line(stack: Stack) -> str:
    """Where Flower answers and how to log in: a generated password is shown, once; one from
    FLOWER_BASIC_AUTH never."""
    if stack.flower_url is None or stack.flower_auth is None:
        return "-"
    if not stack.flower_auth_generated:
        return f"{stack.flower_url} (basic auth from FLOWER_BASIC_AUTH)"
    user, password = stack.flower_auth
    return (
        f"{stack.flower_url} (user {user}, password {password}: generated for this run, "
        "a local demo on 127.0.0.1 only; set FLOWER_BASIC_AUTH=user:password to choose)"
    )


def api_port(settings: Settings, option: int | None) -> tuple[int, str | None]:
    """The API's port and, when it differs from the one asked for, why. A port chosen (by
    --api-port or ORDERSYNC_API_PORT) is kept, and refused if taken, as Flower's is; the
    default one (8000, often taken by another local server) gives way to a free one."""
    if option is not None:
        return option, None
    port = settings.api_port
    if "api_port" in settings.model_fields_set or port_free(port):
        return port, None
    return 0, (
        f"port {port} is in use: the API and dashboard take a free port instead "
        "(set ORDERSYNC_API_PORT or --api-port to choose one)"
    )


def api_rows(stack: Stack, demo_key: str | None) -> list[tuple[str, str]]:
    """Where the dashboard and the API answer, and the keys that open them: the demo
    account's key made for this run, and a generated admin key (one from
    ORDERSYNC_API_ADMIN_KEY is never shown). Printed here once, written nowhere."""
    if stack.api_url is None:
        return []
    url = stack.api_url
    rows = [
        ("dashboard", f"{url}/dashboard/ (sign in with a key below)"),
        ("api", f"{url}/api/v1 (reference: {url}/docs)"),
    ]
    if demo_key is not None:
        rows.append((f"api key ({stack.accounts[0]})",
                     f"{demo_key} (this account's orders; made for this run)"))  # fmt: skip
    if stack.api_admin_key_generated:
        rows.append(("admin key", f"{stack.api_admin_key} (every account; generated for this "
                     "run, set ORDERSYNC_API_ADMIN_KEY to choose)"))  # fmt: skip
    else:
        rows.append(("admin key", "from ORDERSYNC_API_ADMIN_KEY"))
    return rows


def print_urls(stack: Stack, *, demo: bool, demo_key: str | None = None) -> None:
    database = make_url(stack.config.database_url).render_as_string(hide_password=True)
    redis_kind = "embedded" if stack.redis is not None else "external"
    rows = [
        *api_rows(stack, demo_key),
        ("paper exchange", stack.exchange_url),
        ("flower", flower_line(stack)),
        ("redis", f"{redact_url(stack.redis_url)} ({redis_kind})"),
        *((f"metrics ({worker})", url) for worker, url in stack.metrics_urls.items()),
        ("metrics (state)", stack.exporter_url or "-"),
        ("task transport", redact_url(stack.broker_url)),
        ("database", database),
        ("logs", str(stack.logs)),
        ("demo trader", "on" if demo else "off"),
    ]
    typer.echo("ordersync is up")
    for name, value in rows:
        typer.echo(f"  {name:<17} {value}")
    typer.echo("Ctrl-C stops everything.", nl=True)
    sys.stdout.flush()


def watch(stack: Stack) -> None:
    """Refresh the count line about once a second until interrupted; warn once if a child
    dies. On a terminal the line rewrites itself; otherwise a line is printed per change."""
    engine = make_engine(stack.config.database_url)
    tty = sys.stdout.isatty()
    last, dead = "", set[str]()
    try:
        while True:
            try:
                line = count_line(order_counts(engine))
            except SQLAlchemyError as exc:
                line = f"orders: database unavailable ({type(exc).__name__})"
            if tty:
                sys.stdout.write(f"\r{line}\033[K")
            elif line != last:
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
            last = line
            for name, exit_code in stack.restart_exited(SUPERVISED):  # a supervisor's job
                message = f"\n{name} exited with {exit_code}; started it again"
                errors.print(message, style="yellow", markup=False, highlight=False)
            for child in stack.children:
                code = child.process.poll()
                if code is not None and child.name not in dead:
                    dead.add(child.name)
                    message = f"\n{child.name} exited with {code}; see {child.log}"
                    errors.print(message, style="red", markup=False, highlight=False)
            time.sleep(REFRESH_S)
    finally:
        if tty:
            sys.stdout.write("\n")
        engine.dispose()
        errors.print("stopping…")


def up_command(
    demo: Annotated[
        bool, typer.Option("--demo/--no-demo", help="Run the demo trading service.")
    ] = True,
    demo_orders_per_s: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="New demo orders per second (an account allows "
            "about one order a second at Alpaca's 200 requests/min).",
        ),
    ] = 0.4,
    workers: Annotated[int, typer.Option(min=1, help="Celery worker concurrency.")] = 4,
    sim_port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Paper exchange port; 0 picks one.")
    ] = None,
    flower_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            help="Flower port on 127.0.0.1; 0 picks one. Flower asks for the basic auth of "
            "FLOWER_BASIC_AUTH (user:password), else for a password generated and printed.",
        ),
    ] = FLOWER_PORT,
    rate_limit_per_min: Annotated[
        int, typer.Option(min=1, help="The demo account's (and exchange's) request budget.")
    ] = RATE_LIMIT_PER_MIN,
    api_port_option: Annotated[
        int | None,
        typer.Option(
            "--api-port",
            min=0,
            max=65535,
            help="HTTP API and dashboard port on 127.0.0.1 (default ORDERSYNC_API_PORT, 8000: "
            "a free one when 8000 is taken); 0 picks one.",
        ),
    ] = None,
) -> None:
    """Start Redis, the paper exchange, worker, beat, Flower, the metrics exporter, the HTTP
    API and dashboard, and a demo trading service."""
    settings = get_settings()
    port, moved = api_port(settings, api_port_option)
    if moved is not None:
        errors.print(moved, style="yellow", markup=False, highlight=False)
    config = StackConfig(
        var_dir=settings.var_dir,
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        broker_url=(
            settings.celery_broker_url.get_secret_value() if settings.celery_broker_url else None
        ),
        sim_port=settings.sim_port if sim_port is None else sim_port,
        flower_port=flower_port,
        rate_limit_per_min=rate_limit_per_min,
        worker_concurrency=workers,
        metrics_port=settings.metrics_port or None,
        exporter=True,
        exporter_port=settings.exporter_port,
        api_port=port,
        stream=True,
    )
    try:
        with stop_signals_interrupt(), Stack(config) as stack:
            demo_key = stack.create_api_key(label=DEMO_KEY_LABEL)
            if demo:
                stack.spawn(
                    "demo-trader",
                    [sys.executable, "-I", str(DEMO_TRADER), "--account", config.account,
                     "--rate", str(demo_orders_per_s), "--sim-url", stack.exchange_url],
                )  # fmt: skip
            print_urls(stack, demo=demo, demo_key=demo_key)
            watch(stack)
    except KeyboardInterrupt:
        errors.print("stopped")
    except (StackError, EmbeddedRedisError) as exc:
        errors.print(f"ordersync up: {exc}", style="red", markup=False, highlight=False)
        raise typer.Exit(1) from exc
