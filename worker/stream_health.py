"""Whether an account's broker stream is healthy now: a Redis key its holder keeps fresh
while connected, listening and caught up. Monitors ask the broker rarely meanwhile, and
tell the holder when the broker turns out ahead of its stream."""

from __future__ import annotations

import redis

from core.enums import BrokerKind

PREFIX = "ordersync:stream:healthy:"
# The brokers whose accounts get a stream.
STREAMING = frozenset({BrokerKind.ALPACA, BrokerKind.BINANCE, BrokerKind.COINBASE,
                       BrokerKind.TRADIER, BrokerKind.OANDA})  # fmt: skip


def mark_healthy(client: redis.Redis, account_id: str, ttl_s: float) -> None:
    client.set(PREFIX + account_id, 1, px=max(1, int(ttl_s * 1000)))


def mark_unhealthy(client: redis.Redis, account_id: str) -> None:
    client.delete(PREFIX + account_id)


def is_healthy(client: redis.Redis, account_id: str) -> bool:
    return bool(client.exists(PREFIX + account_id))


SUSPECT_PREFIX = "ordersync:stream:suspect:"
SUSPECT_TTL_S = 60


def suspect(client: redis.Redis, account_id: str, reason: str) -> None:
    """A check found the broker ahead of what the account's healthy stream delivered: its
    holder drops the connection and catches up (a stall, or messages lost)."""
    client.set(SUSPECT_PREFIX + account_id, reason[:500], ex=SUSPECT_TTL_S)


def take_suspicion(client: redis.Redis, account_id: str) -> str | None:
    """The reason a check left, once (None when there is none)."""
    value = client.getdel(SUSPECT_PREFIX + account_id)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
