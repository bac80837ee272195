"""Migration 0016 (notional orders) up and down on SQLite and PostgreSQL, and the constraint
it makes: an order names a positive quantity or, with none, a positive notional."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import migrate
from models.db import make_engine
from models.orders import Order
from tests.conftest import migrated_database

CREATED = "2026-12-01 10:00:00"


def _insert(engine: Engine, order_id: str, quantity: str | None,
            notional: str | None = None) -> None:  # fmt: skip
    columns = ", notional" if notional is not None else ""
    values = ", :notional" if notional is not None else ""
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO orders (id, account_id, broker, client_order_id, origin, symbol, side, "
            "order_type, time_in_force, quantity, status, filled_quantity, "
            "broker_filled_quantity, fill_notional, fees, check_count, anomaly_count, "
            f"created_at, updated_at, version{columns}) VALUES (:id, 'a', 'alpaca', :id, "
            "'placed', 'AAPL', 'buy', 'market', 'day', :quantity, 'NEW', 0, 0, 0, 0, 0, 0, "
            f":at, :at, 1{values})"),
            {"id": order_id, "quantity": quantity, "notional": notional,
             "at": CREATED})  # fmt: skip


def _with_account(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO accounts (id, name, broker, base_url, credentials_env, "
            "rate_limit_per_min, is_active, created_at) VALUES ('a', 'a', 'alpaca', 'x', 'X', "
            f"200, true, '{CREATED}')"))  # fmt: skip


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_0016_goes_down_and_up_again_keeping_quantity_orders(kind: str, tmp_path: Path) -> None:
    for url in migrated_database(kind, tmp_path):
        engine = make_engine(url)
        try:
            _with_account(engine)
            _insert(engine, "q", "10")
            _insert(engine, "n", None, notional="500")
            with pytest.raises(RuntimeError, match="1 notional order"):
                migrate.downgrade(url, "0015")
            with engine.begin() as connection:
                connection.execute(text("DELETE FROM orders WHERE id = 'n'"))

            migrate.downgrade(url, "0015")
            columns = {c["name"]: c for c in inspect(engine).get_columns("orders")}
            assert "notional" not in columns
            assert columns["quantity"]["nullable"] is False
            with pytest.raises(IntegrityError):
                _insert(engine, "none", None)

            migrate.upgrade(url)
            columns = {c["name"]: c for c in inspect(engine).get_columns("orders")}
            assert columns["quantity"]["nullable"] is True
            assert columns["notional"]["nullable"] is True
            _insert(engine, "n2", None, notional="0.5")
            with engine.connect() as connection:
                rows = connection.execute(text("SELECT id FROM orders ORDER BY id")).scalars()
                assert list(rows) == ["n2", "q"]
        finally:
            engine.dispose()


@pytest.mark.parametrize(
    ("quantity", "notional"),
    [(None, None), ("10", "500"), ("0", None), ("-1", None), (None, "0"), (None, "-500")],
)
def test_an_order_names_a_positive_quantity_or_a_positive_notional(
    db_session: Session, make_order: Callable[..., Order], quantity: str | None,
    notional: str | None,
) -> None:  # fmt: skip
    with pytest.raises(IntegrityError), db_session.begin_nested():
        make_order(quantity=None if quantity is None else Decimal(quantity),
                   notional=None if notional is None else Decimal(notional))  # fmt: skip


def test_a_notional_order_is_stored_without_a_quantity(
    db_session: Session, make_order: Callable[..., Order]
) -> None:
    order = make_order(quantity=None, notional=Decimal("500.25"))
    db_session.expire(order)

    assert (order.quantity, order.notional) == (None, Decimal("500.25"))
