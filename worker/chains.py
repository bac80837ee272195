"""The bookkeeping of monitor chains in Redis: per order, the token of its one live chain
and the last step done (one hash per order, not a key per check), and when its next check
is due (one sorted set), timed by the Redis clock so workers whose clocks disagree never
see each other's chains as overdue.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import redis

from worker.context import WorkerContext

logger = logging.getLogger(__name__)

DUE_KEY = "ordersync:monitor:due"
LAG_KEY = "ordersync:monitor:lag_s"  # how late the latest check ran after its countdown
LAG_TTL_S = 60
SUPERSEDED, DUPLICATE, LOCKED, ACQUIRED = 0, 1, 2, 3

# Redis time in seconds, as a Lua expression.
_NOW = "(function() local t = redis.call('TIME') return t[1] + t[2] / 1e6 end)()"

# KEYS: chain, due. ARGV: token, ttl s, order id, delay s.
_START = f"""
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'done', -1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], {_NOW} + tonumber(ARGV[4]), ARGV[3])
"""

# KEYS: chain. ARGV: token. The chain goes only if it is still this one.
_ABANDON = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: chain, lock. ARGV: token, lock token, lock ttl ms, check. One round trip: is this
# chain current, is this step not done yet, and take the order lock.
_GUARD = """
local chain = redis.call('HMGET', KEYS[1], 'token', 'done')
if chain[1] ~= ARGV[1] then return 0 end
if tonumber(chain[2] or '-1') >= tonumber(ARGV[4]) then return 1 end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 2 end
return 3
"""

# KEYS: chain, due. ARGV: token, check, order id, delay s ('' = the chain ends), ttl s.
_STEP_DONE = f"""
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if ARGV[4] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
else
  redis.call('HSET', KEYS[1], 'done', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('ZADD', KEYS[2], {_NOW} + tonumber(ARGV[4]), ARGV[3])
end
return 1
"""

# KEYS: due. ARGV: overdue s, limit, push s. The chains due more than "overdue" ago; each is
# pushed "push" seconds ahead at once, so a chain still waiting in a backlogged queue is
# not revived again at every run.
_OVERDUE = f"""
local now = {_NOW}
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]),
                         'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(found) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), member)
end
return found
"""


def chain_key(order_id: str) -> str:
    return f"ordersync:monitor:chain:{order_id}"


def chain_ttl_s(ctx: WorkerContext) -> int:
    s = ctx.settings
    return int(s.monitor_window_s + 2 * s.monitor_revive_overdue_s) + 60


def start_chain(ctx: WorkerContext, order_id: str, due_in_s: float | None = None) -> str:
    """A new chain for the order, due after ``due_in_s`` (default: the first check's delay);
    any older chain stops at its next step."""
    token = uuid.uuid4().hex
    due = ctx.settings.monitor_first_delay_s if due_in_s is None else due_in_s
    ctx.redis.eval(_START, 2, chain_key(order_id), DUE_KEY, token, chain_ttl_s(ctx), order_id,
                   due)  # fmt: skip
    return token


def guard_step(ctx: WorkerContext, order_id: str, token: str, check: int, lock_name: str,
               lock_token: str) -> int:  # fmt: skip
    """SUPERSEDED, DUPLICATE, LOCKED, or ACQUIRED (the order lock is now ``lock_token``'s)."""
    ttl_ms = int(ctx.settings.order_lock_ttl_s * 1000)
    return int(ctx.redis.eval(_GUARD, 2, chain_key(order_id), lock_name, token, lock_token,
                              ttl_ms, check))  # fmt: skip


def step_done(ctx: WorkerContext, order_id: str, token: str, check: int,
              next_in_s: float | None) -> None:  # fmt: skip
    """Record the step; the chain goes on after ``next_in_s``, or ends (None)."""
    delay = "" if next_in_s is None else repr(next_in_s)
    ttl = chain_ttl_s(ctx) + int(next_in_s or 0)  # a slow chain's hash never expires under it
    ctx.redis.eval(_STEP_DONE, 2, chain_key(order_id), DUE_KEY, token, check, order_id, delay,
                   ttl)  # fmt: skip


def first_check_sent(ctx: WorkerContext, order_id: str, token: str,
                     send: Callable[[], object]) -> None:  # fmt: skip
    """Send the chain's first check; if that fails (the transport is down), the chain is
    dropped before the error goes on, so the call that retries it (a redelivered placement)
    finds no live chain and starts one, instead of trusting one whose check never left."""
    try:
        send()
    except BaseException:
        try:
            ctx.redis.eval(_ABANDON, 1, chain_key(order_id), token)
        except redis.RedisError as error:  # revive_monitors still finds the chain overdue
            logger.warning("could not drop chain %s of order %s: %s", token, order_id, error)
        raise


def is_live(ctx: WorkerContext, order_id: str) -> bool:
    return bool(ctx.redis.exists(chain_key(order_id)))


def note_lag(ctx: WorkerContext, eta: object) -> None:
    """How late a check runs after its countdown (a busy pool, a worker clock behind)."""
    if not isinstance(eta, str | datetime):
        return
    try:
        due = eta if isinstance(eta, datetime) else datetime.fromisoformat(eta)
    except ValueError:
        return
    if due.tzinfo is None:
        due = due.replace(tzinfo=UTC)
    lag = max(0.0, (ctx.now() - due).total_seconds())
    ctx.redis.set(LAG_KEY, repr(round(lag, 3)), ex=LAG_TTL_S)


def lag_s(ctx: WorkerContext) -> float:
    raw = ctx.redis.get(LAG_KEY)
    try:
        return float(raw) if raw is not None else 0.0
    except ValueError:
        return 0.0


def take_overdue(ctx: WorkerContext, limit: int) -> list[str]:
    """Orders whose chain is overdue (its worker died), marked as being revived: late
    past the overdue limit plus twice the lag checks run with lately."""
    s = ctx.settings
    overdue_s = s.monitor_revive_overdue_s + 2 * lag_s(ctx)
    found = ctx.redis.eval(_OVERDUE, 1, DUE_KEY, overdue_s, limit,
                           overdue_s + s.monitor_first_delay_s)  # fmt: skip
    return [str(member) for member in found]
