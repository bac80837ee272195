from __future__ import annotations

import pytest
from pydantic import ValidationError

from ordersync.settings import Settings


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERSYNC_DATABASE_URL", raising=False)
    monkeypatch.delenv("ORDERSYNC_REDIS_URL", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "sqlite:///var/ordersync.db"
    assert settings.redis_url is None


def test_reads_the_ordersync_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERSYNC_REDIS_URL", "redis://example:6379/2")
    monkeypatch.setenv("ORDERSYNC_BROKER_TIMEOUT_S", "2.5")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.redis_url == "redis://example:6379/2"
    assert settings.broker_timeout_s == 2.5


def test_bad_values_are_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERSYNC_BROKER_TIMEOUT_S", "-1")
    with pytest.raises(ValidationError, match="broker_timeout_s"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_fresh_orders_budget_wait_must_fit_well_inside_the_order_lock() -> None:
    Settings(_env_file=None, order_lock_ttl_s=30, rate_limit_fresh_max_wait_s=14.9)
    with pytest.raises(ValidationError, match="under half of order_lock_ttl_s"):
        Settings(_env_file=None, order_lock_ttl_s=30, rate_limit_fresh_max_wait_s=15)
