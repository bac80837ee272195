"""Coinbase Advanced Trade request signing: a fresh ES256 JWT for every request.

Follows coinbase-advanced-py's ``jwt_generator.py`` (header ``kid`` and a random ``nonce``,
claims ``sub``/``nbf``/``exp``/``uri``) with the CDP key values the docs give: ``iss`` "cdp"
and a 120 s lifetime. The SDK still writes ``iss`` "coinbase-cloud" and an ``aud`` claim,
which the CDP docs no longer show; Coinbase accepts either [U: not checked live].
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Generator

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

JWT_LIFETIME_S = 120
API_HOST = "api.coinbase.com"


class InvalidKey(ValueError):
    """The private key is not a PEM EC key; the message never contains the key."""


def load_private_key(private_key_pem: str) -> EllipticCurvePrivateKey:
    """The EC key the JWTs are signed with; PEM text as Coinbase hands it out, or with its
    line breaks written as ``\\n`` (as in Coinbase's key file, pasted into an env var)."""
    if "\\n" in private_key_pem and "\n" not in private_key_pem.strip():
        private_key_pem = private_key_pem.replace("\\n", "\n")
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise InvalidKey("private_key_pem is not a PEM private key") from None
    if not isinstance(key, EllipticCurvePrivateKey):
        raise InvalidKey("private_key_pem is not an EC (ES256) private key")
    return key


def request_uri(method: str, path: str, host: str = API_HOST) -> str:
    """The ``uri`` claim: method, host and path without the query string."""
    return f"{method.upper()} {host}{path}"


def build_jwt(key_name: str, key: EllipticCurvePrivateKey, uri: str | None, now_s: int) -> str:
    """One JWT for one request (``uri`` None: for a WebSocket subscription, which has no
    ``uri`` claim); the nonce makes every token distinct."""
    claims: dict[str, object] = {
        "sub": key_name,
        "iss": "cdp",
        "nbf": now_s,
        "exp": now_s + JWT_LIFETIME_S,
    }
    if uri is not None:
        claims["uri"] = uri
    headers = {"kid": key_name, "nonce": secrets.token_hex()}
    return jwt.encode(claims, key, algorithm="ES256", headers=headers)


class JwtAuth(httpx.Auth):
    """Signs each request (and each retry) with its own JWT; its repr shows the key name only."""

    def __init__(self, key_name: str, private_key_pem: str, clock_s: Callable[[], int]) -> None:
        self._key_name = key_name
        self._key = load_private_key(private_key_pem)
        self._clock_s = clock_s

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # The claim names the host the request goes to: api.coinbase.com in production, the
        # paper exchange's host and port in tests, so either side can check the signature.
        uri = request_uri(request.method, request.url.path, request.url.netloc.decode())
        token = build_jwt(self._key_name, self._key, uri, self._clock_s())
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def __repr__(self) -> str:
        return f"JwtAuth(key_name={self._key_name!r})"
