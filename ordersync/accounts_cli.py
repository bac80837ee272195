"""``ordersync accounts``: add, inspect, disable and enable accounts, and manage their API keys.

Broker credentials never pass through here: an account stores only the prefix of the
environment variables its adapter reads. The one secret printed is a new API key, once, on
stdout alone, so ``KEY=$(ordersync accounts keys create NAME)`` captures exactly the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from brokers.registry import CredentialsMissing, credentials, default_rate_limit_per_min
from core.enums import BrokerKind, OrderStatus
from models.accounts import UnknownAccount, ensure_account, get_account
from models.api_keys import (
    LABEL_MAX,
    ApiKey,
    KeyView,
    UnknownApiKey,
    create_key,
    list_keys,
    revoke_key,
)
from models.db import make_engine
from models.orders import Account
from ordersync.queries import counts_by_status
from ordersync.settings import get_settings
from worker.context import ACCOUNT_CACHE_TTL_S

NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
PREFIX_PATTERN = re.compile(r"[A-Z_][A-Z0-9_]*")
PREFIX_MAX = 128  # accounts.credentials_env
BASE_URL_MAX = 255  # accounts.base_url
RATE_LIMIT_MAX = 1_000_000  # far above any broker's; keeps the value inside an INTEGER


@dataclass(frozen=True, slots=True)
class AccountView:
    """One account as an operator sees it; ``live_keys`` counts its unrevoked API keys."""

    name: str
    broker: BrokerKind
    base_url: str
    credentials_env: str
    rate_limit_per_min: int
    is_active: bool
    created_at: datetime
    live_keys: int


def account_views(session: Session, name: str | None = None) -> list[AccountView]:
    """Every account (or the one named), by name, with its live key count, in one query."""
    live = (
        select(ApiKey.account_id, func.count().label("live"))
        .where(ApiKey.revoked_at.is_(None))
        .group_by(ApiKey.account_id)
        .subquery()
    )
    query = (
        select(Account, func.coalesce(live.c.live, 0))
        .outerjoin(live, live.c.account_id == Account.id)
        .order_by(Account.name)
    )
    if name is not None:
        query = query.where(Account.name == name)
    return [
        AccountView(a.name, a.broker, a.base_url, a.credentials_env, a.rate_limit_per_min,
                    a.is_active, a.created_at, int(live_keys))
        for a, live_keys in session.execute(query)
    ]  # fmt: skip


def credential_variables(prefix: str) -> tuple[str, str]:
    """The variables ``brokers.registry.credentials`` reads for ``prefix`` (a test holds the
    two to the same names), to tell operators what to set."""
    return f"{prefix}_KEY_ID", f"{prefix}_SECRET_KEY"


def missing_credentials(account: str, prefix: str) -> list[str]:
    """Which of the account's variables this environment lacks, asked of the registry itself
    so the answer matches what a worker would refuse; values are never returned."""
    try:
        credentials(account, prefix)
    except CredentialsMissing as error:
        return list(error.variables)
    return []


# --- validation (exit 2, nothing written) -------------------------------------------------


def _valid_name(value: str) -> str:
    """Names appear in task arguments, URLs and metric labels: keep them plain."""
    if not NAME_PATTERN.fullmatch(value):
        raise typer.BadParameter("1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
    return value


def _valid_base_url(value: str) -> str:
    """An http(s) URL with a host; never echoed, as a mistaken one might hold a password."""
    try:
        parts = urlsplit(value)
        bad_port = parts.port == 0  # urllib raises for a port that is not 0..65535
    except ValueError:
        raise typer.BadParameter("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or bad_port:
        raise typer.BadParameter(
            "an http:// or https:// URL with a host, e.g. https://paper-api.alpaca.markets"
        )
    if parts.username is not None or parts.password is not None:
        raise typer.BadParameter(
            "no credentials in the URL: they stay in the environment (see --credentials-env)"
        )
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise typer.BadParameter("a base URL has no query or fragment")
    if len(value) > BASE_URL_MAX or any(c.isspace() or not c.isprintable() for c in value):
        raise typer.BadParameter(f"at most {BASE_URL_MAX} characters, no spaces")
    return value


def _valid_prefix(value: str) -> str:
    """The prefix becomes environment variable names, so it must be one itself."""
    if len(value) > PREFIX_MAX or not PREFIX_PATTERN.fullmatch(value):
        raise typer.BadParameter(
            "an environment variable name prefix: A-Z, 0-9 and '_', not starting with a "
            "digit, e.g. ORDERSYNC_ACCOUNT_DEMO"
        )
    return value


def _valid_label(value: str) -> str:
    """Labels are shown in tables: printable text, within the column's length."""
    if not 1 <= len(value) <= LABEL_MAX or not value.isprintable():
        raise typer.BadParameter(f"1 to {LABEL_MAX} printable characters")
    return value


# --- plumbing ------------------------------------------------------------------------------


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(message: str, code: int) -> typer.Exit:
    _stderr().print(f"[red]{escape(message)}[/red]")
    return typer.Exit(code)


@contextmanager
def _database() -> Iterator[Session]:
    """A session on ORDERSYNC_DATABASE_URL; an unknown account or an unusable (missing,
    unmigrated) database ends the command with a message instead of a traceback."""
    engine = make_engine(get_settings().database_url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            yield session
    except UnknownAccount as error:
        raise _fail(str(error), 1) from error
    # SQLite says a table is missing with OperationalError, PostgreSQL with ProgrammingError.
    except (OperationalError, ProgrammingError) as error:
        reason = (str(error.orig).strip().splitlines() or ["?"])[0]  # not PostgreSQL's LINE/^
        raise _fail(
            f"cannot use the database ({reason}): is it migrated (ordersync db upgrade)?", 2
        ) from error
    finally:
        engine.dispose()


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Times as ISO 8601, enums as their values: JSON for scripts."""
    return {
        k: v.isoformat() if isinstance(v, datetime) else v.value if isinstance(v, BrokerKind)
        else v
        for k, v in row.items()
    }  # fmt: skip


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _key_status(key: KeyView) -> str:
    return "live" if key.revoked_at is None else f"revoked {_when(key.revoked_at)}"


# --- the commands --------------------------------------------------------------------------

accounts_app = typer.Typer(
    no_args_is_help=True, help="Accounts (tenants at a broker) and their API keys."
)
keys_app = typer.Typer(
    no_args_is_help=True, help="An account's API keys: create (shown once), list, revoke."
)
accounts_app.add_typer(keys_app, name="keys")

_NAME = Annotated[str, typer.Argument(metavar="NAME", help="The account's name.")]
_JSON = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@accounts_app.command("add")
def add_command(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="1-64 characters of A-Za-z0-9._-", callback=_valid_name
        ),
    ],
    broker: Annotated[BrokerKind, typer.Option(help="The broker.", show_default=False)],
    base_url: Annotated[
        str,
        typer.Option(
            metavar="URL", help="The broker API's base URL (http or https).",
            callback=_valid_base_url,
        ),
    ],
    credentials_env: Annotated[
        str,
        typer.Option(
            metavar="PREFIX",
            help="Prefix of the credential variables: PREFIX_KEY_ID and PREFIX_SECRET_KEY.",
            callback=_valid_prefix,
        ),
    ],
    rate_limit_per_min: Annotated[
        int | None,
        typer.Option(
            min=1, max=RATE_LIMIT_MAX, metavar="N", show_default=False,
            help="The broker's request limit per minute, in request weight where the broker "
            "weighs requests (a new account: the broker's documented limit, Alpaca 200, "
            "Binance 6000, Coinbase 1800; an existing one: unchanged).",
        ),
    ] = None,
) -> None:  # fmt: skip
    """Create an account, or update an existing one's settings (which also enables it)."""
    with _database() as session:
        existing = session.scalar(select(Account).where(Account.name == name))
        before = None if existing is None else _settings_of(existing)
        was_active = existing is None or existing.is_active
        if rate_limit_per_min is None:
            rate_limit_per_min = (
                default_rate_limit_per_min(broker)
                if existing is None
                else existing.rate_limit_per_min
            )
        account = ensure_account(
            session, name=name, broker=broker, base_url=base_url, credentials_env=credentials_env,
            rate_limit_per_min=rate_limit_per_min, now=datetime.now(UTC),
        )  # fmt: skip
        after = _settings_of(account)
        session.commit()
    err = _stderr()
    key_id, secret_key = credential_variables(credentials_env)
    if before is None:
        err.print(
            f"[green]created account {escape(repr(name))}[/green]: {broker.value} at "
            f"{escape(base_url)}, credentials from {key_id} and {secret_key}, rate limit "
            f"{rate_limit_per_min}/min"
        )
    else:
        changes = [f"{k} {escape(str(before[k]))} -> {escape(str(v))}"
                   for k, v in after.items() if before[k] != v]  # fmt: skip
        if not was_active:
            changes.append("enabled again")
        summary = "; ".join(changes) if changes else "nothing changed"
        err.print(f"[green]updated account {escape(repr(name))}[/green]: {summary}")
        err.print(f"credentials from {key_id} and {secret_key}")
    missing = missing_credentials(name, credentials_env)
    if missing:
        err.print(
            f"[yellow]warning: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'}"
            f" not set in this environment; workers need {key_id} and {secret_key} in theirs "
            f"to reach the broker for {escape(repr(name))}[/yellow]"
        )


def _settings_of(account: Account) -> dict[str, object]:
    return {"broker": account.broker.value, "base_url": account.base_url,
            "credentials_env": account.credentials_env,
            "rate_limit_per_min": account.rate_limit_per_min}  # fmt: skip


@accounts_app.command("list")
def list_command(as_json: _JSON = False) -> None:
    """Every account: broker, base URL, credentials prefix, rate limit, state, live keys."""
    with _database() as session:
        views = account_views(session)
    if as_json:
        typer.echo(json.dumps([_plain(asdict(v)) for v in views], indent=2))
        return
    table = Table(title="Accounts")
    for column in ("name", "broker", "base URL", "credentials prefix"):
        table.add_column(column, no_wrap=True)
    table.add_column("limit/min", justify="right")
    table.add_column("active")
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("live keys", justify="right")
    for v in views:
        table.add_row(escape(v.name), v.broker.value, escape(v.base_url), v.credentials_env,
                      str(v.rate_limit_per_min), "yes" if v.is_active else "no",
                      _when(v.created_at), str(v.live_keys))  # fmt: skip
    if not views:
        table.caption = "none yet: ordersync accounts add NAME ..."
    Console().print(table)


@accounts_app.command("show")
def show_command(name: _NAME, as_json: _JSON = False) -> None:
    """One account: its settings, its orders by status and its API keys (never secrets)."""
    with _database() as session:
        account = get_account(session, name)
        view = account_views(session, name)[0]
        counts = counts_by_status(session, name)
        keys = list_keys(session, account)
    if as_json:
        document = _plain(asdict(view)) | {
            "credentials_variables": list(credential_variables(view.credentials_env)),
            "orders_by_status": {status.value: n for status, n in counts.items()},
            "keys": [_plain(asdict(k)) for k in keys],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    console = Console()
    about = Table(title=f"Account {escape(view.name)}", show_header=False)
    about.add_column("field", style="bold", no_wrap=True)
    about.add_column("value")
    rows = {
        "broker": view.broker.value,
        "base URL": escape(view.base_url),
        "credentials": " and ".join(credential_variables(view.credentials_env)),
        "rate limit": f"{view.rate_limit_per_min}/min",
        "active": "yes" if view.is_active else "no (workers place no orders for it)",
        "created (UTC)": _when(view.created_at),
        "live keys": str(view.live_keys),
    }
    for field, value in rows.items():
        about.add_row(field, value)
    console.print(about)
    orders = Table(title="Orders by status")
    orders.add_column("status", no_wrap=True)
    orders.add_column("orders", justify="right")
    for status in OrderStatus:
        orders.add_row(status.value, str(counts[status]))
    orders.caption = f"{sum(counts.values())} in all"
    console.print(orders)
    console.print(_keys_table(keys))


@accounts_app.command("disable")
def disable_command(name: _NAME) -> None:
    """Stop new placements and sweeps for an account; its recorded orders stay."""
    if not _set_active(name, active=False):
        _stderr().print(f"account {escape(repr(name))} was already disabled")
        return
    _stderr().print(
        f"[green]disabled account {escape(repr(name))}[/green]: workers now refuse to place "
        f"orders for it (place_order fails with InvalidTaskArguments), the HTTP API refuses "
        f"new orders for it (409) and the reconciliation sweeps skip it; orders already "
        f"placed are still monitored, and tracking and cancelling still work. Running "
        f"workers notice within {ACCOUNT_CACHE_TTL_S:g} s."
    )


@accounts_app.command("enable")
def enable_command(name: _NAME) -> None:
    """Let workers place orders for an account again and sweep it."""
    if not _set_active(name, active=True):
        _stderr().print(f"account {escape(repr(name))} was already enabled")
        return
    _stderr().print(
        f"[green]enabled account {escape(repr(name))}[/green]: workers place orders for it "
        f"again and the reconciliation sweeps include it (running workers notice within "
        f"{ACCOUNT_CACHE_TTL_S:g} s)"
    )


def _set_active(name: str, *, active: bool) -> bool:
    """Set the flag; False if it already had that value (nothing written)."""
    with _database() as session:
        account = get_account(session, name)
        if account.is_active == active:
            return False
        account.is_active = active
        session.commit()
    return True


# --- keys ----------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create_command(
    name: _NAME,
    label: Annotated[
        str,
        typer.Option(
            metavar="TEXT", help="What the key is for (shown in listings).", callback=_valid_label
        ),
    ] = "default",
) -> None:
    """Create an API key and print it once, alone on stdout; notes go to stderr."""
    with _database() as session:
        account = get_account(session, name)
        new = create_key(session, account, label=label, now=datetime.now(UTC))
        session.commit()
        active = account.is_active
    typer.echo(new.key)
    err = _stderr()
    err.print(
        f"[green]created API key {new.key_id}[/green] for account {escape(repr(name))} "
        f"(label {escape(repr(label))}). It is shown only this once: store it now. Clients "
        f"send it as the header `Authorization: Bearer <key>`; revoke it with "
        f"`ordersync accounts keys revoke {escape(name)} {new.key_id}`."
    )
    if not active:
        err.print(
            f"[yellow]note: account {escape(repr(name))} is disabled; the key works all the "
            f"same, but new orders for the account are refused until "
            f"`ordersync accounts enable {escape(name)}`[/yellow]"
        )


@keys_app.command("list")
def keys_list_command(name: _NAME, as_json: _JSON = False) -> None:
    """An account's API keys, revoked ones too; never a secret or a digest."""
    with _database() as session:
        keys = list_keys(session, get_account(session, name))
    if as_json:
        typer.echo(json.dumps([_plain(asdict(k)) for k in keys], indent=2))
        return
    Console().print(_keys_table(keys, title=f"API keys of {escape(name)}"))


def _keys_table(keys: list[KeyView], title: str = "API keys") -> Table:
    table = Table(title=title)
    for column in ("key id", "label", "created (UTC)", "last used (UTC)", "status"):
        table.add_column(column, no_wrap=column != "label")
    for k in keys:
        table.add_row(k.key_id, escape(k.label), _when(k.created_at), _when(k.last_used_at),
                      _key_status(k))  # fmt: skip
    if not keys:
        table.caption = "none: ordersync accounts keys create NAME"
    return table


@keys_app.command("revoke")
def keys_revoke_command(
    name: _NAME,
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (keys list).")],
) -> None:
    """Revoke an API key: requests bearing it are refused from then on."""
    with _database() as session:
        account = get_account(session, name)
        try:
            revoked = revoke_key(session, account, key_id, now=datetime.now(UTC))
        except UnknownApiKey:
            raise _fail(f"account {name!r} has no API key {key_id!r}", 1) from None
        session.commit()
        key = session.get(ApiKey, key_id)
        revoked_at = None if key is None else key.revoked_at
    if not revoked:
        _stderr().print(
            f"API key {escape(repr(key_id))} of account {escape(repr(name))} was already "
            f"revoked ({_when(revoked_at)} UTC)"
        )
        return
    _stderr().print(
        f"[green]revoked API key {escape(repr(key_id))}[/green] of account "
        f"{escape(repr(name))}: requests bearing it are refused from now on"
    )
