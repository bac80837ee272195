"""Every request's JWT checked as strictly as Coinbase checks it: a refusal is 401 with
the plain-text body ``Unauthorized``, whatever was wrong."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.brokers.coinbase.paper import (
    HOST,
    OTHER_NAME,
    OTHER_PRIVATE,
    PREFIX,
    PRIVATE,
    Signer,
    coinbase_client,
    make_coinbase_sim,
    new_key,
    token,
)
from tests.brokers.paper import FakeClock, RecordingSleep

pytestmark = pytest.mark.anyio
ACCOUNTS = f"GET {HOST}{PREFIX}/accounts"


async def _get(clock: FakeClock, sleep: RecordingSleep, authorization: str | None) -> Any:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        headers = {} if authorization is None else {"Authorization": authorization}
        return await api.client.get(f"{PREFIX}/accounts", headers=headers)


async def test_a_well_signed_request_is_served_with_rate_limit_headers(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    answer = await _get(clock, sleep, f"Bearer {token(PRIVATE, clock, ACCOUNTS)}")
    assert answer.status_code == 200
    assert answer.headers["x-ratelimit-limit"] == "30"
    assert answer.headers["x-ratelimit-remaining"] == "29"


@pytest.mark.parametrize(
    ("case", "authorization"),
    [
        ("no header", None),
        ("not bearer", "Basic abc"),
        ("not a jwt", "Bearer not-a-jwt"),
    ],
)
async def test_a_missing_or_malformed_token_is_401(
    clock: FakeClock, sleep: RecordingSleep, case: str, authorization: str | None
) -> None:
    answer = await _get(clock, sleep, authorization)
    assert (answer.status_code, answer.text) == (401, "Unauthorized\n"), case
    assert answer.headers["content-type"].startswith("text/plain")
    assert "x-ratelimit-limit" not in answer.headers  # no key: nothing counted


def _bad_tokens(clock: FakeClock) -> dict[str, str]:
    now = int(clock().timestamp())
    stranger, _ = new_key()
    return {
        "bad signature": token(OTHER_PRIVATE, clock, ACCOUNTS),  # key 2's private, key 1's kid
        "unknown key": token(stranger, clock, ACCOUNTS, kid="organizations/x/apiKeys/nobody"),
        "expired": token(PRIVATE, clock, ACCOUNTS, claims={"nbf": now - 180, "exp": now - 60}),
        "expiring at once": token(PRIVATE, clock, ACCOUNTS, claims={"exp": now}),
        "not valid yet": token(PRIVATE, clock, ACCOUNTS, claims={"nbf": now + 5}),
        "lives too long": token(PRIVATE, clock, ACCOUNTS, claims={"exp": now + 600}),
        "wrong uri path": token(PRIVATE, clock, f"GET {HOST}{PREFIX}/orders/historical/fills"),
        "wrong uri method": token(PRIVATE, clock, f"POST {HOST}{PREFIX}/accounts"),
        "wrong uri host": token(PRIVATE, clock, f"GET api.coinbase.com{PREFIX}/accounts"),
        "uri with query": token(PRIVATE, clock, f"{ACCOUNTS}?limit=1"),
        "wrong issuer": token(PRIVATE, clock, ACCOUNTS, claims={"iss": "coinbase"}),
        "sub not the key": token(PRIVATE, clock, ACCOUNTS, claims={"sub": "someone"}),
        "no nonce": token(PRIVATE, clock, ACCOUNTS, headers={"nonce": ""}),
    }


@pytest.mark.parametrize(
    "case",
    [
        "bad signature", "unknown key", "expired", "expiring at once", "not valid yet",
        "lives too long", "wrong uri path", "wrong uri method", "wrong uri host",
        "uri with query", "wrong issuer", "sub not the key", "no nonce",
    ],
)  # fmt: skip
async def test_a_token_coinbase_would_refuse_is_401(
    clock: FakeClock, sleep: RecordingSleep, case: str
) -> None:
    answer = await _get(clock, sleep, f"Bearer {_bad_tokens(clock)[case]}")
    assert (answer.status_code, answer.text) == (401, "Unauthorized\n"), case


async def test_the_legacy_coinbase_cloud_issuer_is_served(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    """Coinbase's docs signed with ``iss`` "coinbase-cloud" and ``aud``
    ["retail_rest_api_proxy"] until 2024; Coinbase still takes such tokens (ccxt sends
    them)."""
    now = int(clock().timestamp())
    legacy = {"iss": "coinbase-cloud", "aud": ["retail_rest_api_proxy"], "iat": now}
    answer = await _get(clock, sleep, f"Bearer {token(PRIVATE, clock, ACCOUNTS, claims=legacy)}")
    assert answer.status_code == 200


async def test_a_token_without_uri_is_401(clock: FakeClock, sleep: RecordingSleep) -> None:
    """A WebSocket JWT (no ``uri``) does not open REST."""
    now = int(clock().timestamp())
    key = serialization.load_pem_private_key(PRIVATE.encode(), password=None)
    claims = {"sub": "organizations/org-paper/apiKeys/key-1", "iss": "cdp", "nbf": now,
              "exp": now + 120}  # fmt: skip
    headers = {"kid": claims["sub"], "nonce": "abc"}
    bare = jwt.encode(claims, key, algorithm="ES256", headers=headers)  # type: ignore[arg-type]
    answer = await _get(clock, sleep, f"Bearer {bare}")
    assert answer.status_code == 401


async def test_a_key_sees_only_its_own_orders(clock: FakeClock, sleep: RecordingSleep) -> None:
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        placed = await api.place("mine", {"market_market_ioc": {"base_size": "0.001"}})
        order_id = placed["success_response"]["order_id"]
        other = Signer(api.client, clock, OTHER_NAME, OTHER_PRIVATE)
        theirs = await other.send("GET", f"/orders/historical/{order_id}")
        listed = await other.ok("GET", "/orders/historical/batch")
    assert theirs.status_code == 404
    assert listed["orders"] == []


async def test_a_key_registered_at_run_time_is_served(
    clock: FakeClock, sleep: RecordingSleep
) -> None:
    private, public = new_key()
    sim = make_coinbase_sim(clock, sleep)
    async with coinbase_client(sim, clock) as api:
        added = await api.client.post(
            "/_sim/coinbase/accounts",
            json={"name": "late-key", "public_key": public, "balances": {"USD": "500"}},
        )
        refused = await api.client.post(
            "/_sim/coinbase/accounts", json={"name": "bad", "public_key": private}
        )
        late = Signer(api.client, clock, "late-key", private)
        accounts = await late.ok("GET", "/accounts")
        await api.client.post("/_sim/reset")
        after_reset = await late.send("GET", "/accounts")
    assert added.json() == {"name": "late-key", "balances": {"USD": "500"}}
    assert refused.status_code == 422
    assert "'bad'" in refused.json()["message"]
    assert "PRIVATE" not in refused.text
    usd = next(a for a in accounts["accounts"] if a["currency"] == "USD")
    assert usd["available_balance"] == {"value": "500", "currency": "USD"}
    assert after_reset.status_code == 200
