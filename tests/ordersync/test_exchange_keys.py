"""The key pairs the stack makes for its accounts, and how the paper exchange learns them:
a Coinbase key's public half reaches the exchange, its private half only ordersync."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from brokers.coinbase.auth import build_jwt, load_private_key, request_uri
from brokers.coinbase.paper.auth import authenticate, load_public_key
from brokers.coinbase.paper.errors import Unauthorized
from brokers.paper.cli import parse_coinbase_keys
from core.enums import BrokerKind
from ordersync.exchange_keys import exchange_accounts_env, new_key_pairs

NOW_S = 1_767_627_000
HOST = "127.0.0.1:8765"
PATH = "/api/v3/brokerage/orders"


def test_coinbase_accounts_get_cdp_key_names_and_ec_private_keys() -> None:
    pairs = new_key_pairs(BrokerKind.COINBASE, ["bench-1", "bench-2"])
    assert set(pairs) == {"bench-1", "bench-2"}
    names = [name for name, _ in pairs.values()]
    assert len(set(names)) == 2
    for name, private in pairs.values():
        assert name.startswith("organizations/ordersync-paper/apiKeys/")
        assert private.startswith("-----BEGIN EC PRIVATE KEY-----")  # as Coinbase hands it out
        load_private_key(private)  # what ordersync's adapter signs with


def test_other_venues_get_shared_secrets() -> None:
    (key, secret), *_ = new_key_pairs(BrokerKind.BINANCE, ["b"]).values()
    assert len(key) == 24
    assert len(secret) == 48


def test_the_exchange_gets_each_coinbase_keys_public_half_and_checks_its_signatures(
    tmp_path: Path,
) -> None:
    pairs = list(new_key_pairs(BrokerKind.COINBASE, ["a", "b"]).values())
    env = exchange_accounts_env(BrokerKind.COINBASE, pairs, tmp_path / "keys")
    registered = dict(parse_coinbase_keys(env["ORDERSYNC_SIM_COINBASE_ACCOUNTS"]))
    assert list(registered) == [name for name, _ in pairs]
    for path in (tmp_path / "keys").iterdir():
        assert "PRIVATE" not in path.read_text()
    keys = {name: load_public_key(pem) for name, pem in registered.items()}
    (first, first_private), (second, _) = pairs
    uri = request_uri("POST", PATH, HOST)
    token = build_jwt(first, load_private_key(first_private), uri, NOW_S)
    assert authenticate(f"Bearer {token}", "POST", HOST, PATH, keys, NOW_S) == first
    forged = build_jwt(second, load_private_key(first_private), uri, NOW_S)
    with pytest.raises(Unauthorized):
        authenticate(f"Bearer {forged}", "POST", HOST, PATH, keys, NOW_S)


def test_tradier_and_oanda_accounts_are_numbers_with_tokens_bound_to_them(tmp_path: Path) -> None:
    for kind, variable, shape in (
        (BrokerKind.TRADIER, "ORDERSYNC_SIM_TRADIER_ACCOUNTS", r"VA\d{8}"),
        (BrokerKind.OANDA, "ORDERSYNC_SIM_OANDA_ACCOUNTS", r"101-004-\d{7}-001"),
    ):
        pairs = new_key_pairs(kind, ["a", "b"])
        assert all(re.fullmatch(shape, number) for number, _ in pairs.values())
        assert len({number for number, _ in pairs.values()}) == 2
        env = exchange_accounts_env(kind, list(pairs.values()), tmp_path)
        assert env == {variable: ",".join(f"{n}:{t}" for n, t in pairs.values())}
