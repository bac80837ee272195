"""The key pairs the stack makes for its accounts at a paper exchange it starts, and the
exchange's environment that makes them accounts of the venue: Alpaca and Binance keys are
shared secrets, a Coinbase key is a name and an EC key pair of which the exchange gets only
the public half (as Coinbase registers a CDP key), a Tradier or OANDA account is an account
number or id with the access token bound to it."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.enums import BrokerKind

# The organization in the names of the stack's Coinbase keys (organizations/<org>/apiKeys/<id>).
COINBASE_ORGANIZATION = "ordersync-paper"
# Tradier's account numbers (VA00000000) and OANDA's v20 account ids (101-004-1234567-001).
ACCOUNT_IDS = {BrokerKind.TRADIER: "VA{:08d}", BrokerKind.OANDA: "101-004-{:07d}-001"}


class ExchangeKeysError(RuntimeError):
    """The paper exchange has no accounts of this venue to start with."""


def new_key_pairs(broker: BrokerKind, names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """A fresh (key id, secret) per account, as the venue's adapter reads them from the
    account's ``_KEY_ID`` and ``_SECRET_KEY`` slots."""
    if broker is BrokerKind.COINBASE:
        return {name: coinbase_key_pair() for name in names}
    if broker in ACCOUNT_IDS:  # an account number or id (distinct), and its token
        first = secrets.randbelow(10**6)
        return {name: (ACCOUNT_IDS[broker].format(first + n), secrets.token_hex(24))
                for n, name in enumerate(names)}  # fmt: skip
    return {name: (secrets.token_hex(12), secrets.token_hex(24)) for name in names}


def coinbase_key_pair() -> tuple[str, str]:
    """A CDP key as Coinbase hands one out: its name and its P-256 private key, PEM (SEC1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return f"organizations/{COINBASE_ORGANIZATION}/apiKeys/{uuid.uuid4()}", private


def public_pem(private_pem: str) -> str:
    """The public half of a PEM EC private key, as PEM."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ExchangeKeysError("not an EC private key")
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def exchange_accounts_env(
    broker: BrokerKind, pairs: list[tuple[str, str]], key_dir: Path
) -> dict[str, str]:
    """The paper exchange's environment that makes these key pairs accounts of the venue;
    Coinbase's public keys are written to ``key_dir`` (the exchange reads them from files)."""
    joined = ",".join(f"{key}:{secret}" for key, secret in pairs)
    if broker is BrokerKind.BINANCE:
        return {"ORDERSYNC_SIM_BINANCE_ACCOUNTS": joined}
    if broker is BrokerKind.COINBASE:
        return {"ORDERSYNC_SIM_COINBASE_ACCOUNTS": coinbase_accounts(pairs, key_dir)}
    if broker is BrokerKind.TRADIER:
        return {"ORDERSYNC_SIM_TRADIER_ACCOUNTS": joined}
    if broker is BrokerKind.OANDA:
        return {"ORDERSYNC_SIM_OANDA_ACCOUNTS": joined}
    if broker is not BrokerKind.ALPACA:
        raise ExchangeKeysError(f"the paper exchange has no {broker.value} accounts to start")
    (first_key, first_secret), *more = pairs
    return {
        "ORDERSYNC_SIM_KEY_ID": first_key,
        "ORDERSYNC_SIM_SECRET_KEY": first_secret,
        "ORDERSYNC_SIM_ACCOUNTS": ",".join(f"{key}:{secret}" for key, secret in more),
    }


def coinbase_accounts(pairs: list[tuple[str, str]], key_dir: Path) -> str:
    """``--coinbase-accounts``: NAME=PUBLIC_KEY_FILE per key, each public key written to a
    file of its own in ``key_dir`` (the private keys stay in memory)."""
    key_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for number, (name, private) in enumerate(pairs, start=1):
        path = key_dir / f"key-{number}.pub.pem"
        path.write_text(public_pem(private))
        entries.append(f"{name}={path}")
    return ",".join(entries)
