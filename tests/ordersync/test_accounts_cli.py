"""``ordersync accounts``: accounts added, updated, listed, shown, disabled and enabled; API
keys created (the key alone on stdout, once), listed without secrets and revoked; bad input,
unknown names and an unmigrated database refused with a message, not a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from brokers.registry import credentials
from core.enums import BrokerKind, OrderOrigin, OrderStatus, OrderType, Side, TimeInForce
from models import migrate
from models.api_keys import KEY_PATTERN, ApiKey, digest_of, verify_key
from models.db import make_engine
from models.orders import Account, Order
from ordersync.accounts_cli import credential_variables
from ordersync.cli import app
from ordersync.settings import get_settings
from tests.conftest import migrated_database
from tests.models.factories import T0

ENV = {"COLUMNS": "200", "NO_COLOR": "1"}
ADD = ["accounts", "add", "demo", "--broker", "alpaca", "--base-url", "http://127.0.0.1:8765",
       "--credentials-env", "DEMO"]  # fmt: skip
KEY_FIELDS = {"key_id", "account", "label", "created_at", "last_used_at", "revoked_at"}


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated SQLite database at ORDERSYNC_DATABASE_URL, and no DEMO credentials set."""
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    migrate.upgrade(url)
    _use_database(monkeypatch, url)
    for name in credential_variables("DEMO"):
        monkeypatch.delenv(name, raising=False)
    yield url
    get_settings.cache_clear()


def _use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ORDERSYNC_DATABASE_URL", url)
    get_settings.cache_clear()


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=ENV)


def said(text: str) -> str:
    """Rich wraps long messages; compare them with whitespace folded."""
    return " ".join(text.split())


def table_rows(text: str) -> list[list[str]]:
    """The cells of a rich table's body rows."""
    return [[cell.strip() for cell in line.split("\u2502")[1:-1]]
            for line in text.splitlines() if line.startswith("\u2502")]  # fmt: skip


def accounts(url: str) -> dict[str, Account]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return {a.name: a for a in session.scalars(select(Account))}
    finally:
        engine.dispose()


def create_key(*args: str) -> str:
    result = run("accounts", "keys", "create", *args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


# --- add -----------------------------------------------------------------------------------


def test_add_creates_an_account_that_stores_only_the_credentials_prefix(url: str) -> None:
    result = run(*ADD, "--rate-limit-per-min", "150")

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "created account 'demo': alpaca at http://127.0.0.1:8765" in said(result.stderr)
    assert "credentials from DEMO_KEY_ID and DEMO_SECRET_KEY" in said(result.stderr)
    account = accounts(url)["demo"]
    assert (account.broker, account.base_url, account.credentials_env,
            account.rate_limit_per_min, account.is_active) == (
        BrokerKind.ALPACA, "http://127.0.0.1:8765", "DEMO", 150, True)  # fmt: skip


@pytest.mark.parametrize(("broker", "limit"), [("alpaca", 200), ("binance", 6000),
                                               ("coinbase", 1800)])  # fmt: skip
def test_a_new_account_gets_its_brokers_documented_rate_limit(
    url: str, broker: str, limit: int
) -> None:
    result = run("accounts", "add", "acct", "--broker", broker, "--base-url",
                 "http://127.0.0.1:8765", "--credentials-env", "ACCT")  # fmt: skip

    assert result.exit_code == 0, result.output
    account = accounts(url)["acct"]
    assert (account.broker.value, account.rate_limit_per_min) == (broker, limit)


def test_add_again_updates_and_keeps_an_unmentioned_rate_limit(url: str) -> None:
    assert run(*ADD, "--rate-limit-per-min", "150").exit_code == 0
    created_at = accounts(url)["demo"].created_at

    result = run("accounts", "add", "demo", "--broker", "alpaca", "--base-url",
                 "https://paper-api.alpaca.markets", "--credentials-env", "DEMO")  # fmt: skip

    assert result.exit_code == 0, result.output
    change = "base_url http://127.0.0.1:8765 -> https://paper-api.alpaca.markets"
    assert said(result.stderr).startswith(f"updated account 'demo': {change}")
    account = accounts(url)["demo"]
    assert (account.base_url, account.rate_limit_per_min, account.created_at) == (
        "https://paper-api.alpaca.markets", 150, created_at)  # fmt: skip
    assert len(accounts(url)) == 1
    assert "nothing changed" in said(run(*ADD[:6], "https://paper-api.alpaca.markets",
                                         *ADD[7:]).stderr)  # fmt: skip


def test_add_on_a_disabled_account_enables_it_again_and_says_so(url: str) -> None:
    run(*ADD)
    run("accounts", "disable", "demo")

    result = run(*ADD)

    assert result.exit_code == 0
    assert "updated account 'demo': enabled again" in said(result.stderr)
    assert accounts(url)["demo"].is_active


def test_the_variables_named_are_the_ones_the_adapter_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    key_id, secret_key = credential_variables("DEMO")
    monkeypatch.setenv(key_id, "the-key-id")
    monkeypatch.setenv(secret_key, "the-secret")
    assert credentials("demo", "DEMO") == ("the-key-id", "the-secret")


def test_missing_credentials_are_named_in_a_warning_but_the_account_is_added(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    none_set = run(*ADD)
    monkeypatch.setenv("DEMO_KEY_ID", "kid-value-1234")
    one_set = run(*ADD)
    monkeypatch.setenv("DEMO_SECRET_KEY", "secret-value-5678")
    both_set = run(*ADD)

    assert none_set.exit_code == one_set.exit_code == both_set.exit_code == 0
    assert ("warning: DEMO_KEY_ID and DEMO_SECRET_KEY are not set in this environment"
            in said(none_set.stderr))  # fmt: skip
    assert "warning: DEMO_SECRET_KEY is not set in this environment" in said(one_set.stderr)
    assert "warning" not in both_set.output
    for result in (none_set, one_set, both_set):
        assert "kid-value-1234" not in result.output
        assert "secret-value-5678" not in result.output
    assert "demo" in accounts(url)


@pytest.mark.parametrize(
    ("option", "value", "complaint"),
    [
        ("name", "bad name", "1 to 64 characters"),
        ("name", "x" * 65, "1 to 64 characters"),
        ("name", "", "1 to 64 characters"),
        ("name", "caf\u00e9", "1 to 64 characters"),
        ("--broker", "ibkr", "'ibkr' is not one of 'alpaca'"),
        ("--base-url", "ftp://broker.example", "an http:// or https:// URL with a host"),
        ("--base-url", "https://", "an http:// or https:// URL with a host"),
        ("--base-url", "paper-api.alpaca.markets", "an http:// or https:// URL with a host"),
        ("--base-url", "http://[::1", "not a valid URL"),
        ("--base-url", "http://host:0", "an http:// or https:// URL with a host"),
        ("--base-url", "https://key:hunter2-secret@broker.example", "no credentials in the URL"),
        ("--base-url", "https://broker.example/?token=1", "no query or fragment"),
        ("--base-url", "https://broker.example/a b", "no spaces"),
        ("--credentials-env", "demo", "an environment variable name prefix"),
        ("--credentials-env", "1DEMO", "an environment variable name prefix"),
        ("--credentials-env", "DEMO-ACCOUNT", "an environment variable name prefix"),
        ("--credentials-env", "DEMO=X", "an environment variable name prefix"),
        ("--credentials-env", "", "an environment variable name prefix"),
        ("--rate-limit-per-min", "0", "--rate-limit-per-min"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    url: str, option: str, value: str, complaint: str
) -> None:
    args = {"name": "demo", "--broker": "alpaca", "--base-url": "https://broker.example",
            "--credentials-env": "DEMO"}  # fmt: skip
    args[option] = value
    argv = ["accounts", "add", args.pop("name")]
    for key, given in args.items():
        argv += [key, given]

    result = run(*argv)

    assert result.exit_code == 2, result.output
    assert complaint in said(result.stderr.replace("\u2502", " "))
    assert "hunter2-secret" not in result.output
    assert accounts(url) == {}


# --- list and show -------------------------------------------------------------------------


def _orders(url: str, account: str, *statuses: OrderStatus) -> None:
    engine = make_engine(url)
    with Session(engine) as session:
        account_id = session.scalars(select(Account.id).where(Account.name == account)).one()
        for n, status in enumerate(statuses):
            session.add(Order(
                account_id=account_id, broker=BrokerKind.ALPACA, client_order_id=f"c-{n}",
                origin=OrderOrigin.PLACED, symbol="AAPL", side=Side.BUY,
                order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY,
                quantity=Decimal(1), status=status, created_at=T0, updated_at=T0,
            ))  # fmt: skip
        session.commit()
    engine.dispose()


def test_list_shows_every_account_with_its_live_keys(url: str) -> None:
    run(*ADD)
    run("accounts", "add", "beta", "--broker", "alpaca", "--base-url", "https://b.example",
        "--credentials-env", "ORDERSYNC_ACCOUNT_BETA", "--rate-limit-per-min", "60")  # fmt: skip
    run("accounts", "disable", "beta")
    create_key("demo")
    revoked = create_key("demo", "--label", "old")
    run("accounts", "keys", "revoke", "demo", revoked.split("_")[1])

    text = run("accounts", "list")
    as_json = run("accounts", "list", "--json")

    assert text.exit_code == as_json.exit_code == 0
    rows = {cells[0]: cells for cells in table_rows(text.stdout)}
    assert rows["beta"][:6] == ["beta", "alpaca", "https://b.example", "ORDERSYNC_ACCOUNT_BETA",
                                "60", "no"]  # fmt: skip
    assert (rows["demo"][5], rows["demo"][7]) == ("yes", "1")  # active, one live key of two
    listed = json.loads(as_json.stdout)
    assert [r["name"] for r in listed] == ["beta", "demo"]
    assert listed[1] == {
        "name": "demo", "broker": "alpaca", "base_url": "http://127.0.0.1:8765",
        "credentials_env": "DEMO", "rate_limit_per_min": 200, "is_active": True,
        "created_at": accounts(url)["demo"].created_at.isoformat(), "live_keys": 1,
    }  # fmt: skip


def test_list_of_no_accounts_says_how_to_add_one(url: str) -> None:
    assert "ordersync accounts add" in run("accounts", "list").stdout
    assert json.loads(run("accounts", "list", "--json").stdout) == []


def test_show_gives_the_settings_order_counts_and_keys(url: str) -> None:
    run(*ADD)
    _orders(url, "demo", OrderStatus.NEW, OrderStatus.NEW, OrderStatus.FILLED)
    key = create_key("demo", "--label", "trader")
    key_id = key.split("_")[1]

    text = run("accounts", "show", "demo")
    as_json = run("accounts", "show", "demo", "--json")

    assert text.exit_code == as_json.exit_code == 0
    rows = table_rows(text.stdout)
    assert ["credentials", "DEMO_KEY_ID and DEMO_SECRET_KEY"] in rows
    assert ["NEW", "2"] in rows
    assert ["FILLED", "1"] in rows
    assert ["CANCELED", "0"] in rows
    assert "3 in all" in text.stdout
    assert [key_id, "trader"] in [r[:2] for r in rows]
    document = json.loads(as_json.stdout)
    assert document["name"] == "demo"
    assert document["credentials_variables"] == ["DEMO_KEY_ID", "DEMO_SECRET_KEY"]
    assert document["orders_by_status"] == {s.value: 0 for s in OrderStatus} | {
        "NEW": 2, "FILLED": 1}  # fmt: skip
    assert [(k["key_id"], k["label"], k["revoked_at"]) for k in document["keys"]] == [
        (key_id, "trader", None)]  # fmt: skip
    assert set(document["keys"][0]) == KEY_FIELDS
    for result in (text, as_json):
        assert key.split("_", 2)[2] not in result.output


# --- disable and enable --------------------------------------------------------------------


def test_disable_and_enable(url: str) -> None:
    run(*ADD)

    disabled = run("accounts", "disable", "demo")
    assert disabled.exit_code == 0
    assert not accounts(url)["demo"].is_active
    assert "workers now refuse to place orders for it" in said(disabled.stderr)
    again = run("accounts", "disable", "demo")
    assert (again.exit_code, said(again.stderr)) == (0, "account 'demo' was already disabled")

    enabled = run("accounts", "enable", "demo")
    assert enabled.exit_code == 0
    assert accounts(url)["demo"].is_active
    assert "enabled account 'demo'" in said(enabled.stderr)
    again = run("accounts", "enable", "demo")
    assert (again.exit_code, said(again.stderr)) == (0, "account 'demo' was already enabled")


# --- keys ----------------------------------------------------------------------------------


def _verify(url: str, key: str) -> ApiKey | None:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return verify_key(session, key)
    finally:
        engine.dispose()


def test_keys_create_prints_the_key_alone_on_stdout_and_it_verifies(url: str) -> None:
    run(*ADD)

    result = run("accounts", "keys", "create", "demo")

    assert result.exit_code == 0, result.output
    key = result.stdout.removesuffix("\n")
    assert "\n" not in key
    assert KEY_PATTERN.fullmatch(key)
    found = _verify(url, key)
    assert found is not None
    assert (found.label, found.account_id) == ("default", accounts(url)["demo"].id)
    notes = said(result.stderr)
    assert "shown only this once" in notes
    assert "Authorization: Bearer <key>" in notes
    assert key not in result.stderr


def test_a_disabled_account_gets_keys_with_a_note(url: str) -> None:
    run(*ADD)
    run("accounts", "disable", "demo")

    result = run("accounts", "keys", "create", "demo", "--label", "reader")

    assert result.exit_code == 0
    assert _verify(url, result.stdout.strip()) is not None
    assert "account 'demo' is disabled; the key works all the same" in said(result.stderr)


def test_a_bad_label_is_refused(url: str) -> None:
    run(*ADD)
    for label in ("", "x" * 65, "tab\there"):
        result = run("accounts", "keys", "create", "demo", "--label", label)
        assert result.exit_code == 2
        assert result.stdout == ""
    engine = make_engine(url)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(ApiKey)) == 0
    engine.dispose()


def test_keys_list_never_shows_a_secret_or_digest(url: str) -> None:
    run(*ADD)
    key = create_key("demo", "--label", "ci")
    key_id, secret = key.split("_", 2)[1:]

    text = run("accounts", "keys", "list", "demo")
    as_json = run("accounts", "keys", "list", "demo", "--json")

    assert text.exit_code == as_json.exit_code == 0
    assert [r[:2] + r[-1:] for r in table_rows(text.stdout)] == [[key_id, "ci", "live"]]
    rows = json.loads(as_json.stdout)
    assert [(r["key_id"], r["account"], r["label"]) for r in rows] == [(key_id, "demo", "ci")]
    assert set(rows[0]) == KEY_FIELDS
    for result in (text, as_json):
        assert secret not in result.output
        assert digest_of(secret) not in result.output


def test_revoke_refuses_the_key_from_then_on_and_twice_is_fine(url: str) -> None:
    run(*ADD)
    key = create_key("demo")
    kept = create_key("demo", "--label", "kept")
    key_id = key.split("_")[1]

    first = run("accounts", "keys", "revoke", "demo", key_id)
    second = run("accounts", "keys", "revoke", "demo", key_id)

    assert first.exit_code == 0
    assert f"revoked API key '{key_id}' of account 'demo'" in said(first.stderr)
    assert _verify(url, key) is None
    assert _verify(url, kept) is not None
    assert second.exit_code == 0
    assert f"API key '{key_id}' of account 'demo' was already revoked" in said(second.stderr)
    listed = {r[0]: r for r in table_rows(run("accounts", "keys", "list", "demo").stdout)}
    assert listed[key_id][-1].startswith("revoked 20")
    assert listed[kept.split("_")[1]][-1] == "live"


def test_revoke_of_an_unknown_key_or_another_accounts_key_fails(url: str) -> None:
    run(*ADD)
    run("accounts", "add", "other", "--broker", "alpaca", "--base-url", "http://o.example",
        "--credentials-env", "OTHER")  # fmt: skip
    others = create_key("other")

    unknown = run("accounts", "keys", "revoke", "demo", "0123456789ab")
    foreign = run("accounts", "keys", "revoke", "demo", others.split("_")[1])

    assert unknown.exit_code == foreign.exit_code == 1
    assert "account 'demo' has no API key '0123456789ab'" in said(unknown.stderr)
    assert "has no API key" in said(foreign.stderr)
    assert _verify(url, others) is not None


@pytest.mark.parametrize(
    "command",
    [
        ["show", "ghost"],
        ["show", "ghost", "--json"],
        ["disable", "ghost"],
        ["enable", "ghost"],
        ["keys", "create", "ghost"],
        ["keys", "list", "ghost"],
        ["keys", "revoke", "ghost", "0123456789ab"],
    ],
)
def test_an_unknown_account_is_said_so(url: str, command: list[str]) -> None:
    result = run("accounts", *command)

    assert result.exit_code == 1
    assert said(result.stderr) == "unknown account 'ghost'"
    assert result.stdout == ""


# --- the database ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize(
    "command", [["list"], ["show", "demo"], [*ADD[1:]], ["keys", "create", "demo"]]
)
def test_an_unmigrated_database_is_said_so(
    kind: str, command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for url in migrated_database(kind, tmp_path):
        migrate.downgrade(url, "base")
        _use_database(monkeypatch, url)
        try:
            result = run("accounts", *command)
        finally:
            get_settings.cache_clear()

        assert result.exit_code == 2, result.output
        assert "is it migrated (ordersync db upgrade)?" in said(result.stderr)
        assert result.stdout == ""


def test_a_database_without_the_keys_table_is_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0010")
    _use_database(monkeypatch, url)
    try:
        added = run(*ADD)
        keys = run("accounts", "keys", "list", "demo")
    finally:
        get_settings.cache_clear()

    assert added.exit_code == 0
    assert keys.exit_code == 2
    assert "no such table: api_keys" in said(keys.stderr)
    assert "ordersync db upgrade" in said(keys.stderr)


@pytest.mark.integration
def test_a_shell_captures_just_the_key(url: str) -> None:
    """The real process, as ``KEY=$(ordersync accounts keys create demo)`` runs it."""
    run(*ADD)
    env = {**os.environ, "ORDERSYNC_DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "ordersync", "accounts", "keys", "create", "demo"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert KEY_PATTERN.fullmatch(result.stdout.removesuffix("\n"))
    assert "shown only this once" in said(result.stderr)
    assert _verify(url, result.stdout.strip()) is not None
