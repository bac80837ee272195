"""Helpers for the paper exchange tests: a clock the test moves, and engines built on it."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from brokers.alpaca.paper.crypto import CryptoSettings
from brokers.alpaca.paper.rules import AlpacaRules
from brokers.paper.app import create_app
from brokers.paper.engine import DEFAULT_ACCOUNT, Engine, EngineConfig
from brokers.paper.faults import FaultSettings
from brokers.paper.model import Order, OrderRequest, PaperStatus
from brokers.paper.state import Sim, SimConfig
from core.enums import OrderType, Side, TimeInForce

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


class FakeClock:
    """Time stands still until the test moves it."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def tick(self, ms: float = 0, *, us: int = 0) -> datetime:
        self.now += timedelta(milliseconds=ms, microseconds=us)
        return self.now


def make_engine(
    clock: FakeClock,
    seed: int = 1,
    *,
    frozen: bool = True,
    accounts: tuple[str, ...] = (DEFAULT_ACCOUNT,),
    **config: object,
) -> Engine:
    """A seeded engine under Alpaca's rules (``config`` may name its crypto settings too);
    frozen by default so prices move only when a test sets them."""
    named = {field.name for field in fields(CryptoSettings)} & config.keys()
    crypto = CryptoSettings(**{name: config.pop(name) for name in named})  # type: ignore[arg-type]
    settings = EngineConfig(**config)  # type: ignore[arg-type]
    rules = AlpacaRules(lambda: crypto)
    engine = Engine(settings, clock, random.Random(seed), accounts=accounts, rules=rules)
    engine.frozen = frozen
    return engine


def order(
    symbol: str = "AAPL",
    qty: str = "10",
    side: Side = Side.BUY,
    type: OrderType = OrderType.MARKET,
    tif: TimeInForce = TimeInForce.DAY,
    limit: str | None = None,
    stop: str | None = None,
    cid: str | None = None,
) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        qty=Decimal(qty),
        side=side,
        type=type,
        time_in_force=tif,
        limit_price=None if limit is None else Decimal(limit),
        stop_price=None if stop is None else Decimal(stop),
        client_order_id=cid,
    )


def statuses(placed: Order) -> list[str]:
    return [status.value for status, _ in placed.timeline]


def status_time(placed: Order, status: PaperStatus) -> int:
    return next(at for seen, at in placed.timeline if seen is status)


class RecordingSleep:
    """Stands in for ``asyncio.sleep``: records the wait and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


KEY_ID = "unit-key"
SECRET_KEY = "unit-secret"  # paper credentials
AUTH = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET_KEY}
OTHER_KEY_ID = "unit-key-2"
OTHER_SECRET_KEY = "unit-secret-2"  # paper credentials
OTHER_AUTH = {"APCA-API-KEY-ID": OTHER_KEY_ID, "APCA-API-SECRET-KEY": OTHER_SECRET_KEY}


def auth(key_id: str, secret_key: str) -> dict[str, str]:
    return {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key}


def make_sim(
    clock: FakeClock,
    sleep: RecordingSleep,
    *,
    frozen: bool = True,
    any_keys: bool = False,
    accounts: tuple[tuple[str, str], ...] = ((OTHER_KEY_ID, OTHER_SECRET_KEY),),
    starting_cash: Decimal | None = None,
    **faults: object,
) -> Sim:
    """A seeded exchange on the fake clock, with optional start-up faults; it demands
    ``AUTH`` (or ``OTHER_AUTH``: a second account) unless ``any_keys`` (open mode)."""
    settings = FaultSettings.model_validate(faults)
    keys = (None, None) if any_keys else (KEY_ID, SECRET_KEY)
    engine = EngineConfig() if starting_cash is None else EngineConfig(starting_cash=starting_cash)
    config = SimConfig(
        key_id=keys[0],
        secret_key=keys[1],
        accounts=() if any_keys else accounts,
        seed=11,
        engine=engine,
        faults=settings,
    )
    sim = Sim(config, clock=clock, sleep=sleep)
    sim.engine.frozen = frozen
    return sim


@contextlib.asynccontextmanager
async def api_client(sim: Sim, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client wired straight to the ASGI app: no sockets, no lifespan."""
    transport = httpx.ASGITransport(app=create_app(sim))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://paper.test", headers=headers or AUTH
    ) as client:
        yield client
