"""Build a broker adapter for an account; credentials come from the environment only."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from brokers import alpaca_rules
from brokers.alpaca import AlpacaBroker, RateLimitInfo
from brokers.base import BrokerAdapter, RequestObserver
from models.enums import BrokerKind, OrderClass, OrderType, TimeInForce


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

    gate: Callable[[], None] | None = None
    observer: Callable[[RateLimitInfo], None] | None = None
    on_request: RequestObserver | None = None  # every HTTP attempt, for metrics


NO_HOOKS = RateLimitHooks()


def make_adapter(
    *, account: str, broker: BrokerKind, base_url: str, credentials_env: str, timeout_s: float,
    max_attempts: int, max_retry_wait_s: float, hooks: RateLimitHooks = NO_HOOKS,
) -> BrokerAdapter:  # fmt: skip
    key_id, secret_key = credentials(account, credentials_env)
    if broker is BrokerKind.ALPACA:
        return AlpacaBroker.from_url(
            base_url, key_id=key_id, secret_key=secret_key, timeout_s=timeout_s,
            max_attempts=max_attempts, max_retry_wait_s=max_retry_wait_s, gate=hooks.gate,
            observer=hooks.observer, on_request=hooks.on_request,
        )  # fmt: skip
    raise ValueError(f"no adapter for broker kind {broker!r}")


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
}
_TERMS_PROBLEM: dict[
    BrokerKind, Callable[[str, OrderType, TimeInForce, OrderClass], str | None]
] = {BrokerKind.ALPACA: alpaca_rules.terms_problem}


def default_time_in_force(broker: BrokerKind, symbol: str) -> TimeInForce:
    """What an order that names no time in force gets at this broker."""
    rule = _DEFAULT_TIME_IN_FORCE.get(broker)
    return TimeInForce.DAY if rule is None else rule(symbol)


def terms_problem(
    broker: BrokerKind, symbol: str, order_type: OrderType, time_in_force: TimeInForce,
    order_class: OrderClass,
) -> str | None:  # fmt: skip
    """Why this broker would refuse the order's terms outright, or None."""
    rule = _TERMS_PROBLEM.get(broker)
    return None if rule is None else rule(symbol, order_type, time_in_force, order_class)
