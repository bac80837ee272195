"""The JWT signed for each Coinbase request, checked with the key's public half."""

from __future__ import annotations

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from brokers.coinbase.auth import JWT_LIFETIME_S, InvalidKey, JwtAuth, build_jwt, load_private_key

KEY_NAME = "organizations/org-1/apiKeys/key-1"
NOW_S = 1_764_842_400  # 2025-12-04T10:00:00Z


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "BEGIN EC PRIVATE KEY", as Coinbase's
        serialization.NoEncryption(),
    ).decode()


def _verify(token: str, key: ec.EllipticCurvePrivateKey, now_s: int = NOW_S) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(
        token,
        key.public_key(),
        algorithms=["ES256"],
        options={"verify_exp": False, "verify_nbf": False},
    )
    return decoded


def test_header_names_the_key_and_carries_a_nonce(key: ec.EllipticCurvePrivateKey) -> None:
    token = build_jwt(KEY_NAME, key, "GET api.coinbase.com/api/v3/brokerage/accounts", NOW_S)

    header = jwt.get_unverified_header(token)

    assert header["alg"] == "ES256"
    assert header["kid"] == KEY_NAME
    assert isinstance(header["nonce"], str)
    assert len(header["nonce"]) >= 32


def test_claims_subject_issuer_times_and_uri(key: ec.EllipticCurvePrivateKey) -> None:
    uri = "POST api.coinbase.com/api/v3/brokerage/orders"

    claims = _verify(build_jwt(KEY_NAME, key, uri, NOW_S), key)

    assert claims == {
        "sub": KEY_NAME,
        "iss": "cdp",
        "nbf": NOW_S,
        "exp": NOW_S + 120,
        "uri": uri,
    }
    assert JWT_LIFETIME_S == 120


def test_token_is_refused_once_expired(key: ec.EllipticCurvePrivateKey) -> None:
    token = build_jwt(KEY_NAME, key, "GET api.coinbase.com/x", NOW_S - 121)

    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, key.public_key(), algorithms=["ES256"])


def test_a_fresh_nonce_each_call(key: ec.EllipticCurvePrivateKey) -> None:
    tokens = [build_jwt(KEY_NAME, key, "GET api.coinbase.com/x", NOW_S) for _ in range(5)]

    nonces = {jwt.get_unverified_header(token)["nonce"] for token in tokens}

    assert len(nonces) == 5


def test_each_request_gets_its_own_bearer_token_for_its_method_and_path(
    key: ec.EllipticCurvePrivateKey, pem: str
) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={})

    auth = JwtAuth(KEY_NAME, pem, lambda: NOW_S)
    with httpx.Client(
        base_url="https://api.coinbase.com", transport=httpx.MockTransport(handler)
    ) as c:
        c.get("/api/v3/brokerage/orders/historical/batch", params={"limit": "5"}, auth=auth)
        c.post("/api/v3/brokerage/orders", json={}, auth=auth)

    assert all(value.startswith("Bearer ") for value in seen)
    uris = [_verify(value.removeprefix("Bearer "), key)["uri"] for value in seen]
    assert uris == [
        "GET api.coinbase.com/api/v3/brokerage/orders/historical/batch",  # no query string
        "POST api.coinbase.com/api/v3/brokerage/orders",
    ]
    assert seen[0] != seen[1]


def test_the_key_never_shows_in_repr_or_errors(pem: str) -> None:
    auth = JwtAuth(KEY_NAME, pem, lambda: NOW_S)

    assert "PRIVATE" not in repr(auth)
    assert KEY_NAME in repr(auth)
    broken = pem.replace("A", "B", 3)[:-40]
    with pytest.raises(InvalidKey) as caught:
        load_private_key(broken)
    assert broken[40:80] not in str(caught.value)


def test_a_key_with_escaped_line_breaks_is_read(key: ec.EllipticCurvePrivateKey, pem: str) -> None:
    escaped = pem.strip().replace("\n", "\\n")

    loaded = load_private_key(escaped)

    assert loaded.private_numbers() == key.private_numbers()


def test_uri_names_the_host_the_request_goes_to(key: ec.EllipticCurvePrivateKey, pem: str) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"].removeprefix("Bearer "))
        return httpx.Response(200, json={})

    auth = JwtAuth(KEY_NAME, pem, lambda: NOW_S)
    transport = httpx.MockTransport(handler)
    with httpx.Client(base_url="http://127.0.0.1:8765", transport=transport) as client:
        client.get("/api/v3/brokerage/accounts", auth=auth)

    assert _verify(seen[0], key)["uri"] == "GET 127.0.0.1:8765/api/v3/brokerage/accounts"


def test_a_non_ec_key_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )

    with pytest.raises(InvalidKey, match="not an EC"):
        load_private_key(pem)
