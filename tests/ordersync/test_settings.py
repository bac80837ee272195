from __future__ import annotations

import pytest
from pydantic import ValidationError

from ordersync.redis_url import resolve_broker_url, resolve_redis_url
from ordersync.settings import Settings, get_settings


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


# --- the Celery transport (ORDERSYNC_CELERY_BROKER_URL) -------------------------------------

PASSWORD = "hunter2-s3cr3t"


@pytest.fixture
def no_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERSYNC_CELERY_BROKER_URL", raising=False)


@pytest.mark.usefixtures("no_transport")
@pytest.mark.parametrize(
    "url",
    [
        f"amqq://ordersync:{PASSWORD}@rabbit:5672/ordersync",  # a typo
        f"http://ordersync:{PASSWORD}@rabbit:15672/",
        f"memory://ordersync:{PASSWORD}@/",
        f"//ordersync:{PASSWORD}@rabbit:5672/",  # no scheme
        f"ordersync:{PASSWORD}@rabbit:5672/ordersync",  # no scheme: the user looks like one
        f"amqp//ordersync:{PASSWORD}@rabbit:5672/ordersync",
    ],
)
def test_a_broker_url_of_an_unknown_transport_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    for refuse in (
        lambda: Settings(_env_file=None, celery_broker_url=url),  # type: ignore[call-arg]
        lambda: (
            monkeypatch.setenv("ORDERSYNC_CELERY_BROKER_URL", url),
            Settings(_env_file=None),  # type: ignore[call-arg]
        ),
    ):
        with pytest.raises(ValidationError) as refused:
            refuse()
        message = str(refused.value)
        assert "ORDERSYNC_CELERY_BROKER_URL" in message
        assert "amqp://" in message  # says what would do
        assert PASSWORD not in message
        assert "rabbit" not in message


@pytest.mark.usefixtures("no_transport")
@pytest.mark.parametrize(
    ("url", "amqp"),
    [
        (f"amqp://ordersync:{PASSWORD}@rabbit:5672/ordersync", True),
        (f"amqps://ordersync:{PASSWORD}@rabbit:5671/ordersync", True),
        ("pyamqp://guest:guest@127.0.0.1//", True),
        (f"redis://:{PASSWORD}@redis:6379/1", False),
        (f"rediss://:{PASSWORD}@redis:6380/1", False),
    ],
)
def test_known_transports_are_accepted_and_told_apart(
    monkeypatch: pytest.MonkeyPatch, url: str, amqp: bool
) -> None:
    monkeypatch.setenv("ORDERSYNC_CELERY_BROKER_URL", url)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.celery_broker_url is not None
    assert settings.celery_broker_url.get_secret_value() == url
    assert settings.transport_is_amqp() is amqp
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert PASSWORD not in settings.model_dump_json()


@pytest.mark.usefixtures("no_transport")
def test_without_a_broker_url_tasks_travel_over_redis() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.celery_broker_url is None
    assert settings.transport_is_amqp() is False


@pytest.mark.usefixtures("no_transport")
@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("celery_delivery_limit", 0, False),
        ("celery_delivery_limit", 1, True),
        ("celery_delivery_limit", 1000, True),
        ("celery_delivery_limit", 1001, False),
        ("celery_confirm_timeout_s", 0, False),
        ("celery_confirm_timeout_s", 0.5, True),
    ],
)
def test_rabbitmq_limits_are_bounded(field: str, value: float, accepted: bool) -> None:
    if accepted:
        assert getattr(Settings(_env_file=None, **{field: value}), field) == value  # type: ignore[call-arg]
    else:
        with pytest.raises(ValidationError, match=field):
            Settings(_env_file=None, **{field: value})  # type: ignore[call-arg]


@pytest.mark.usefixtures("no_transport")
def test_the_broker_url_is_the_configured_transport_else_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    amqp = f"amqp://ordersync:{PASSWORD}@rabbit:5672/ordersync"
    configured = Settings(_env_file=None, celery_broker_url=amqp, redis_url="redis://r:6379/2")  # type: ignore[call-arg]
    assert resolve_broker_url(configured) == amqp
    assert resolve_redis_url(configured) == "redis://r:6379/2"  # Redis keeps its other work
    other_redis = "redis://tasks:6379/5"
    apart = Settings(_env_file=None, celery_broker_url=other_redis, redis_url="redis://r:6379/2")  # type: ignore[call-arg]
    assert resolve_broker_url(apart) == other_redis
    unset = Settings(_env_file=None, redis_url="redis://r:6379/2")  # type: ignore[call-arg]
    assert resolve_broker_url(unset) == resolve_redis_url(unset) == "redis://r:6379/2"
    # Without an argument: the process's settings.
    monkeypatch.setenv("ORDERSYNC_REDIS_URL", "redis://r:6379/3")
    monkeypatch.setenv("ORDERSYNC_CELERY_BROKER_URL", amqp)
    get_settings.cache_clear()
    try:
        assert resolve_broker_url() == amqp
        monkeypatch.delenv("ORDERSYNC_CELERY_BROKER_URL")
        get_settings.cache_clear()
        assert resolve_broker_url() == "redis://r:6379/3"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_an_empty_broker_url_means_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERSYNC_CELERY_BROKER_URL", "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.celery_broker_url is None
    assert not settings.transport_is_amqp()
