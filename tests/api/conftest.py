"""The API on a fresh migrated database (SQLite and PostgreSQL) and a real Redis: two
accounts (``alpha`` and ``beta``) each with a key, the admin key, and a Celery client that
really sends the API's tasks into Redis, where no worker takes them (tests read them back)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import create_app
from api.deps import ApiState
from core.enums import BrokerKind, Intent, OrderOrigin, OrderStatus, OrderType, Side, TimeInForce
from models.accounts import ensure_account
from models.api_keys import create_key
from models.db import make_engine
from models.orders import Fill, Order
from ordersync.settings import Settings
from ordersync.stack import sender
from ordersync.status import StatusReader
from tests.conftest import migrated_database, session_redis
from worker.context import build_context

ADMIN_KEY = "admin-key-" + "x" * 40
ACCOUNTS = ("alpha", "beta")
T0 = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def api_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local Redis (db 11) when it answers, else one embedded server for the session."""
    yield from session_redis(tmp_path_factory, "ORDERSYNC_TEST_API_REDIS_URL", 11)


@dataclass
class ApiWorld:
    client: TestClient
    engine: Engine
    redis: redis.Redis
    settings: Settings
    keys: dict[str, str]  # account name -> its key
    account_ids: dict[str, str]

    def auth(self, account: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[account]}"}

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}

    def add_order(
        self, account: str, client_order_id: str, *, status: OrderStatus = OrderStatus.NEW,
        symbol: str = "AAPL", quantity: str = "10", filled: str = "0",
        broker_order_id: str | None = None, intent: Intent | None = None,
        trade_id: str | None = None, created_at: datetime = T0, price: str = "100",
    ) -> str:  # fmt: skip
        """An order row as the workers leave it, with one fill when ``filled`` > 0."""
        with Session(self.engine) as session:
            order = Order(
                account_id=self.account_ids[account], broker=BrokerKind.ALPACA,
                client_order_id=client_order_id,
                broker_order_id=broker_order_id or f"b-{client_order_id}",
                origin=OrderOrigin.PLACED, symbol=symbol, side=Side.BUY,
                order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY,
                quantity=Decimal(quantity), status=status, intent=intent, trade_id=trade_id,
                filled_quantity=Decimal(filled), broker_filled_quantity=Decimal(filled),
                average_fill_price=Decimal(price) if Decimal(filled) else None,
                created_at=created_at, updated_at=created_at,
            )  # fmt: skip
            session.add(order)
            session.flush()
            if Decimal(filled):
                session.add(Fill(order_id=order.id, broker_fill_id=f"f-{client_order_id}",
                                 quantity=Decimal(filled), price=Decimal(price),
                                 filled_at=created_at + timedelta(seconds=1),
                                 recorded_at=created_at + timedelta(seconds=2),
                                 source="monitor"))  # fmt: skip
            session.commit()
            return order.id

    def sent(self) -> list[tuple[str, dict[str, Any]]]:
        """(task name, kwargs) of every task the API sent, oldest first."""
        calls = []
        for raw in reversed(self.redis.lrange("celery", 0, -1)):
            message = json.loads(raw)
            _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            calls.append((message["headers"]["task"], kwargs))
        return calls


def api_settings(database_url: str, redis_url: str, var_dir: Path, **extra: Any) -> Settings:
    return Settings(
        _env_file=None, database_url=database_url, redis_url=redis_url, var_dir=var_dir,
        api_admin_key=ADMIN_KEY, **extra,
    )  # type: ignore[call-arg]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path: Path, api_redis_url: str) -> Iterator[ApiWorld]:
    client_redis = redis.Redis.from_url(api_redis_url)
    client_redis.flushdb()
    for database_url in migrated_database(request.param, tmp_path):
        settings = api_settings(database_url, api_redis_url, tmp_path / "var")
        engine = make_engine(database_url)
        keys, ids = {}, {}
        with Session(engine) as session:
            for name in ACCOUNTS:
                account = ensure_account(
                    session, name=name, broker=BrokerKind.ALPACA,
                    base_url="http://127.0.0.1:9", credentials_env=f"TEST_{name.upper()}",
                    rate_limit_per_min=200, now=T0,
                )  # fmt: skip
                keys[name] = create_key(session, account, label="test", now=T0).key
                ids[name] = account.id
            session.commit()
        celery = sender("api-test", api_redis_url, api_redis_url)

        def state(s: Settings, celery: Celery = celery) -> ApiState:
            ctx = build_context(s)
            reader = StatusReader(api_redis_url, s)

            def close() -> None:
                ctx.close()
                reader.close()

            return ApiState(s, ctx, celery.send_task, close, lambda: reader)

        with TestClient(create_app(settings, state)) as client:
            yield ApiWorld(client, engine, client_redis, settings, keys, ids)
        celery.close()
        engine.dispose()
    client_redis.close()
