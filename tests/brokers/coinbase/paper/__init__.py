"""Helpers for the Coinbase dialect's tests: keys made for the test, an exchange that knows
their public halves on a fake clock, and a client that signs every request as Coinbase
demands (a fresh ES256 JWT naming the request)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from brokers.paper.app import create_app
from brokers.paper.faults import FaultSettings
from brokers.paper.state import Sim, SimConfig
from tests.brokers.paper import FakeClock, RecordingSleep

KEY_NAME = "organizations/org-paper/apiKeys/key-1"
OTHER_NAME = "organizations/org-paper/apiKeys/key-2"
HOST = "paper.test"
PREFIX = "/api/v3/brokerage"


def new_key() -> tuple[str, str]:
    """A fresh P-256 key pair as PEM text: (private, public)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


PRIVATE, PUBLIC = new_key()
OTHER_PRIVATE, OTHER_PUBLIC = new_key()


def make_coinbase_sim(
    clock: FakeClock,
    sleep: RecordingSleep,
    *,
    balances: tuple[tuple[str, Decimal], ...] | None = None,
    **faults: object,
) -> Sim:
    """A seeded exchange with two Coinbase keys whose fills land at once (no fill delay, no
    partials) unless the faults say otherwise; a frozen market (prices move when set)."""
    settings = FaultSettings.model_validate(
        {"fill_delay_ms": (0, 0), "partial_fill_probability": 0.0, **faults}
    )
    extra = {} if balances is None else {"coinbase_balances": balances}
    config = SimConfig(
        key_id="alpaca-key",
        secret_key="alpaca-secret",
        seed=5,
        faults=settings,
        coinbase_accounts=((KEY_NAME, PUBLIC), (OTHER_NAME, OTHER_PUBLIC)),
        **extra,  # type: ignore[arg-type]
    )
    sim = Sim(config, clock=clock, sleep=sleep)
    sim.engine.frozen = True
    return sim


def token(
    private_pem: str,
    clock: Callable[[], datetime],
    uri: str | None,
    *,
    kid: str = KEY_NAME,
    claims: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """A JWT as Coinbase's docs make it (``uri`` None: a WebSocket one, without the claim),
    any part of which a test may override."""
    now = int(clock().timestamp())
    body = {"sub": kid, "iss": "cdp", "nbf": now, "exp": now + 120, **(claims or {})}
    if uri is not None:
        body.setdefault("uri", uri)
    head = {"kid": kid, "nonce": secrets.token_hex(), **(headers or {})}
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return jwt.encode(body, key, algorithm="ES256", headers=head)


class Signer:
    """Sends requests under /api/v3/brokerage, each with its own JWT."""

    def __init__(self, client: httpx.AsyncClient, clock: FakeClock, kid: str, private: str):
        self.client, self.clock, self.kid, self.private = client, clock, kid, private

    def auth(self, method: str, path: str, **overrides: Any) -> dict[str, str]:
        uri = f"{method} {HOST}{PREFIX}{path}"
        signed = token(self.private, self.clock, uri, kid=self.kid, **overrides)
        return {"Authorization": f"Bearer {signed}"}

    async def send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.client.request(
            method, PREFIX + path, headers=self.auth(method, path.partition("?")[0]), **kw
        )

    async def ok(self, method: str, path: str, **kw: Any) -> Any:
        answer = await self.send(method, path, **kw)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def place(self, cid: str, config: dict[str, Any], product: str = "BTC-USD",
                    side: str = "BUY") -> Any:  # fmt: skip
        body = {"client_order_id": cid, "product_id": product, "side": side,
                "order_configuration": config}  # fmt: skip
        return await self.ok("POST", "/orders", json=body)


@contextlib.asynccontextmanager
async def coinbase_client(sim: Sim, clock: FakeClock) -> AsyncIterator[Signer]:
    transport = httpx.ASGITransport(app=create_app(sim))
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}") as client:
        yield Signer(client, clock, KEY_NAME, PRIVATE)
