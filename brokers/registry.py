"""Build a broker adapter for an account; credentials come from the environment only."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypedDict

from brokers.alpaca import rules as alpaca_rules
from brokers.alpaca.adapter import AlpacaBroker
from brokers.alpaca.stream import AlpacaStream
from brokers.alpaca.stream import stream_url as alpaca_stream_url
from brokers.base import BrokerAdapter, OrderStream, RateLimitInfo, RequestObserver
from brokers.binance import rules as binance_rules
from brokers.binance.adapter import BinanceBroker
from brokers.binance.stream import BinanceStream, ExchangeInfoAssets
from brokers.binance.stream import stream_url as binance_stream_url
from brokers.coinbase import rules as coinbase_rules
from brokers.coinbase.adapter import CoinbaseBroker
from brokers.coinbase.stream import CoinbaseStream
from brokers.coinbase.stream import stream_url as coinbase_stream_url
from brokers.oanda import rules as oanda_rules
from brokers.oanda.adapter import OandaBroker
from brokers.oanda.stream import OandaStream
from brokers.tradier import rules as tradier_rules
from brokers.tradier.adapter import TradierBroker
from brokers.tradier.stream import TradierStream
from brokers.tradier.stream import stream_url as tradier_stream_url
from core.enums import BrokerKind, Intent, OrderClass, OrderType, TimeInForce


class CredentialsMissing(RuntimeError):
    """The account names environment variables that are not set."""

    def __init__(self, account: str, variables: list[str]) -> None:
        self.account = account
        self.variables = variables
        super().__init__(f"account {account!r}: set {', '.join(variables)} in the environment")


def credentials(account: str, credentials_env: str) -> tuple[str, str]:
    names = [f"{credentials_env}_KEY_ID", f"{credentials_env}_SECRET_KEY"]
    values = [os.environ.get(name, "") for name in names]
    missing = [name for name, value in zip(names, values, strict=True) if not value]
    if missing:
        raise CredentialsMissing(account, missing)
    return values[0], values[1]


@dataclass(frozen=True, slots=True)
class RateLimitHooks:
    """What a shared budget hangs on an adapter (adapters stay free of Redis): ``gate`` runs
    before every HTTP attempt, ``observer`` sees every answer's rate-limit headers."""

    gate: Callable[[int], None] | None = None  # told each request's weight
    observer: Callable[[RateLimitInfo], None] | None = None
    on_request: RequestObserver | None = None  # every HTTP attempt, for metrics


NO_HOOKS = RateLimitHooks()


class _Options(TypedDict):
    """What every adapter's ``from_url`` takes besides its URL and credentials."""

    timeout_s: float
    max_attempts: int
    max_retry_wait_s: float
    gate: Callable[[int], None] | None
    observer: Callable[[RateLimitInfo], None] | None
    on_request: RequestObserver | None


def make_adapter(
    *, account: str, broker: BrokerKind, base_url: str, credentials_env: str, timeout_s: float,
    max_attempts: int, max_retry_wait_s: float, hooks: RateLimitHooks = NO_HOOKS,
) -> BrokerAdapter:  # fmt: skip
    key_id, secret_key = credentials(account, credentials_env)
    options = _Options(timeout_s=timeout_s, max_attempts=max_attempts,
                       max_retry_wait_s=max_retry_wait_s, gate=hooks.gate,
                       observer=hooks.observer, on_request=hooks.on_request)  # fmt: skip
    if broker is BrokerKind.ALPACA:
        return AlpacaBroker.from_url(base_url, key_id=key_id, secret_key=secret_key, **options)
    if broker is BrokerKind.BINANCE:
        return BinanceBroker.from_url(base_url, api_key=key_id, secret_key=secret_key, **options)
    if broker is BrokerKind.COINBASE:
        # The key's name and its EC private key (PEM), in the _KEY_ID and _SECRET_KEY slots.
        return CoinbaseBroker.from_url(base_url, key_name=key_id, private_key_pem=secret_key,
                                       **options)  # fmt: skip
    if broker is BrokerKind.OANDA:
        # The v20 account id (101-004-1234567-001) and its API token.
        return OandaBroker.from_url(base_url, account_id=key_id, token=secret_key, **options)
    if broker is BrokerKind.TRADIER:
        # The account number (VA000000) and the access token: the _KEY_ID and _SECRET_KEY slots.
        return TradierBroker.from_url(base_url, account_number=key_id, access_token=secret_key,
                                      **options)  # fmt: skip
    raise ValueError(f"no adapter for broker kind {broker!r}")


def connect_stream(
    *, account: str, broker: BrokerKind, base_url: str, credentials_env: str,
    sharing: Sequence[tuple[str, str]] = (),
) -> OrderStream:  # fmt: skip
    """An unopened connection to the account's order-update stream; ``sharing``: the
    (name, credentials_env) of other accounts it carries too (``stream_session_key``)."""
    key_id, secret_key = credentials(account, credentials_env)
    if sharing and broker is not BrokerKind.TRADIER:
        raise ValueError(f"a {broker.value} stream carries one account")
    if broker is BrokerKind.ALPACA:
        return AlpacaStream(alpaca_stream_url(base_url), key_id, secret_key)
    if broker is BrokerKind.COINBASE:
        return CoinbaseStream(coinbase_stream_url(base_url), key_id, secret_key)
    if broker is BrokerKind.BINANCE:
        return BinanceStream(binance_stream_url(base_url), key_id, secret_key,
                             symbol_assets=ExchangeInfoAssets(base_url))  # fmt: skip
    if broker is BrokerKind.TRADIER:  # the account number and the token, as make_adapter's
        numbers = {key_id: account}
        numbers.update((credentials(name, env)[0], name) for name, env in sharing)
        return TradierStream(tradier_stream_url(base_url), base_url, secret_key,
                             accounts=numbers)  # fmt: skip
    if broker is BrokerKind.OANDA:  # the account id and token, as make_adapter reads them
        return OandaStream.from_url(base_url, account_id=key_id, token=secret_key)
    raise ValueError(f"no stream for broker kind {broker!r}")


def stream_session_key(broker: BrokerKind, base_url: str, credentials_env: str) -> str | None:
    """What accounts whose streams must share one connection have in common, or None (a
    connection of its own). Tradier keeps one events session per token, a new one ending
    the last: its accounts of one token and host share one (the key a digest, no secret)."""
    token = os.environ.get(f"{credentials_env}_SECRET_KEY", "")
    if broker is not BrokerKind.TRADIER or not token:
        return None
    seed = f"{tradier_stream_url(base_url)}\n{token}".encode()
    return hashlib.sha256(seed).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class AccountConnection:
    """What it takes to reach one account's broker; secrets stay in the environment."""

    account: str
    broker: BrokerKind
    base_url: str
    credentials_env: str
    account_id: str
    rate_limit_per_min: int  # the broker's documented limit; sizes the account's budget


class AdapterCache:
    """One adapter (one pooled HTTP client) per account per process: keep-alive matters.

    ``hooks`` gives each new adapter its account's rate-limit gate and observer.
    """

    def __init__(
        self, *, timeout_s: float, max_attempts: int, max_retry_wait_s: float,
        hooks: Callable[[AccountConnection], RateLimitHooks] | None = None,
    ) -> None:  # fmt: skip
        self._options = (timeout_s, max_attempts, max_retry_wait_s)
        self._hooks = hooks
        self._adapters: dict[AccountConnection, BrokerAdapter] = {}
        self._lock = threading.Lock()

    def for_account(self, connection: AccountConnection) -> BrokerAdapter:
        with self._lock:
            adapter = self._adapters.get(connection)
            if adapter is None:
                timeout_s, max_attempts, max_retry_wait_s = self._options
                adapter = make_adapter(
                    account=connection.account, broker=connection.broker,
                    base_url=connection.base_url, credentials_env=connection.credentials_env,
                    timeout_s=timeout_s, max_attempts=max_attempts,
                    max_retry_wait_s=max_retry_wait_s,
                    hooks=NO_HOOKS if self._hooks is None else self._hooks(connection),
                )  # fmt: skip
                self._adapters[connection] = adapter
            return adapter

    def close(self) -> None:
        with self._lock:
            adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            adapter.close()


# Each broker's own rules on terms, where it has any (pure functions of the terms).
_DEFAULT_TIME_IN_FORCE: dict[BrokerKind, Callable[[str], TimeInForce]] = {
    BrokerKind.ALPACA: alpaca_rules.default_time_in_force,
    BrokerKind.BINANCE: binance_rules.default_time_in_force,
    BrokerKind.COINBASE: coinbase_rules.default_time_in_force,
    BrokerKind.OANDA: oanda_rules.default_time_in_force,
    BrokerKind.TRADIER: tradier_rules.default_time_in_force,
}


class TermsRule(Protocol):
    def __call__(
        self, symbol: str, order_type: OrderType, time_in_force: TimeInForce,
        order_class: OrderClass, *, quantity: Decimal | None, notional: Decimal | None,
        intent: Intent | None,
    ) -> str | None: ...  # fmt: skip


_TERMS_PROBLEM: dict[BrokerKind, TermsRule] = {
    BrokerKind.ALPACA: alpaca_rules.terms_problem,
    BrokerKind.BINANCE: binance_rules.terms_problem,
    BrokerKind.COINBASE: coinbase_rules.terms_problem,
    BrokerKind.OANDA: oanda_rules.terms_problem,
    BrokerKind.TRADIER: tradier_rules.terms_problem,
}


def default_time_in_force(broker: BrokerKind, symbol: str) -> TimeInForce:
    """What an order that names no time in force gets at this broker."""
    rule = _DEFAULT_TIME_IN_FORCE.get(broker)
    return TimeInForce.DAY if rule is None else rule(symbol)


def terms_problem(
    broker: BrokerKind, symbol: str, order_type: OrderType, time_in_force: TimeInForce,
    order_class: OrderClass, *, quantity: Decimal | None = None,
    notional: Decimal | None = None, intent: Intent | None = None,
) -> str | None:  # fmt: skip
    """Why this broker would refuse the order's terms outright (a quantity, or a notional
    amount of money; an intent where its sides need one), or None."""
    rule = _TERMS_PROBLEM.get(broker)
    if rule is None:
        return None
    return rule(symbol, order_type, time_in_force, order_class, quantity=quantity,
                notional=notional, intent=intent)  # fmt: skip


def sides_say_open_or_close(broker: BrokerKind) -> bool:
    """Whether the broker's side words say whether an order opens or closes a position
    (Tradier's ``sell_short``, ``buy_to_close``...), so placing needs the position held."""
    return broker is BrokerKind.TRADIER


def fees_in_asset(broker: BrokerKind, symbol: str) -> bool:
    """Whether this broker takes a buy's fee in the asset bought and posts it later."""
    return broker is BrokerKind.ALPACA and alpaca_rules.is_crypto(symbol)


# Each broker's documented request limit per minute, in request weight where it weighs them:
# Alpaca 200 requests, Binance Spot 6000 weight, Coinbase Advanced Trade 30 requests a second,
# Tradier 120 a minute (its standard bucket in production), OANDA 100 a second.
_RATE_LIMIT_PER_MIN = {
    BrokerKind.ALPACA: 200, BrokerKind.BINANCE: 6000, BrokerKind.COINBASE: 1800,
    BrokerKind.TRADIER: 120, BrokerKind.OANDA: 6000,
}  # fmt: skip


def default_rate_limit_per_min(broker: BrokerKind) -> int:
    """A new account's budget when its operator names none."""
    return _RATE_LIMIT_PER_MIN[broker]
