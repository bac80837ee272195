"""Non-blocking, token-checked Redis locks (one worker per order, one sweep at a time)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

import redis
from redis.exceptions import LockError, LockNotOwnedError
from redis.lock import Lock

logger = logging.getLogger(__name__)


class HeldLock:
    """``with HeldLock(...) as held:`` — ``held`` is False when another holder has it.

    The token is checked on extend and release (a lock that expired under us is reported,
    never released from under its new owner); ``renew()`` extends it while work goes on.
    """

    def __init__(self, client: redis.Redis, name: str, ttl_s: float) -> None:
        self.name = name
        self.ttl_s = ttl_s
        self._lock: Lock = client.lock(name, timeout=ttl_s, blocking=False, thread_local=False)
        self.held = False
        self.token = uuid.uuid4().hex

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
