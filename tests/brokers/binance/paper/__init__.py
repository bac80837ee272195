"""Helpers for the Binance dialect's tests: an exchange with Binance keys on a fake clock,
and a client that signs as Binance demands."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx

from brokers.paper.app import create_app
from brokers.paper.faults import FaultSettings
from brokers.paper.state import Sim, SimConfig
from tests.brokers.paper import FakeClock, RecordingSleep

API_KEY = "binanceUnitKey0001"
SECRET = "binance-unit-secret"  # paper credentials
OTHER_KEY = "binanceUnitKey0002"
OTHER_SECRET = "binance-unit-secret-2"  # paper credentials
BINANCE_KEY = "sdkBinanceKey01"  # the SDK tests' exchange process (conftest.py)
BINANCE_SECRET = "sdk-binance-secret"  # paper exchange credentials, not a secret


def make_binance_sim(
    clock: FakeClock,
    sleep: RecordingSleep,
    *,
    balances: tuple[tuple[str, Decimal], ...] | None = None,
    **faults: object,
) -> Sim:
    """A seeded exchange whose fills land at once (no fill delay, no partials) unless the
    faults say otherwise; the market is frozen so prices move only when a test sets them."""
    settings = FaultSettings.model_validate(
        {"fill_delay_ms": (0, 0), "partial_fill_probability": 0.0, **faults}
    )
    extra = {} if balances is None else {"binance_balances": balances}
    config = SimConfig(
        key_id="alpaca-key",
        secret_key="alpaca-secret",
        seed=5,
        faults=settings,
        binance_accounts=((API_KEY, SECRET), (OTHER_KEY, OTHER_SECRET)),
        **extra,  # type: ignore[arg-type]
    )
    sim = Sim(config, clock=clock, sleep=sleep)
    sim.engine.frozen = True
    return sim


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class Signer:
    """Sends SIGNED requests: timestamp from the exchange's clock, the signature over the
    query string (the way most clients sign, POST included)."""

    def __init__(self, client: httpx.AsyncClient, clock: FakeClock, key: str, secret: str):
        self.client, self.clock, self.key, self.secret = client, clock, key, secret

    def query(self, params: dict[str, Any], *, timestamp: int | None = None) -> str:
        stamp = int(self.clock().timestamp() * 1000) if timestamp is None else timestamp
        payload = urlencode({**params, "timestamp": stamp})
        return f"{payload}&signature={sign(self.secret, payload)}"

    async def send(self, method: str, path: str, **params: Any) -> httpx.Response:
        headers = {"X-MBX-APIKEY": self.key}
        return await self.client.request(method, f"{path}?{self.query(params)}", headers=headers)

    async def ok(self, method: str, path: str, **params: Any) -> Any:
        answer = await self.send(method, path, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()


@contextlib.asynccontextmanager
async def binance_client(sim: Sim, clock: FakeClock) -> AsyncIterator[Signer]:
    transport = httpx.ASGITransport(app=create_app(sim))
    async with httpx.AsyncClient(transport=transport, base_url="http://paper.test") as client:
        yield Signer(client, clock, API_KEY, SECRET)
