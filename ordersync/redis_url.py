"""Where Redis is (the configured URL, or the shared embedded server), and where Celery's
tasks travel (the configured transport, else that Redis)."""

from __future__ import annotations

from ordersync.embedded_redis import shared_embedded_url
from ordersync.settings import Settings, get_settings


def resolve_redis_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if settings.redis_url:
        return settings.redis_url
    return shared_embedded_url(settings.var_dir)


def resolve_broker_url(settings: Settings | None = None) -> str:
    """Celery's transport: ORDERSYNC_CELERY_BROKER_URL, else Redis."""
    settings = settings or get_settings()
    if settings.celery_broker_url is not None:
        return settings.celery_broker_url.get_secret_value()
    return resolve_redis_url(settings)
