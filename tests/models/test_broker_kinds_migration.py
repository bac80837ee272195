"""Migrations 0017 (broker kinds binance, coinbase) and 0019 (tradier, oanda) up and down on
SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from models import migrate
from models.db import make_engine
from tests.conftest import migrated_database


def _account(engine: Engine, name: str, broker: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO accounts (id, name, broker, base_url, credentials_env, "
                "rate_limit_per_min, is_active, created_at) VALUES (:name, :name, :broker, "
                "'x', 'X', 200, true, '2026-12-04 10:00:00')"
            ),
            {"name": name, "broker": broker},
        )


def _order(engine: Engine, order_id: str, broker: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO orders (id, account_id, broker, client_order_id, origin, symbol, "
                "side, order_type, time_in_force, quantity, status, filled_quantity, "
                "broker_filled_quantity, fill_notional, fees, check_count, anomaly_count, "
                "created_at, updated_at, version) VALUES (:id, 'a', :broker, :id, 'placed', "
                "'BTCUSDT', 'buy', 'market', 'gtc', 1, 'NEW', 0, 0, 0, 0, 0, 0, "
                "'2026-12-04 10:00:00', '2026-12-04 10:00:00', 1)"
            ),
            {"id": order_id, "broker": broker},
        )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_0017_lets_accounts_and_orders_name_binance_and_coinbase_and_goes_down_again(
    kind: str, tmp_path: Path
) -> None:
    for url in migrated_database(kind, tmp_path):
        engine = make_engine(url)
        try:
            _account(engine, "a", "alpaca")
            _account(engine, "b", "binance")
            _account(engine, "c", "coinbase")
            _order(engine, "o-b", "binance")
            with pytest.raises(IntegrityError):
                _account(engine, "x", "kraken")
            with pytest.raises(RuntimeError, match="2 account"):
                migrate.downgrade(url, "0016")

            with engine.begin() as connection:
                connection.execute(text("DELETE FROM orders"))
                connection.execute(text("DELETE FROM accounts WHERE broker <> 'alpaca'"))
            migrate.downgrade(url, "0016")
            with pytest.raises(IntegrityError):
                _account(engine, "b", "binance")
            with pytest.raises(IntegrityError):
                _order(engine, "o-b", "binance")
            _order(engine, "o-a", "alpaca")

            migrate.upgrade(url)
            _account(engine, "b", "binance")
            _order(engine, "o-b", "binance")
        finally:
            engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_0019_lets_accounts_and_orders_name_tradier_and_oanda_and_goes_down_again(
    kind: str, tmp_path: Path
) -> None:
    for url in migrated_database(kind, tmp_path):
        engine = make_engine(url)
        try:
            _account(engine, "a", "alpaca")
            _account(engine, "t", "tradier")
            _account(engine, "o", "oanda")
            _order(engine, "o-t", "tradier")
            with pytest.raises(RuntimeError, match="2 account"):
                migrate.downgrade(url, "0018")

            with engine.begin() as connection:
                connection.execute(text("DELETE FROM orders"))
                connection.execute(text("DELETE FROM accounts WHERE broker <> 'alpaca'"))
            migrate.downgrade(url, "0018")
            _account(engine, "b", "binance")  # still known
            with pytest.raises(IntegrityError):
                _account(engine, "t", "tradier")
            with pytest.raises(IntegrityError):
                _order(engine, "o-t", "tradier")

            migrate.upgrade(url)
            _account(engine, "t", "tradier")
            _order(engine, "o-t", "oanda")
        finally:
            engine.dispose()
