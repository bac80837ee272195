"""The ``ordersync`` command line: everything that is not a Celery command."""

from __future__ import annotations

import contextlib
import signal
import threading

import typer
from rich.console import Console

from api.serve import api_command
from brokers.paper.cli import sim_command
from models import migrate
from ordersync.accounts_cli import accounts_app
from ordersync.bench import bench_command
from ordersync.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from ordersync.events import events_app
from ordersync.metrics.exporter import exporter_command
from ordersync.positions import positions_command
from ordersync.settings import get_settings
from ordersync.status import status_command
from ordersync.stream_cli import stream_command
from ordersync.tasks_cli import tasks_app
from ordersync.up import up_command

console = Console(stderr=True)
# No local variables in tracebacks: they would show database and broker URLs, passwords and all.
app = typer.Typer(
    no_args_is_help=True,
    help="ordersync: keeps the record of every order true.",
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic migrations).")
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(events_app, name="events")
app.add_typer(tasks_app, name="tasks")
app.command("sim", help="Serve the paper exchange (Alpaca Trading API v2).")(sim_command)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create or migrate the schema at ORDERSYNC_DATABASE_URL."""
    url = get_settings().database_url
    migrate.upgrade(url, revision)
    console.print(f"[green]database at revision {revision}[/green]")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base.")) -> None:
    """Step the schema back (destroys data in dropped tables)."""
    migrate.downgrade(get_settings().database_url, revision)


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the configured database."""
    migrate.current(get_settings().database_url)


@app.command("redis")
def redis_command() -> None:
    """Run the embedded Redis server in the foreground and print its URL."""
    settings = get_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with EmbeddedRedis(settings.var_dir / "redis") as server:
            typer.echo(server.url)
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
    except EmbeddedRedisError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


app.command("up")(up_command)
app.command("bench")(bench_command)
app.command("status")(status_command)
app.command("positions")(positions_command)
app.command("exporter")(exporter_command)
app.command("api")(api_command)
app.command("stream")(stream_command)

if __name__ == "__main__":
    app()
