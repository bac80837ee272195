"""``ordersync tasks``: poison tasks RabbitMQ dead-lettered, and sending them back to work.

A work task that failed on every delivery (or whose worker died on each) waits in the
queue ``ordersync.dead``; ``dead`` lists it without taking it out, ``replay`` moves it back
to the queue it died in (worker/dead_letters.py). On Redis there is no such queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ordersync.redis_url import resolve_broker_url
from ordersync.settings import get_settings
from worker.dead_letters import (
    DeadLettersUnavailable,
    NotRabbitMQ,
    count_dead,
    list_dead,
    replay_ids,
)

tasks_app = typer.Typer(no_args_is_help=True, help="Celery tasks: the dead-letter queue, replay.")


def _fail(error: DeadLettersUnavailable | str, code: int = 2) -> typer.Exit:
    Console(stderr=True).print(f"[red]{escape(str(error))}[/red]", highlight=False)
    return typer.Exit(code)


@contextmanager
def _said_in_one_line() -> Iterator[None]:
    """A failure becomes one line, never a traceback: its locals would show the broker
    URL, password and all."""
    try:
        yield
    except DeadLettersUnavailable as error:
        raise _fail(error) from None
    except Exception as error:
        raise _fail(f"{type(error).__name__}: {error}") from None


def _broker_url() -> str:
    """RabbitMQ's URL; on Redis nothing is resolved (that could start an embedded server)."""
    settings = get_settings()
    if not settings.transport_is_amqp():
        raise _fail(NotRabbitMQ())
    return resolve_broker_url(settings)


@tasks_app.command("dead")
def dead_command(
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List dead-lettered tasks (left in the queue): id, task, the queue it died in, why."""
    url = _broker_url()
    with _said_in_one_line():
        rows = list_dead(url, limit)
        total = max(count_dead(url), len(rows))
    if as_json:
        dead = [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(r).items()}
                for r in rows]  # fmt: skip
        typer.echo(json.dumps({"total": total, "dead": dead}, indent=2))
        return
    table = Table(title="Dead-lettered tasks (ordersync.dead)")
    for name in ("task id", "task", "queue", "reason"):
        table.add_column(name, no_wrap=True)
    table.add_column("deaths", justify="right")
    table.add_column("died at (UTC)", no_wrap=True)
    table.add_column("args")
    for r in rows:
        arguments = ", ".join(a for a in (r.args, r.kwargs) if a and a not in ("()", "{}"))
        table.add_row(r.task_id or "-", escape(r.task or "-"), escape(r.queue or "-"),
                      escape(r.reason or "-"), str(r.deaths),
                      r.died_at.strftime("%Y-%m-%d %H:%M:%S") if r.died_at else "-",
                      escape(arguments or "-"))  # fmt: skip
    if not rows:
        table.caption = "none"
    else:
        shown = f"{len(rows)} of {total}" if total > len(rows) else f"{total}"
        table.caption = f"{shown}; replay: ordersync tasks replay --all (or TASK_ID ...)"
    Console().print(table)


@tasks_app.command("replay")
def replay_command(
    task_ids: Annotated[
        list[str] | None, typer.Argument(help="Task ids to replay (see `tasks dead`).")
    ] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every dead-lettered task.")] = False,
) -> None:
    """Move dead-lettered tasks back to the queue each died in (confirmed before removed)."""
    if bool(task_ids) == replay_all:
        raise _fail("say what to replay: TASK_ID ... or --all (not both)")
    url = _broker_url()
    with _said_in_one_line():
        replayed = replay_ids(url, None if replay_all else set(task_ids or ()))
    typer.echo(f"replayed {len(replayed)} task{'' if len(replayed) == 1 else 's'}")
    missing = [t for t in task_ids or () if t not in replayed]
    if missing:
        raise _fail("not in the dead-letter queue: " + ", ".join(missing), code=1)
