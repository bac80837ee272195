"""Where Redis is: the configured URL, or the shared embedded server."""

from __future__ import annotations

from ordersync.embedded_redis import shared_embedded_url
from ordersync.settings import Settings, get_settings


def resolve_redis_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if settings.redis_url:
        return settings.redis_url
    return shared_embedded_url(settings.var_dir)
