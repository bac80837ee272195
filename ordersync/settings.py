"""One typed settings object, read from the environment (prefix ``ORDERSYNC_``).

Durations carry their unit in the name. Broker credentials are never settings here: accounts
name the environment variables that hold them. The few secrets that are settings (webhook
URLs and key, a second Redis URL) are ``SecretStr`` and errors never echo the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
REDIS_SCHEMES = ("redis", "rediss")
# An entry of ORDERSYNC_EVENT_WEBHOOK_URLS: ``url`` or ``name=url`` (a URL's query may hold
# "=" too, but never before "://", so a name is told apart from a URL).
_NAMED_URL = re.compile(r"^([A-Za-z0-9_.-]{1,64})=(https?://.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """One event webhook: ``name`` is what logs, tables and the CLI show; the URL never."""

    name: str
    url: SecretStr


def parse_webhook_urls(value: SecretStr | None) -> tuple[WebhookEndpoint, ...]:
    """The endpoints of a comma-separated list; an unnamed one is named by its position
    (1, 2, ...). Errors name the entry by position, never by its text (it may hold a token)."""
    if value is None:
        return ()
    endpoints: list[WebhookEndpoint] = []
    entries = [e.strip() for e in value.get_secret_value().split(",")]
    for position, entry in enumerate((e for e in entries if e), start=1):
        named = _NAMED_URL.match(entry)
        name, url = (named.group(1), named.group(2)) if named else (str(position), entry)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"ORDERSYNC_EVENT_WEBHOOK_URLS entry {position} is not an http(s) URL "
                "(entries are `url` or `name=url`, comma-separated)"
            )
        if any(e.name == name for e in endpoints):
            raise ValueError(f"ORDERSYNC_EVENT_WEBHOOK_URLS names endpoint {name!r} twice")
        endpoints.append(WebhookEndpoint(name, SecretStr(url)))
    return tuple(endpoints)


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value may be a secret (a URL with a token).
    model_config = SettingsConfigDict(
        env_prefix="ORDERSYNC_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field(
        default=f"sqlite:///{VAR_DIR / 'ordersync.db'}",
        description="SQLAlchemy URL; default is a SQLite file under ./var/.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL; unset means start the embedded redis-server on a free port.",
    )
    # The Celery transport: ``amqp://user:password@host:5672/vhost`` for RabbitMQ (quorum
    # queues, a dead-letter queue, publisher confirms); unset, tasks travel over Redis.
    # Redis always holds locks, the request budget, chains and caches. May hold a password.
    celery_broker_url: SecretStr | None = Field(
        default=None, description="amqp:// (RabbitMQ) or redis:// Celery transport; unset: Redis."
    )
    # RabbitMQ: how often one task message may come back (its worker crashed, it failed)
    # before it is dead-lettered to ``ordersync.dead`` instead: at most limit + 1 deliveries
    # (``ordersync tasks dead`` lists them, ``ordersync tasks replay`` sends them again).
    celery_delivery_limit: int = Field(default=5, ge=1, le=1000)
    # RabbitMQ: how long a publish waits for the broker's confirm before it counts as failed.
    celery_confirm_timeout_s: float = Field(default=10.0, gt=0)
    var_dir: Path = Field(default=VAR_DIR, description="Where local state (SQLite, logs) lives.")
    log_level: str = "INFO"
    # Task events from the start. Off by default, as in Celery: they cost throughput, and
    # Flower switches them on in every worker itself while it runs (its --enable_events).
    task_events: bool = False

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
    # Shared checks: the first ``monitor_fill_first_checks`` checks of a market (or IOC/FOK)
    # order read the account's fill listing, one request for every order of the account
    # (a complete set of fills settles the order), instead of a lookup each; an order its
    # fills have not settled by then is looked up (that tells rejected, canceled, expired).
    monitor_shared_checks: bool = True
    monitor_fill_first_checks: int = Field(default=4, ge=0)
    # A monitor chain whose next check is this late is presumed dead and restarted.
    monitor_revive_overdue_s: float = Field(default=10.0, gt=0)
    monitor_revive_interval_s: float = Field(default=5.0, gt=0)
    order_lock_ttl_s: float = Field(default=30.0, gt=0)
    # Placement: resent (same client order id, which the broker refuses to duplicate) every
    # ``place_retry_delay_s`` until the broker has the order or the placement deadline
    # passes; past it nothing is sent. The deadline defaults per kind of order, from when
    # the order was first asked for; a task may set ``expires_at`` or ``valid_for_s``.
    place_retry_delay_s: float = Field(default=1.0, gt=0)
    place_deadline_market_s: float = Field(default=30.0, gt=0)  # market, IOC and FOK orders
    place_deadline_s: float = Field(default=300.0, gt=0)  # resting orders (limit, stop, ...)
    # How long a placement attempt's claim on its order lasts: past it (the worker died),
    # the monitor or the sweep takes the placement over.
    place_lease_s: float = Field(default=5.0, gt=0)
    # The order lock a placement attempt of the task holds: a worker killed mid-attempt
    # keeps others from the order this long (no request goes out after half of it).
    place_lock_ttl_s: float = Field(default=10.0, gt=0)
    # track_order retries while the broker cannot show the order yet.
    track_max_retries: int = Field(default=20, ge=0)
    # Fill sync: how far back the first sync of an account looks.
    fills_initial_lookback_s: float = Field(default=86400.0, gt=0)
    # A fill gap (the broker reports more filled than the recorded fills) is closed by
    # re-reading the fill listing over the order's own time window, at most this many times
    # per gap (each after ``fill_gap_reread_delay_s``, doubling); then one alert.
    fill_gap_max_rereads: int = Field(default=6, ge=1)
    fill_gap_reread_delay_s: float = Field(default=2.0, gt=0)

    # Broker streams (``ordersync stream``): one connection per account, held by one
    # process through a Redis lease of ``stream_lease_s`` (a standby takes over when it
    # lapses, at once when the holder's process is gone). While an account's stream is
    # healthy its monitors ask the broker only after ``stream_stall_s`` (market, IOC, FOK
    # orders) or ``stream_safety_check_s`` (resting ones) without news of the order; a
    # connection silent for ``stream_stall_s`` while such an order waits is stalled.
    stream_lease_s: float = Field(default=5.0, gt=0)
    stream_idle_s: float = Field(default=0.5, gt=0)
    stream_stall_s: float = Field(default=2.0, gt=0)
    stream_safety_check_s: float = Field(default=15.0, gt=0)
    stream_health_ttl_s: float = Field(default=3.0, gt=0)
    stream_backoff_max_s: float = Field(default=30.0, gt=0)
    stream_accounts_refresh_s: float = Field(default=10.0, gt=0)

    # Reconciliation on beat (issue 4). Every interval is a setting.
    sweep_interval_s: float = Field(default=30.0, gt=0)
    deep_reconcile_interval_s: float = Field(default=300.0, gt=0)
    stale_report_interval_s: float = Field(default=30.0, gt=0)
    purge_interval_s: float = Field(default=3600.0, gt=0)
    # An open order checked at the broker more recently than this is fresh: sweeps skip it.
    sweep_fresh_s: float = Field(default=30.0, gt=0)
    sweep_page_size: int = Field(default=500, ge=1, le=500)
    # Orders the listing did not cover are looked up one by one, at most this many a sweep.
    sweep_max_single_lookups: int = Field(default=50, ge=0)
    deep_lookback_s: float = Field(default=2 * 86400.0, gt=0)
    # A crypto buy's fee is taken in the coin at the fill but posted later (Alpaca: at the
    # end of the day): until then the broker's position may be smaller than ours by up to
    # this rate of what we bought in the lookback window without a mismatch alert. 25 bps
    # is Alpaca's highest crypto fee (its lowest-volume taker tier).
    asset_fee_max_bps: int = Field(default=25, ge=0, le=1000)
    # A listed-nowhere order is declared lost after this many misses and a targeted lookup.
    lost_after_misses: int = Field(default=3, ge=1)
    # A PENDING_NEW row without a broker id, not found by client id for this long: REJECTED.
    pending_new_grace_s: float = Field(default=120.0, gt=0)

    # One request budget per broker account, shared through Redis.
    rate_limit_headroom: float = Field(default=0.8, gt=0, le=1)
    # The part of the budget only placements and monitors may spend; sweeps yield it.
    rate_limit_sweep_reserve: float = Field(default=0.25, ge=0, lt=1)
    # The part only placements may spend: a burst of placements is not slowed by checks.
    rate_limit_monitor_reserve: float = Field(default=0.1, ge=0, lt=1)
    rate_limit_max_wait_s: float = Field(default=30.0, gt=0)
    # Placements and monitors wait less: they hold an order's lock (``order_lock_ttl_s``)
    # meanwhile, and a monitor that gives up simply looks again at its next step.
    rate_limit_fresh_max_wait_s: float = Field(default=5.0, gt=0)

    # Stale-order alerts.
    stale_market_after_s: float = Field(default=10.0, gt=0)
    stale_pending_after_s: float = Field(default=60.0, gt=0)
    stale_unchecked_after_s: float = Field(default=60.0, gt=0)
    alert_webhook_url: SecretStr | None = Field(
        default=None, description="Where alerts are POSTed; may carry a token, never logged."
    )
    alert_cooldown_s: float = Field(default=300.0, ge=0)
    # Dead-man's switch: a sweep that has not succeeded within this many of its intervals.
    sweep_deadman_intervals: float = Field(default=3.0, gt=1)

    # Cleanup of closed orders.
    retention_s: float = Field(default=30 * 86400.0, gt=0)
    purge_mode: Literal["archive", "delete"] = "archive"
    purge_batch_size: int = Field(default=500, ge=1)
    # ... and of what would grow forever: refused task calls, and archived orders (from when
    # they were archived).
    invalid_calls_retention_s: float = Field(default=30 * 86400.0, gt=0)
    archive_retention_s: float = Field(default=365 * 86400.0, gt=0)

    # The transactional outbox and its relay to the Redis Stream ``ordersync:events``, on
    # the main Redis unless this names another (it may carry a password: never logged).
    events_redis_url: SecretStr | None = None
    outbox_relay_interval_s: float = Field(default=1.0, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1)
    # Approximate cap on the stream's length (XADD MAXLEN ~): consumers must keep up.
    events_stream_maxlen: int = Field(default=1_000_000, ge=1000)

    # Events to webhooks (worker/webhooks.py): comma-separated `url` or `name=url` entries,
    # each POST signed with HMAC-SHA256 under the secret; retried with doubling backoff up to
    # max_attempts, then dead-lettered (``ordersync events replay``).
    event_webhook_urls: SecretStr | None = Field(
        default=None, description="Event webhooks; URLs may carry tokens, never logged."
    )
    event_webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key signing each event POST."
    )
    event_webhook_max_attempts: int = Field(default=12, ge=1)
    event_webhook_backoff_s: float = Field(default=1.0, gt=0)
    event_webhook_max_backoff_s: float = Field(default=300.0, gt=0)
    event_webhook_timeout_s: float = Field(default=5.0, gt=0)
    event_webhook_interval_s: float = Field(default=1.0, gt=0)
    event_webhook_batch_size: int = Field(default=100, ge=1)
    # A newly configured endpoint also gets the events written this long before it was seen.
    event_webhook_backfill_s: float = Field(default=3600.0, ge=0)

    # The paper exchange.
    sim_host: str = "127.0.0.1"
    sim_port: int = 8765

    # Prometheus. Each worker serves its pool's counts on ``metrics_port`` (0: none); the
    # pool processes keep them in files under ``metrics_dir`` (default <var_dir>/metrics).
    # ``ordersync exporter`` serves the gauges read from the database and Redis.
    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(default=9808, ge=0, le=65535)
    metrics_dir: Path | None = None
    exporter_host: str = "0.0.0.0"
    exporter_port: int = Field(default=9809, ge=1, le=65535)
    # ``ordersync stream`` serves its stream counts here (0: none).
    stream_metrics_port: int = Field(default=9810, ge=0, le=65535)
    # Fills recorded within this window make `ordersync status`'s detection percentiles.
    status_latency_window_s: float = Field(default=300.0, gt=0)

    # The HTTP API and dashboard (``ordersync api``). Account keys live in the database
    # (hashed); the admin key, which reaches every account and the debug view, only here.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_admin_key: SecretStr | None = Field(
        default=None, description="Admin bearer key (at least 32 characters); unset: no admin."
    )
    api_max_body_bytes: int = Field(default=65536, ge=1024)
    # Failed authentications allowed per client address and per key id, per minute; more
    # answer 429 until the minute has passed.
    api_auth_failures_per_min: int = Field(default=10, ge=1)
    api_page_size_max: int = Field(default=500, ge=1, le=5000)
    # The proxies (addresses, comma-separated, or "*") whose X-Forwarded-For names the
    # client; unset: none, the peer is the client.
    api_forwarded_allow_ips: str | None = None
    # How long ``POST .../sync`` waits for a monitor holding the order's lock.
    api_sync_wait_s: float = Field(default=5.0, gt=0, le=60)
    # Links the dashboard shows (unset: not shown): metrics (Prometheus, or an exporter's
    # /metrics), Flower, Grafana.
    metrics_url: str | None = None
    flower_url: str | None = None
    grafana_url: str | None = None

    @field_validator("api_admin_key")
    @classmethod
    def _admin_key_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        """A short admin key could be guessed; the message never shows the value."""
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("ORDERSYNC_API_ADMIN_KEY must have at least 32 characters")
        return value

    @model_validator(mode="after")
    def _waits_fit_the_lock(self) -> Settings:
        """A monitor waiting out its lock would let a second worker check the same order."""
        if self.rate_limit_fresh_max_wait_s >= self.order_lock_ttl_s / 2:
            raise ValueError(
                f"rate_limit_fresh_max_wait_s ({self.rate_limit_fresh_max_wait_s}) must be "
                f"under half of order_lock_ttl_s ({self.order_lock_ttl_s})"
            )
        return self

    @model_validator(mode="after")
    def _webhooks_are_usable(self) -> Settings:
        """Unsigned events would be forgeable, and a bad entry should stop the start."""
        if self.event_webhooks() and not (
            self.event_webhook_secret and self.event_webhook_secret.get_secret_value()
        ):
            raise ValueError("ORDERSYNC_EVENT_WEBHOOK_SECRET is required with event webhooks")
        return self

    @model_validator(mode="after")
    def _retention_covers_the_lookback(self) -> Settings:
        """Deep reconciliation lists the broker's orders that far back: one purged sooner
        would be listed again, unknown here, and adopted as a stranger."""
        if self.retention_s < self.deep_lookback_s:
            raise ValueError(
                f"ORDERSYNC_RETENTION_S ({self.retention_s:g}) must be at least "
                f"ORDERSYNC_DEEP_LOOKBACK_S ({self.deep_lookback_s:g}): deep reconciliation "
                "lists the broker's orders that far back and would adopt purged ones again"
            )
        return self

    @field_validator("celery_broker_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``ORDERSYNC_CELERY_BROKER_URL=`` means no transport of its own: Redis."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _transport_is_known(self) -> Settings:
        """A typo in the scheme would otherwise surface as an obscure kombu error; the
        message never shows the URL (a malformed one may put a user name where the scheme
        would be)."""
        if self.celery_broker_url is not None:
            scheme = urlsplit(self.celery_broker_url.get_secret_value()).scheme
            if scheme not in AMQP_SCHEMES + REDIS_SCHEMES:
                raise ValueError(
                    "ORDERSYNC_CELERY_BROKER_URL must start with amqp:// or amqps:// "
                    "(RabbitMQ) or redis:// or rediss://"
                )
        return self

    def transport_is_amqp(self) -> bool:
        """Whether Celery's tasks travel over RabbitMQ (else Redis)."""
        url = self.celery_broker_url
        return url is not None and urlsplit(url.get_secret_value()).scheme in AMQP_SCHEMES

    def event_webhooks(self) -> tuple[WebhookEndpoint, ...]:
        """The configured event webhooks (none: delivery is off)."""
        return parse_webhook_urls(self.event_webhook_urls)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
