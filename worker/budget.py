"""One request budget per broker account, shared by every worker process through Redis.

A token bucket per account in one Redis hash, changed only by Lua scripts (atomic across
processes, timed by the Redis clock). Sized from the account's documented limit ``L`` per
minute and the headroom ``h``: no 60-second window may carry more than ``L * h`` requests,
so a quarter of that is the bucket (the burst, at least 1 token) and the rest refills over
the minute. Placements and monitors may spend the whole bucket; a sweep takes a token only
while more than ``sweep_reserve`` of the capacity is left, so it yields to fresh orders.
A 429 (or ``X-Ratelimit-Remaining: 0``) empties the bucket and holds it empty until the
broker's reset time, at once for every process. ``budget_stats`` reads the counts.

A large bucket (a generous limit) lends a process a few tokens at once while it is more
than half full, so most requests cost no Redis round trip; a lease is spent within
``LEASE_TTL_S`` or dropped, and a 429 drops this process's lease at once. Small buckets
(Alpaca's 200/min) never lend: every request asks Redis.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NoReturn

import redis

from brokers.base import RateLimitInfo
from brokers.errors import RateLimited
from brokers.registry import AccountConnection, RateLimitHooks
from ordersync.metrics import record
from ordersync.settings import Settings

__all__ = [
    "Budget",
    "BudgetExhausted",
    "BudgetSize",
    "BudgetStats",
    "BudgetUnavailable",
    "DeadlinePassed",
    "Priority",
    "adapter_hooks",
    "budget_stats",
    "current_priority",
    "priority",
    "send_by",
]

# The share of a minute's budget that may go at once; the rest refills over the minute.
BURST_SHARE = 0.25
# A reset further away than one rate-limit window is clock skew or garbage: block no longer.
BLOCK_CAP_S = 60.0
# Waiters wake up to this much later than asked, so processes do not all retry at once.
JITTER_S = 0.01
# A lease is a 1/LEASE_DIVISOR share of the bucket, at most MAX_LEASE tokens, kept at most
# LEASE_TTL_S: after a 429 seen elsewhere, each process sends at most one lease more.
LEASE_DIVISOR = 64
MAX_LEASE = 16
LEASE_TTL_S = 1.0
MINUTE_S = 60.0  # the bucket's window: a broker's figures over a shorter one cannot size it


class Priority(StrEnum):
    PLACEMENT = "placement"
    MONITOR = "monitor"
    SWEEP = "sweep"


_PRIORITY: ContextVar[Priority] = ContextVar("ordersync_budget_priority", default=Priority.MONITOR)
# Epoch seconds after which no request may go out from the current block (a placement's
# deadline, a monitor step's share of its order lock); None: no limit.
_SEND_BY: ContextVar[float | None] = ContextVar("ordersync_budget_send_by", default=None)


def current_priority() -> Priority:
    return _PRIORITY.get()


@contextmanager
def send_by(deadline: datetime | None) -> Iterator[None]:
    """No request of the block goes out after ``deadline``: the gate waits for a token at
    most until then and refuses once it has passed (``DeadlinePassed``: nothing was sent).
    Nested blocks keep the earlier deadline."""
    outer = _SEND_BY.get()
    at = None if deadline is None else deadline.timestamp()
    if outer is not None and (at is None or outer < at):
        at = outer
    token = _SEND_BY.set(at)
    try:
        yield
    finally:
        _SEND_BY.reset(token)


@contextmanager
def priority(level: Priority) -> Iterator[Priority]:
    """Broker calls made inside the block spend the budget at ``level`` (default MONITOR)."""
    token = _PRIORITY.set(level)
    try:
        yield level
    finally:
        _PRIORITY.reset(token)


class BudgetExhausted(RateLimited):
    """No token came within the longest wait, so the request was never sent: retry later."""

    def __init__(
        self, account_id: str, priority: Priority, waited_s: float, retry_at: datetime | None
    ) -> None:
        self.account_id = account_id
        self.priority = priority
        self.waited_s = waited_s
        super().__init__(
            f"account {account_id}: request budget exhausted for a {priority.value} call "
            f"after {waited_s:.2f} s of waiting; nothing was sent",
            retry_at=retry_at,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.account_id, self.priority, self.waited_s, self.retry_at))


class DeadlinePassed(RateLimited):
    """The block's send-by time came before a request could go out: it was never sent."""

    def __init__(self, account_id: str, deadline: datetime) -> None:
        self.account_id = account_id
        self.deadline = deadline
        super().__init__(
            f"account {account_id}: not sent: its deadline {deadline.isoformat()} passed "
            "before the request could go out"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.account_id, self.deadline))


class BudgetUnavailable(RateLimited):
    """Redis could not be asked for a token; failing closed, the request was never sent."""

    def __init__(self, account_id: str, reason: str) -> None:
        self.account_id = account_id
        self.reason = reason
        super().__init__(f"account {account_id}: request budget unreachable ({reason})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.account_id, self.reason))


@dataclass(frozen=True, slots=True)
class BudgetSize:
    """A bucket's shape: ``capacity`` tokens, refilled at ``per_minute``; sweeps leave the
    bottom ``sweep_floor`` tokens to placements and monitors, monitors the bottom
    ``monitor_floor`` to placements (placements come first)."""

    capacity: float
    per_minute: float
    sweep_floor: float
    monitor_floor: float = 0.0

    @classmethod
    def of(cls, rate_limit_per_min: int, *, headroom: float, sweep_reserve: float,
           monitor_reserve: float = 0.0) -> BudgetSize:  # fmt: skip
        if rate_limit_per_min < 1:
            raise ValueError(f"rate_limit_per_min must be at least 1, got {rate_limit_per_min}")
        budget = rate_limit_per_min * headroom  # the most any 60 s may carry
        capacity = max(1.0, round(budget * BURST_SHARE, 6))
        per_minute = budget - capacity if budget > capacity else budget * (1 - BURST_SHARE)
        # A level needs floor + 1 tokens: keep that reachable even in a one-token bucket.
        return cls(capacity, per_minute, min(capacity * sweep_reserve, capacity - 1),
                   min(capacity * monitor_reserve, capacity - 1))  # fmt: skip

    @property
    def per_ms(self) -> float:
        return self.per_minute / 60_000

    @property
    def lease(self) -> int:
        """Tokens one request may take for its process while the bucket is over half full."""
        return max(1, min(MAX_LEASE, int(self.capacity // LEASE_DIVISOR)))

    @property
    def lease_keep(self) -> float:
        """What a lease must leave in the bucket: half of it, and never the sweeps' floor."""
        return max(self.capacity / 2, self.sweep_floor)

    def floor(self, level: Priority) -> float:
        if level is Priority.SWEEP:
            return self.sweep_floor
        return self.monitor_floor if level is Priority.MONITOR else 0.0


@dataclass(frozen=True, slots=True)
class BudgetStats:
    """Counts per account: calls let through, calls that waited (and for how long in all),
    calls that gave up (``BudgetExhausted``), and 429 answers seen."""

    granted: int = 0
    waited: int = 0
    wait_ms: int = 0
    exhausted: int = 0
    throttled_429: int = 0


def bucket_key(account_id: str) -> str:
    return f"ordersync:budget:{account_id}"


def stats_key(account_id: str) -> str:
    return f"ordersync:stats:budget:{account_id}"


# KEYS: bucket, stats. ARGV: capacity, tokens per ms, now in ms ('' = Redis TIME), ...
# "at" is when "tokens" was true; a blocked bucket has tokens 0 and "at" in the future.
_PRELUDE = """
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if not tokens or not at then tokens, at = capacity, now end
if now > at then tokens, at = tokens + (now - at) * rate, now end
if tokens > capacity then tokens = capacity end
local function save()
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
  redis.call('PEXPIRE', KEYS[1], math.ceil(at - now + capacity / rate) + 1000)
end
"""

# ARGV[4]: tokens the caller must leave; ARGV[5]: ms it has waited; ARGV[6]: the lease it
# would take; ARGV[7]: what a lease must leave; ARGV[8]: the request's cost (its weight).
# Returns {tokens granted (0, the cost or the lease), ms until the cost could be there for
# the caller (0 when granted)}.
_TAKE = (
    _PRELUDE
    + """
local floor, waited_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local lease, keep, cost = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local granted, wait = 0, 0
if at <= now and tokens >= floor + cost then
  granted = cost
  if lease > cost and tokens - lease >= keep then granted = lease end
  tokens = tokens - granted
  redis.call('HINCRBY', KEYS[2], 'granted', granted)
  if waited_ms > 0 then
    redis.call('HINCRBY', KEYS[2], 'waited', 1)
    redis.call('HINCRBY', KEYS[2], 'wait_ms', waited_ms)
  end
else
  wait = math.max(1, math.ceil(at - now + (floor + cost - tokens) / rate))
end
save()
return {granted, wait}
"""
)

# ARGV[4]: '1' for a 429; ARGV[5]: the broker's reset in epoch ms or ''; ARGV[6]: remaining
# or ''; ARGV[7]: the longest block in ms. Returns the ms the bucket is now blocked for.
_THROTTLE = (
    _PRELUDE
    + """
local reset, remaining = tonumber(ARGV[5]), tonumber(ARGV[6])
local block = ARGV[4] == '1'
if block then
  redis.call('HINCRBY', KEYS[2], 'throttled_429', 1)
elseif remaining then
  if remaining <= 0 then block = true elseif remaining < tokens then tokens = remaining end
end
if block then
  tokens = 0
  if reset then
    reset = math.min(reset, now + tonumber(ARGV[7]))
    if reset > at then at = reset end
  end
end
save()
return math.max(0, at - now)
"""
)


class Budget:
    """One account's bucket: ``acquire`` before each request (an adapter's gate) and
    ``observe`` each answer's rate-limit headers (an adapter's observer).

    ``clock`` (epoch seconds) replaces the Redis clock and ``time.monotonic``, for tests.
    ``fresh_max_wait_s`` bounds the wait of placements and monitors, which hold an order's
    lock meanwhile; sweeps wait up to ``max_wait_s``.
    """

    def __init__(
        self,
        client: redis.Redis,
        account_id: str,
        size: BudgetSize,
        *,
        max_wait_s: float,
        fresh_max_wait_s: float | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.account_id = account_id
        self.size = size
        self.max_wait_s = max_wait_s
        self.fresh_max_wait_s = max_wait_s if fresh_max_wait_s is None else fresh_max_wait_s
        self._client = client
        self._keys = [bucket_key(account_id), stats_key(account_id)]
        self._take = client.register_script(_TAKE)
        self._throttle = client.register_script(_THROTTLE)
        self._clock = clock
        self._timer = clock or time.monotonic
        self._sleep = sleep
        self._leased = 0  # tokens this process holds, spendable until _lease_until
        self._lease_until = 0.0
        self._lease_lock = threading.Lock()
        self.label = ""  # the account's name in metrics (its id when unset)

    def gate(self, cost: int) -> None:
        """An adapter's gate: a request of weight ``cost`` at the current priority."""
        self.acquire(cost=cost)

    def acquire(self, level: Priority | None = None, *, cost: int = 1) -> None:
        """Take ``cost`` tokens (a request's weight: 1 at Alpaca, up to 20 at Binance),
        waiting for them up to the level's wait; else ``BudgetExhausted``.

        A request heavier than the bucket (a small limit set for a weighing broker) waits
        for a full bucket and takes all of it; one heavier than what a level must leave
        waits for the bucket to hold it, leaving less: neither waits forever."""
        if cost < 1:
            raise ValueError(f"account {self.account_id}: a request costs at least 1 token, "
                             f"not {cost}")  # fmt: skip
        cost = min(cost, int(self.size.capacity))
        level = current_priority() if level is None else level
        send_by = _SEND_BY.get()
        if send_by is not None and self._epoch() >= send_by:
            raise DeadlinePassed(self.account_id, _utc(send_by))
        cost = self._spend_leased(cost)
        if not cost:
            return
        floor = min(self.size.floor(level), self.size.capacity - cost)
        max_wait_s = self.max_wait_s if level is Priority.SWEEP else self.fresh_max_wait_s
        if send_by is not None:
            max_wait_s = min(max_wait_s, send_by - self._epoch())
        started = self._timer()
        waited_ms = 0
        while True:
            granted, wait_ms = self._take_tokens(floor, waited_ms, cost)
            if granted:
                if granted > cost:
                    self._keep_lease(granted - cost)
                    record.budget_lease(self.label or self.account_id)
                if send_by is not None and self._epoch() >= send_by:  # the token came late
                    raise DeadlinePassed(self.account_id, _utc(send_by))
                return
            wait_s = wait_ms / 1000
            elapsed_s = self._timer() - started
            left_s = max_wait_s - elapsed_s
            if wait_s > left_s:  # not even the best case fits in the time that is left
                if send_by is not None and self._epoch() + wait_s >= send_by:
                    raise DeadlinePassed(self.account_id, _utc(send_by))
                self._give_up(level, elapsed_s, waited_ms > 0, wait_s)
            self._sleep(min(wait_s + random.uniform(0, JITTER_S), left_s))
            waited_ms = max(1, round((self._timer() - started) * 1000))

    def observe(self, info: RateLimitInfo) -> None:
        """Learn from an answer's headers: a 429 or nothing remaining blocks until the reset."""
        limited = info.status_code == 429
        left = info.remaining
        if left is not None and left > 0 and info.window_s < MINUTE_S:
            left = None  # what is left of a second says nothing of the minute's bucket
        if not limited and (left is None or left >= self.size.capacity):
            return  # cannot change the bucket: no Redis round trip
        self._drop_lease()
        reset = "" if info.reset_at is None else str(int(info.reset_at.timestamp() * 1000))
        remaining = "" if left is None else str(left)
        self._run(
            self._throttle, "1" if limited else "0", reset, remaining, int(BLOCK_CAP_S * 1000)
        )

    def _epoch(self) -> float:
        return time.time() if self._clock is None else self._clock()

    def _spend_leased(self, cost: int) -> int:
        """Spend what this process holds of a live lease on ``cost``; what is left to take."""
        with self._lease_lock:
            if self._timer() >= self._lease_until:
                self._leased = 0
            spent = min(self._leased, cost)
            self._leased -= spent
            return cost - spent

    def _keep_lease(self, tokens: int) -> None:
        """Added to what is left (another thread's lease meanwhile), never in its place."""
        with self._lease_lock:
            if self._timer() >= self._lease_until:
                self._leased = 0
            self._leased += tokens
            self._lease_until = self._timer() + LEASE_TTL_S

    def _drop_lease(self) -> None:
        with self._lease_lock:
            self._leased = 0

    def _take_tokens(self, floor: float, waited_ms: int, cost: int) -> tuple[int, int]:
        size = self.size
        granted, wait_ms = self._run(
            self._take, floor, waited_ms, size.lease, size.lease_keep, cost
        )
        return int(granted), int(wait_ms)

    def _run(self, script: Any, *args: object) -> Any:
        now = "" if self._clock is None else str(int(self._clock() * 1000))
        try:
            return script(
                keys=self._keys,
                args=[repr(self.size.capacity), repr(self.size.per_ms), now, *args],
            )
        except redis.RedisError as exc:
            raise BudgetUnavailable(self.account_id, f"{type(exc).__name__}: {exc}") from exc

    def _give_up(self, level: Priority, elapsed_s: float, waited: bool, wait_s: float) -> NoReturn:
        pipe = self._client.pipeline(transaction=False)
        pipe.hincrby(self._keys[1], "exhausted", 1)
        if waited:
            pipe.hincrby(self._keys[1], "waited", 1)
            pipe.hincrby(self._keys[1], "wait_ms", max(1, round(elapsed_s * 1000)))
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise BudgetUnavailable(self.account_id, f"{type(exc).__name__}: {exc}") from exc
        now = datetime.now(UTC) if self._clock is None else _utc(self._clock())
        raise BudgetExhausted(self.account_id, level, elapsed_s, now + timedelta(seconds=wait_s))


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def budget_stats(client: redis.Redis, account_id: str) -> BudgetStats:
    """The account's counts; an operator reads here that work waited rather than failed."""
    raw: Mapping[Any, Any] = client.hgetall(stats_key(account_id))
    counts = {_text(name): int(value) for name, value in raw.items()}
    return BudgetStats(**{f.name: counts.get(f.name, 0) for f in fields(BudgetStats)})


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def budget_for(
    client: redis.Redis, settings: Settings, account_id: str, rate_limit_per_min: int
) -> Budget:
    size = BudgetSize.of(
        rate_limit_per_min,
        headroom=settings.rate_limit_headroom,
        sweep_reserve=settings.rate_limit_sweep_reserve,
        monitor_reserve=settings.rate_limit_monitor_reserve,
    )
    return Budget(
        client, account_id, size, max_wait_s=settings.rate_limit_max_wait_s,
        fresh_max_wait_s=settings.rate_limit_fresh_max_wait_s,
    )  # fmt: skip


def adapter_hooks(
    client: redis.Redis, settings: Settings
) -> Callable[[AccountConnection], RateLimitHooks]:
    """What ``AdapterCache`` hangs on each account's adapter: that account's budget."""

    def hooks(connection: AccountConnection) -> RateLimitHooks:
        budget = budget_for(client, settings, connection.account_id, connection.rate_limit_per_min)
        budget.label = connection.account
        broker, account = connection.broker.value, connection.account

        def on_request(endpoint: str, status: int | None, elapsed_s: float) -> None:
            record.broker_request(broker, account, endpoint, status, elapsed_s)

        return RateLimitHooks(gate=budget.gate, observer=budget.observe, on_request=on_request)

    return hooks
