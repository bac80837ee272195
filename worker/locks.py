"""Non-blocking, token-checked Redis locks (one worker per order, one sweep at a time), and
the optimistic lock every order row carries: a version counter, retried on fresh state."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

import redis
from redis.exceptions import LockError, LockNotOwnedError
from redis.lock import Lock
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from models.orders import Order

logger = logging.getLogger(__name__)
R = TypeVar("R")
# Attempts at one write to an order row before a concurrent writer is reported.
WRITE_ATTEMPTS = 5


# A lock's token names the process holding it; each process keeps a key saying it is alive
# (refreshed every second, gone three seconds after the process died). A lock whose holder
# is gone is taken over at once instead of after its TTL: on RabbitMQ a killed worker's
# tasks are delivered again within a second, and would otherwise wait out its locks.
ALIVE_PREFIX = "ordersync:alive:"
ALIVE_TTL_MS = 3000
ALIVE_EVERY_S = 1.0

# KEYS: lock. ARGV: alive prefix. Deletes the lock when its holder's alive key is gone.
_BREAK_IF_DEAD = """
local token = redis.call('GET', KEYS[1])
if not token then return 1 end
local holder = string.match(token, '^(%x+)%.')
if not holder then return 0 end
if redis.call('EXISTS', ARGV[1] .. holder) == 1 then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


class _Liveness:
    """This process's holder id and its alive key, kept on every Redis it takes locks on by a
    daemon thread (a new id and thread after a fork: a pool process is a holder of its own)."""

    def __init__(self) -> None:
        self.pid = 0
        self.holder = ""
        self.clients: list[redis.Redis] = []
        self.guard = threading.Lock()

    def holder_on(self, client: redis.Redis) -> str:
        with self.guard:
            if self.pid != os.getpid():
                self.pid, self.holder, self.clients = os.getpid(), uuid.uuid4().hex, []
                threading.Thread(target=self._beat, args=(self.pid,), name="lock-liveness",
                                 daemon=True).start()  # fmt: skip
            if not any(c is client for c in self.clients):
                self.clients.append(client)
                self._mark(client)
            return self.holder

    def _mark(self, client: redis.Redis) -> None:
        try:
            client.set(ALIVE_PREFIX + self.holder, os.getpid(), px=ALIVE_TTL_MS)
        except redis.RedisError as error:  # Redis away: no lock can be taken meanwhile
            logger.debug("cannot mark holder %s alive: %s", self.holder, error)

    def _beat(self, pid: int) -> None:
        while self.pid == pid:
            time.sleep(ALIVE_EVERY_S)  # the heartbeat's period, not synchronisation
            with self.guard:
                clients = list(self.clients) if self.pid == pid else []
            for client in clients:
                self._mark(client)


_liveness = _Liveness()


def break_if_holder_dead(client: redis.Redis, name: str) -> bool:
    """Free the lock ``name`` if the process holding it is gone; True when it is free."""
    return bool(client.eval(_BREAK_IF_DEAD, 1, name, ALIVE_PREFIX))


class HeldLock:
    """``with HeldLock(...) as held:`` — ``held`` is False when another live holder has it
    (one whose process died loses it at once: ``break_if_holder_dead``).

    The token is checked on extend and release (a lock that expired under us is reported,
    never released from under its new owner); ``renew()`` extends it while work goes on.
    """

    def __init__(self, client: redis.Redis, name: str, ttl_s: float) -> None:
        self.name = name
        self.ttl_s = ttl_s
        self._client = client
        self._lock: Lock = client.lock(name, timeout=ttl_s, blocking=False, thread_local=False)
        self.held = False
        self.token = f"{_liveness.holder_on(client)}.{uuid.uuid4().hex}"

    @contextmanager
    def adopted(self) -> Iterator[HeldLock]:
        """Own a lock that was taken with ``self.token`` elsewhere (e.g. in a Lua script)."""
        self._lock.local.token = self.token.encode()
        self.held = True
        try:
            yield self
        finally:
            self.__exit__(None, None, None)

    def __enter__(self) -> bool:
        self.held = bool(self._lock.acquire(blocking=False, token=self.token))
        if not self.held and break_if_holder_dead(self._client, self.name):
            self.held = bool(self._lock.acquire(blocking=False, token=self.token))
        return self.held

    def renew(self) -> bool:
        """Reset the TTL; False if the lock was lost (expired and maybe taken)."""
        if not self.held:
            return False
        try:
            self._lock.extend(self.ttl_s, replace_ttl=True)
            return True
        except LockNotOwnedError:
            logger.warning("lock %s expired while held", self.name)
            self.held = False
            return False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.held:
            return
        try:
            self._lock.release()
        except LockError:
            logger.warning("lock %s expired before release", self.name)
        self.held = False


def order_lock_name(order_id: str) -> str:
    return f"ordersync:lock:order:{order_id}"


class OrderWriteConflict(RuntimeError):
    """Concurrent writers changed the order's row under every attempt at one write."""

    def __init__(self, order_id: str, what: str, attempts: int) -> None:
        self.order_id = order_id
        self.what = what
        self.attempts = attempts
        super().__init__(
            f"order {order_id}: {what}: the row changed under each of {attempts} attempts"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.order_id, self.what, self.attempts))


def write_order(
    sessions: sessionmaker[Session],
    order_id: str,
    change: Callable[[Session, Order], R],
    *,
    what: str,
    for_update: bool = False,
) -> R | None:
    """Run ``change`` on the order in a transaction of its own; when a concurrent writer
    bumped the version counter first (``StaleDataError``), run it again on fresh state.

    Returns what ``change`` returned, or None when there is no such order.
    """
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with sessions.begin() as session:
                order = session.get(Order, order_id, with_for_update=for_update,
                                    populate_existing=True)  # fmt: skip
                if order is None:
                    return None
                return change(session, order)
        except StaleDataError as error:
            logger.info("order %s changed under %s (attempt %d): %s", order_id, what, attempt,
                        error)  # fmt: skip
    raise OrderWriteConflict(order_id, what, WRITE_ATTEMPTS)
