"""One typed settings object, read from the environment (prefix ``ORDERSYNC_``).

Durations carry their unit in the name. Secrets are never settings here: accounts name the
environment variables that hold their credentials.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERSYNC_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{VAR_DIR / 'ordersync.db'}",
        description="SQLAlchemy URL; default is a SQLite file under ./var/.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL; unset means start the embedded redis-server on a free port.",
    )
    var_dir: Path = Field(default=VAR_DIR, description="Where local state (SQLite, logs) lives.")
    log_level: str = "INFO"
    # Celery task events feed Flower's task views; each task then publishes three events.
    task_events: bool = True

    # Broker HTTP behaviour.
    broker_timeout_s: float = Field(default=5.0, gt=0)
    broker_max_attempts: int = Field(default=4, ge=1)
    broker_max_retry_wait_s: float = Field(default=10.0, gt=0)

    # The per-order monitor: first look after ``monitor_first_delay_s``, then each delay
    # multiplied by ``monitor_backoff`` up to ``monitor_max_delay_s``, until the order is
    # terminal or its window ends; then the sweeps own it.
    monitor_first_delay_s: float = Field(default=0.1, gt=0)
    monitor_max_delay_s: float = Field(default=2.0, gt=0)
    monitor_backoff: float = Field(default=1.5, ge=1)
    monitor_window_s: float = Field(default=300.0, gt=0)
    monitor_max_checks: int = Field(default=100, ge=1)
    # A monitor chain whose next check is this late is presumed dead and restarted.
    monitor_revive_overdue_s: float = Field(default=10.0, gt=0)
    monitor_revive_interval_s: float = Field(default=5.0, gt=0)
    order_lock_ttl_s: float = Field(default=30.0, gt=0)
    # Placement retries while the broker refuses to take the request (429, unreachable).
    place_retry_delay_s: float = Field(default=1.0, gt=0)
    place_max_retries: int = Field(default=20, ge=0)
    # Fill sync: how far back the first sync of an account looks.
    fills_initial_lookback_s: float = Field(default=86400.0, gt=0)

    # The paper exchange.
    sim_host: str = "127.0.0.1"
    sim_port: int = 8765


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
