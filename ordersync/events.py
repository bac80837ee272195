"""``ordersync events``: the webhook dead letters, and putting them back to be delivered.

A dead-lettered delivery is one that failed ``ORDERSYNC_EVENT_WEBHOOK_MAX_ATTEMPTS`` times;
replay makes it pending again with its attempts reset, and the next delivery run sends it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from models.db import make_engine
from models.outbox import OutboxEvent
from models.webhooks import DeliveryStatus, WebhookDelivery
from ordersync.settings import get_settings

Source = Engine | Session


@dataclass(frozen=True, slots=True)
class DeadLetter:
    endpoint: str
    event_id: str
    kind: str
    order_id: str | None
    attempts: int
    last_error: str | None
    last_attempt_at: datetime | None
    created_at: datetime  # of the event


@dataclass(frozen=True, slots=True)
class Replayed:
    deliveries: int
    not_dead: tuple[str, ...]  # event ids asked for that have no dead delivery (in scope)


@contextmanager
def _session(source: Source) -> Iterator[Session]:
    if isinstance(source, Session):
        yield source
        return
    with Session(source) as session, session.begin():
        yield session


def dead_letters(
    source: Source, *, endpoint: str | None = None, limit: int | None = None
) -> list[DeadLetter]:
    """Dead-lettered deliveries, oldest event first."""
    query = (
        select(WebhookDelivery.endpoint, OutboxEvent.event_id, OutboxEvent.kind,
               OutboxEvent.order_id, WebhookDelivery.attempts, WebhookDelivery.last_error,
               WebhookDelivery.last_attempt_at, OutboxEvent.created_at)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.outbox_id)
        .where(WebhookDelivery.status == DeliveryStatus.DEAD)
        .order_by(WebhookDelivery.outbox_id, WebhookDelivery.endpoint)
        .limit(limit)
    )  # fmt: skip
    if endpoint is not None:
        query = query.where(WebhookDelivery.endpoint == endpoint)
    with _session(source) as session:
        return [DeadLetter(*row) for row in session.execute(query)]


def replay(
    source: Source, *, event_ids: Collection[str] = (), all_dead: bool = False,
    endpoint: str | None = None, now: datetime | None = None,
) -> Replayed:  # fmt: skip
    """Put dead deliveries back to pending, attempts reset, due at once: those of
    ``event_ids``, or all with ``all_dead``; only ``endpoint``'s when given."""
    if not event_ids and not all_dead:
        raise ValueError("name the events to replay, or ask for all dead ones")
    now = now or datetime.now(UTC)
    dead = (
        select(WebhookDelivery.id, OutboxEvent.event_id)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.outbox_id)
        .where(WebhookDelivery.status == DeliveryStatus.DEAD)
    )
    if endpoint is not None:
        dead = dead.where(WebhookDelivery.endpoint == endpoint)
    if event_ids:
        dead = dead.where(OutboxEvent.event_id.in_(list(event_ids)))
    with _session(source) as session:
        found = session.execute(dead).all()
        ids = [delivery_id for delivery_id, _ in found]
        for start in range(0, len(ids), 500):  # bounded IN lists
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids[start : start + 500]),
                       WebhookDelivery.status == DeliveryStatus.DEAD)
                .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now)
            )  # fmt: skip
    replayed = {event_id for _, event_id in found}
    return Replayed(len(ids), tuple(e for e in event_ids if e not in replayed))


def delivery_counts(source: Source) -> dict[str, dict[str, int]]:
    """Deliveries by endpoint and status."""
    query = select(WebhookDelivery.endpoint, WebhookDelivery.status, func.count()).group_by(
        WebhookDelivery.endpoint, WebhookDelivery.status
    )
    counts: dict[str, dict[str, int]] = {}
    with _session(source) as session:
        for endpoint, status, count in session.execute(query):
            counts.setdefault(endpoint, {})[str(status)] = int(count)
    return counts


# --- the commands ---------------------------------------------------------------------------

events_app = typer.Typer(no_args_is_help=True, help="Event webhooks: dead letters and replay.")
_ENDPOINT_HELP = "Only this endpoint (its name in ORDERSYNC_EVENT_WEBHOOK_URLS)."


def _fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True).print(f"[red]{escape(message)}[/red]", highlight=False)
    return typer.Exit(code)


def _engine() -> Engine:
    return make_engine(get_settings().database_url)


def _unreadable(error: OperationalError | ProgrammingError) -> typer.Exit:
    first = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else error
    return _fail(f"cannot read the database ({first}): is it migrated (ordersync db upgrade)?")


@events_app.command("dead")
def dead_command(
    endpoint: Annotated[str | None, typer.Option(help=_ENDPOINT_HELP)] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List dead-lettered webhook deliveries (failed every attempt)."""
    engine = _engine()
    try:
        rows = dead_letters(engine, endpoint=endpoint, limit=limit)
        counts = delivery_counts(engine)
    # SQLite says a table is missing with OperationalError, PostgreSQL with ProgrammingError.
    except (OperationalError, ProgrammingError) as error:
        raise _unreadable(error) from error
    finally:
        engine.dispose()
    total = sum(c.get(DeliveryStatus.DEAD.value, 0) for name, c in counts.items()
                if endpoint is None or name == endpoint)  # fmt: skip
    if as_json:
        document = {"total": total, "dead": [_plain(asdict(r)) for r in rows]}
        typer.echo(json.dumps(document, indent=2))
        return
    table = Table(title="Dead-lettered webhook deliveries")
    for name in ("endpoint", "event id", "kind", "order id"):
        table.add_column(name, no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("last error")
    table.add_column("last attempt (UTC)", no_wrap=True)
    for r in rows:
        table.add_row(escape(r.endpoint), r.event_id, r.kind, r.order_id or "-", str(r.attempts),
                      escape(r.last_error or "-"), _when(r.last_attempt_at))  # fmt: skip
    if not rows:
        table.caption = "none"
    else:
        shown = f"{len(rows)} of {total}" if total > len(rows) else f"{total}"
        table.caption = f"{shown}; replay: ordersync events replay --all-dead (or --event-id ID)"
    Console().print(table)


@events_app.command("replay")
def replay_command(
    event_id: Annotated[
        list[str] | None, typer.Option("--event-id", help="An event to replay (repeatable).")
    ] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead delivery.")] = False,
    endpoint: Annotated[str | None, typer.Option(help=_ENDPOINT_HELP)] = None,
) -> None:
    """Put dead-lettered deliveries back to pending, attempts reset; the next run sends them."""
    if not event_id and not all_dead:
        raise _fail("say what to replay: --event-id ID (repeatable) or --all-dead")
    engine = _engine()
    try:
        result = replay(engine, event_ids=event_id or (), all_dead=all_dead, endpoint=endpoint)
    # SQLite says a table is missing with OperationalError, PostgreSQL with ProgrammingError.
    except (OperationalError, ProgrammingError) as error:
        raise _unreadable(error) from error
    finally:
        engine.dispose()
    typer.echo(f"replayed {result.deliveries} deliver{'y' if result.deliveries == 1 else 'ies'}")
    if result.not_dead:
        raise _fail("no dead delivery for: " + ", ".join(result.not_dead), code=1)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")
