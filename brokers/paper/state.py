"""Everything one paper exchange holds: engine, faults, limiter, stats, credentials."""

from __future__ import annotations

import asyncio
import hmac
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from brokers.paper.engine import Clock, Engine, EngineConfig
from brokers.paper.faults import Faults, FaultSettings, RateLimiter, RequestStats

Sleep = Callable[[float], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Start-up settings; ``reset`` and ``DELETE /_sim/faults`` return to these."""

    key_id: str | None = None
    secret_key: str | None = None
    seed: int | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    faults: FaultSettings = field(default_factory=FaultSettings)


def _matches(given: str, expected: str | None) -> bool:
    """None accepts any value; otherwise a constant-time comparison."""
    return expected is None or hmac.compare_digest(given.encode(), expected.encode())


class Sim:
    def __init__(self, config: SimConfig, *, clock: Clock = utc_now, sleep: Sleep = asyncio.sleep):
        self.config = config
        self.clock = clock
        self.sleep = sleep
        seeds = random.Random(config.seed)
        self.faults = Faults(config.faults, random.Random(seeds.getrandbits(64)))
        self.engine = Engine(self._engine_config(), clock, random.Random(seeds.getrandbits(64)))
        self.limiter = RateLimiter()
        self.stats = RequestStats()

    def _engine_config(self) -> EngineConfig:
        """Fill behaviour is a fault setting too, so the start-up faults decide it."""
        settings = self.faults.settings
        return replace(
            self.config.engine,
            fill_delay_ms=settings.fill_delay_ms,
            partial_fill_probability=settings.partial_fill_probability,
        )

    def update_faults(self, changes: dict[str, object]) -> FaultSettings:
        settings = self.faults.update(changes)
        self.engine.config = self._engine_config()
        return settings

    def clear_faults(self) -> FaultSettings:
        self.faults.reset()
        self.engine.config = self._engine_config()
        return self.faults.settings

    def reset(self) -> None:
        """Forget all orders, fills, positions and counters; settings back to start-up."""
        self.faults.reset()
        self.engine.reset(self._engine_config())
        self.limiter = RateLimiter()
        self.stats = RequestStats()

    def authorized(self, key_id: str, secret_key: str) -> bool:
        if not key_id or not secret_key:
            return False
        return _matches(key_id, self.config.key_id) and _matches(secret_key, self.config.secret_key)

    def now_s(self) -> float:
        return self.clock().timestamp()
