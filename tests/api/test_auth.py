"""Keys: a missing, wrong, malformed or revoked key is 401; a key in the URL is refused even
when the header is right; failures are counted per address and per key id: past the
limit an address waits out the window (429) even with a valid key, and further guesses at
a key id wait too (its valid key never does); a key's use is recorded; no secret is
ever logged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.api_keys import ApiKey, revoke_key
from models.orders import Account
from tests.api.conftest import ADMIN_KEY, ApiWorld
from tests.api.fixtures import client_from

ORDERS = "/api/v1/accounts/alpha/orders"
ADDRESS_COUNTER = "ordersync:api:auth_failures:address:testclient"


def key_id(key: str) -> str:
    return key.split("_")[1]


def wrong_secret(key: str) -> str:
    """The same key id with another well-formed secret."""
    secret = key.rsplit("_", 1)[1]
    return key[: -len(secret)] + ("A" if secret[0] != "A" else "B") + secret[1:]


def test_a_request_without_a_key_is_401_with_www_authenticate(api: ApiWorld) -> None:
    for headers in [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}]:
        answer = api.client.get(ORDERS, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer <key>" in answer.json()["detail"]


def test_a_wrong_or_malformed_key_is_401(api: ApiWorld) -> None:
    key = api.keys["alpha"]
    for wrong in [
        wrong_secret(key),
        "osk_000000000000_" + key.rsplit("_", 1)[1],  # an unknown key id
        key[:-1],  # malformed
        key + "A",
        "not-a-key",
        ADMIN_KEY + "x",
        ADMIN_KEY[:-1],
    ]:
        answer = api.client.get(ORDERS, headers={"Authorization": f"Bearer {wrong}"})
        assert answer.status_code == 401, wrong
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.json() == {"detail": "invalid or revoked key"}


def test_a_revoked_key_is_401(api: ApiWorld) -> None:
    assert api.client.get(ORDERS, headers=api.auth("alpha")).status_code == 200
    with Session(api.engine) as session:
        account = session.scalars(select(Account).where(Account.name == "alpha")).one()
        assert revoke_key(session, account, key_id(api.keys["alpha"]), now=datetime.now(UTC))
        session.commit()
    answer = api.client.get(ORDERS, headers=api.auth("alpha"))
    assert answer.status_code == 401
    assert answer.json() == {"detail": "invalid or revoked key"}
    assert (
        api.client.get("/api/v1/accounts/beta/orders", headers=api.auth("beta")).status_code == 200
    )


def test_a_key_in_the_url_is_refused_even_with_a_valid_header(api: ApiWorld) -> None:
    for name in ["key", "api_key", "token", "access_token", "API_KEY", "apikey"]:
        for value in [api.keys["alpha"], ADMIN_KEY, "anything"]:
            answer = api.client.get(ORDERS, params={name: value}, headers=api.auth("alpha"))
            assert answer.status_code == 400, name
            assert "never in the URL" in answer.json()["detail"]
        assert api.client.get(ORDERS, params={name: api.keys["alpha"]}).status_code == 400
    # Refused before any key is checked: nothing counted as a failure.
    assert api.redis.get(ADDRESS_COUNTER) is None


def fail(api: ApiWorld, times: int, key: str = "osk_nothing") -> None:
    for _ in range(times):
        answer = api.client.get(ORDERS, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 401


def test_after_too_many_failures_from_an_address_even_a_valid_key_waits(api: ApiWorld) -> None:
    limit = api.settings.api_auth_failures_per_min
    assert limit == 10
    fail(api, limit - 1)
    assert api.client.get(ORDERS, headers=api.auth("alpha")).status_code == 200  # still under
    fail(api, 1)
    for headers in [api.auth("alpha"), api.admin, {"Authorization": "Bearer osk_nothing"}]:
        answer = api.client.get(ORDERS, headers=headers)
        assert answer.status_code == 429
        wait_s = int(answer.headers["Retry-After"])
        assert 1 <= wait_s <= 60
        assert f"try again in {wait_s} s" in answer.json()["detail"]
    # A refused request is not counted again (the window is not extended by the refusals).
    assert int(api.redis.get(ADDRESS_COUNTER) or 0) == limit
    # Another address is not held back.
    other = client_from(api, "192.0.2.7")
    assert other.get(ORDERS, headers=api.auth("alpha")).status_code == 200
    # The window passes (its counter expires): the valid key works again.
    assert 0 < api.redis.ttl(ADDRESS_COUNTER) <= 60
    api.redis.delete(ADDRESS_COUNTER)
    assert api.client.get(ORDERS, headers=api.auth("alpha")).status_code == 200


def test_failures_with_one_key_id_from_many_addresses_hold_its_guesses_back(
    api: ApiWorld,
) -> None:
    """Guesses at one key id from many addresses wait out the window; the key itself is
    never refused, or knowing a key's id would let anyone lock it out."""
    limit = api.settings.api_auth_failures_per_min
    guess = wrong_secret(api.keys["alpha"])
    for n in range(limit):  # each address stays under its own limit
        answer = client_from(api, f"192.0.2.{n + 1}").get(
            ORDERS, headers={"Authorization": f"Bearer {guess}"})  # fmt: skip
        assert answer.status_code == 401
    counter = f"ordersync:api:auth_failures:key:{key_id(api.keys['alpha'])}"
    assert int(api.redis.get(counter) or 0) == limit
    fresh = client_from(api, "198.51.100.1")
    answer = fresh.get(ORDERS, headers={"Authorization": f"Bearer {guess}"})
    assert answer.status_code == 429  # one more guess at that id, from anywhere
    assert "Retry-After" in answer.headers
    assert fresh.get(ORDERS, headers=api.auth("alpha")).status_code == 200  # the key works


def test_a_keys_use_is_recorded(api: ApiWorld) -> None:
    def last_used(account: str) -> datetime | None:
        with Session(api.engine) as session:
            found: datetime | None = session.scalar(
                select(ApiKey.last_used_at).where(ApiKey.key_id == key_id(api.keys[account]))
            )
            return found  # fmt: skip

    assert last_used("alpha") is None
    before = datetime.now(UTC)
    assert api.client.get(ORDERS, headers=api.auth("alpha")).status_code == 200
    used = last_used("alpha")
    assert used is not None
    assert before - timedelta(seconds=1) <= used <= datetime.now(UTC) + timedelta(seconds=1)
    assert last_used("beta") is None
    # A failed attempt with the key's id is no use.
    fail(api, 1, wrong_secret(api.keys["beta"]))
    assert last_used("beta") is None


def test_no_secret_reaches_the_logs(api: ApiWorld, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    alpha = api.keys["alpha"]
    secret = alpha.rsplit("_", 1)[1]
    guess = wrong_secret(alpha)
    api.client.get(ORDERS, headers=api.auth("alpha"))
    api.client.get(ORDERS, headers=api.admin)
    api.client.get(ORDERS, headers={"Authorization": f"Bearer {guess}"})
    api.client.get(ORDERS, headers={"Authorization": f"Bearer {ADMIN_KEY}x"})
    api.client.get(ORDERS, params={"key": alpha})
    fail(api, api.settings.api_auth_failures_per_min - 2)  # two failed above
    assert api.client.get(ORDERS, headers=api.auth("alpha")).status_code == 429
    # What the server side logged (httpx's lines are this test's own client, URL included).
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    text = "\n".join(f"{r.getMessage()} {r.args} {r.exc_text}" for r in server)
    assert "API authentication failed" in text  # the failures were logged...
    for leaked in (secret, guess.rsplit("_", 1)[1], ADMIN_KEY):
        assert leaked not in text  # ...without what was presented
