"""Everything one paper exchange holds: engine, faults, limiter, stats, credentials, the
trade_updates stream's connections."""

from __future__ import annotations

import asyncio
import hmac
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from brokers.paper.engine import Clock, Engine, EngineConfig
from brokers.paper.faults import (
    CRYPTO_FIELDS,
    RARE_STATUS_FIELDS,
    Faults,
    FaultSettings,
    RateLimiter,
    RequestStats,
)
from brokers.paper.hub import StreamHub

Sleep = Callable[[float], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Start-up settings; ``reset`` and ``DELETE /_sim/faults`` return to these.

    Each configured key id is an account: ``key_id`` (its secret may be None: any non-empty
    one) and every ``accounts`` pair. With none configured (open mode) every key id with a
    non-empty secret (``secret_key`` if set) is an account of its own. Secrets stay out of
    the repr.
    """

    key_id: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    seed: int | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    faults: FaultSettings = field(default_factory=FaultSettings)
    accounts: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def credentials(self) -> dict[str, str | None]:
        """Configured key id -> secret (None: any non-empty secret); empty in open mode."""
        found: dict[str, str | None] = {}
        if self.key_id is not None:
            found[self.key_id] = self.secret_key
        for key, secret in self.accounts:
            found.setdefault(key, secret)
        return found

    @property
    def default_account(self) -> str | None:
        """Where control calls without ``?account=`` go: the --key-id account, else the
        first configured one; None in open mode."""
        return next(iter(self.credentials), None)


def _matches(given: str, expected: str | None) -> bool:
    """None accepts any value; otherwise a constant-time comparison."""
    return expected is None or hmac.compare_digest(given.encode(), expected.encode())


class Sim:
    def __init__(self, config: SimConfig, *, clock: Clock = utc_now, sleep: Sleep = asyncio.sleep):
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self._credentials = config.credentials
        seeds = random.Random(config.seed)
        self.faults = Faults(config.faults, random.Random(seeds.getrandbits(64)))
        self.engine = Engine(
            self._engine_config(),
            clock,
            random.Random(seeds.getrandbits(64)),
            accounts=tuple(self._credentials),
        )
        self.engine.activity_delay_us = self.faults.take_late_activity_us
        # Drawn after the engine's seed, so a seed gives the engine what it gave before.
        self.stream = StreamHub(self.faults, random.Random(seeds.getrandbits(64)))
        self.engine.listeners.append(self.stream.on_event)
        self.limiter = RateLimiter()
        self.stats = RequestStats()

    @property
    def open_mode(self) -> bool:
        return not self._credentials

    def _engine_config(self) -> EngineConfig:
        """Fill and session behaviour are fault settings too, so the current faults decide."""
        settings = self.faults.settings
        return replace(
            self.config.engine,
            fill_delay_ms=settings.fill_delay_ms,
            ack_delay_ms=settings.ack_delay_ms,
            partial_fill_probability=settings.partial_fill_probability,
            **settings.model_dump(include=set(RARE_STATUS_FIELDS | CRYPTO_FIELDS)),
            session_s=settings.session_s,
            overnight_s=settings.overnight_s,
        )

    def update_faults(self, changes: dict[str, object]) -> FaultSettings:
        """Merge ``changes``; setting ``session_s`` starts a new session now."""
        settings = self.faults.update(changes)
        self.engine.config = self._engine_config()
        if "session_s" in changes:
            self.engine.restart_session()
        return settings

    def clear_faults(self) -> FaultSettings:
        before = self.faults.settings.session_s
        self.faults.reset()
        self.engine.config = self._engine_config()
        if self.faults.settings.session_s != before:
            self.engine.restart_session()
        return self.faults.settings

    def reset(self) -> None:
        """Empty every account (configured ones stay known) and forget the counters;
        settings back to start-up, a new session starts now, stream connections close."""
        self.faults.reset()
        self.engine.reset(self._engine_config())
        self.limiter = RateLimiter()
        self.stats = RequestStats()
        self.stream.reset()

    def authenticate(self, key_id: str, secret_key: str) -> str | None:
        """The account the pair opens, or None."""
        if not key_id or not secret_key:
            return None
        if self.open_mode:
            return key_id if _matches(secret_key, self.config.secret_key) else None
        if key_id not in self._credentials:
            return None
        return key_id if _matches(secret_key, self._credentials[key_id]) else None

    def now_s(self) -> float:
        return self.clock().timestamp()
