"""JWT authentication as Coinbase's CDP keys demand: every request carries
``Authorization: Bearer <JWT>``, signed (ES256, or EdDSA for an Ed25519 key) by the key
registered under the header's ``kid``, with a ``nonce``, claims ``sub`` (the key name),
``iss`` "cdp" (or "coinbase-cloud", the issuer Coinbase's docs gave until 2024, which it
still takes and ccxt still sends), ``nbf`` and ``exp`` (at most 120 s ahead), and ``uri``
naming this very request: ``"{METHOD} {host}{path}"``, the host as the request addressed it
(what coinbase-advanced-py, ccxt and ordersync's client write) and the path without its
query. A WebSocket subscription's JWT is checked the same way, without ``uri``. Anything
else is refused (401 ``Unauthorized``; on the WebSocket, ``authentication failure``),
without saying why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from brokers.coinbase.paper.errors import Unauthorized

PublicKey = EllipticCurvePublicKey | Ed25519PublicKey
MAX_LIFETIME_S = 120
ISSUERS = frozenset({"cdp", "coinbase-cloud"})


class InvalidPublicKey(ValueError):
    """Not a PEM public key Coinbase signs with (EC P-256 or Ed25519)."""


def load_public_key(pem: str) -> PublicKey:
    """A registered key's public half; a private key is refused (the exchange never holds
    one)."""
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError):
        raise InvalidPublicKey("not a PEM public key") from None
    if isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP256R1):
        return key
    if isinstance(key, Ed25519PublicKey):
        return key
    raise InvalidPublicKey("not an EC P-256 or Ed25519 public key")


def _algorithm(key: PublicKey) -> str:
    return "EdDSA" if isinstance(key, Ed25519PublicKey) else "ES256"


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("no Bearer token")
    return token.strip()


def authenticate(
    authorization: str | None,
    method: str,
    host: str,
    path: str,
    keys: Mapping[str, PublicKey],
    now_s: float,
) -> str:
    """The key name whose JWT this request carries, or ``Unauthorized``."""
    return verify(_bearer(authorization), keys, now_s, f"{method.upper()} {host}{path}")


def verify(token: str, keys: Mapping[str, PublicKey], now_s: float, uri: str | None) -> str:
    """The key name that signed ``token``, or ``Unauthorized``. ``uri`` None: a WebSocket
    subscription's JWT, which names no request and so must carry no ``uri`` claim [U: that
    Coinbase refuses one that does is not documented; its docs say WebSocket JWTs are not
    built with a request method or path]."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("not a JWT") from None
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        raise Unauthorized("unknown key")
    key = keys[kid]
    nonce = header.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        raise Unauthorized("no nonce")
    required = ["sub", "iss", "nbf", "exp"] + ([] if uri is None else ["uri"])
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[_algorithm(key)],
            options={
                "require": required,
                "verify_exp": False,  # checked below against the exchange's clock
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"rejected: {type(exc).__name__}") from None
    _check_claims(claims, kid, uri, now_s)
    return kid


def _check_claims(claims: Mapping[str, Any], kid: str, uri: str | None, now_s: float) -> None:
    if claims.get("sub") != kid:
        raise Unauthorized("sub is not the key name")
    if claims.get("iss") not in ISSUERS:
        raise Unauthorized("iss is neither cdp nor coinbase-cloud")
    nbf, exp = _seconds(claims, "nbf"), _seconds(claims, "exp")
    if nbf > now_s:
        raise Unauthorized("not valid yet")
    if exp <= now_s:
        raise Unauthorized("expired")
    if exp > now_s + MAX_LIFETIME_S:
        raise Unauthorized("lives longer than 120 s")
    if uri is None and "uri" in claims:
        raise Unauthorized("a WebSocket JWT names no request (uri)")
    if uri is not None and claims.get("uri") != uri:
        raise Unauthorized("uri does not name this request")


def _seconds(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthorized(f"{name} is not a number")
    return float(value)
