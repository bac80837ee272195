"""The registry: each broker kind's adapter, built from the account's environment
variables, and each broker's rules on terms before anything is written."""

from __future__ import annotations

from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from brokers import registry
from brokers.alpaca.adapter import AlpacaBroker
from brokers.binance.adapter import BinanceBroker
from brokers.coinbase.adapter import CoinbaseBroker
from core.enums import BrokerKind, OrderClass, OrderType, TimeInForce


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize(
    ("kind", "adapter", "secret"),
    [
        (BrokerKind.ALPACA, AlpacaBroker, "s3cret"),
        (BrokerKind.BINANCE, BinanceBroker, "s3cret"),
        (BrokerKind.COINBASE, CoinbaseBroker, _pem()),
    ],
)
def test_each_broker_kind_has_its_adapter_built_from_the_environment(
    kind: BrokerKind, adapter: type, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCT_KEY_ID", "key-1")
    monkeypatch.setenv("ACCT_SECRET_KEY", secret)
    built = registry.make_adapter(account="a", broker=kind, base_url="http://127.0.0.1:9",
                                  credentials_env="ACCT", timeout_s=1, max_attempts=1,
                                  max_retry_wait_s=1)  # fmt: skip
    try:
        assert isinstance(built, adapter)
        assert built.kind == kind.value
        assert secret not in repr(built)
    finally:
        built.close()


def test_an_account_without_its_variables_is_refused_naming_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NONE_KEY_ID", raising=False)
    monkeypatch.delenv("NONE_SECRET_KEY", raising=False)
    with pytest.raises(registry.CredentialsMissing, match="NONE_KEY_ID, NONE_SECRET_KEY"):
        registry.make_adapter(account="a", broker=BrokerKind.BINANCE, base_url="http://x",
                              credentials_env="NONE", timeout_s=1, max_attempts=1,
                              max_retry_wait_s=1)  # fmt: skip


@pytest.mark.parametrize("kind", [BrokerKind.BINANCE, BrokerKind.COINBASE])
def test_crypto_venues_default_to_good_till_canceled(kind: BrokerKind) -> None:
    assert registry.default_time_in_force(kind, "BTCUSDT") is TimeInForce.GTC


@pytest.mark.parametrize(
    ("kind", "order_type", "tif", "order_class", "notional", "problem"),
    [
        (BrokerKind.BINANCE, OrderType.LIMIT, TimeInForce.GTC, OrderClass.SIMPLE, None, None),
        (BrokerKind.BINANCE, OrderType.MARKET, TimeInForce.DAY, OrderClass.SIMPLE, None, None),
        (BrokerKind.BINANCE, OrderType.LIMIT, TimeInForce.DAY, OrderClass.SIMPLE, None,
         "gtc, ioc or fok, not day"),
        (BrokerKind.BINANCE, OrderType.LIMIT, TimeInForce.GTC, OrderClass.BRACKET, None,
         "no exit legs"),
        (BrokerKind.BINANCE, OrderType.TRAILING_STOP, TimeInForce.GTC, OrderClass.SIMPLE, None,
         "no trailing_stop orders"),
        (BrokerKind.BINANCE, OrderType.LIMIT, TimeInForce.GTC, OrderClass.SIMPLE, "100",
         "notional order must be market"),
        (BrokerKind.COINBASE, OrderType.LIMIT, TimeInForce.FOK, OrderClass.SIMPLE, None, None),
        (BrokerKind.COINBASE, OrderType.MARKET, TimeInForce.GTC, OrderClass.SIMPLE, "100", None),
        (BrokerKind.COINBASE, OrderType.LIMIT, TimeInForce.DAY, OrderClass.SIMPLE, None, "DAY"),
        (BrokerKind.COINBASE, OrderType.STOP, TimeInForce.GTC, OrderClass.SIMPLE, None,
         "order type stop is not supported"),
        (BrokerKind.COINBASE, OrderType.LIMIT, TimeInForce.GTC, OrderClass.OCO, None,
         "order class oco"),
    ],
)  # fmt: skip
def test_each_venue_refuses_the_terms_it_has_no_form_for_before_anything_is_written(
    kind: BrokerKind, order_type: OrderType, tif: TimeInForce, order_class: OrderClass,
    notional: str | None, problem: str | None,
) -> None:  # fmt: skip
    found = registry.terms_problem(
        kind, "BTC-USD" if kind is BrokerKind.COINBASE else "BTCUSDT", order_type, tif,
        order_class, quantity=None if notional else Decimal(1),
        notional=Decimal(notional) if notional else None,
    )  # fmt: skip
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_coinbase_reports_a_products_holding_under_its_base_currency() -> None:
    broker = CoinbaseBroker.from_url("http://127.0.0.1:9", key_name="k", private_key_pem=_pem())
    try:
        assert broker.positions_by_asset
        assert broker.holding_of("BTC-USD") == "BTC"
    finally:
        broker.close()
