"""Non-blocking, token-checked Redis locks (one worker per order, one sweep at a time), and
the optimistic lock every order row carries: a version counter, retried on fresh state."""

from __future__ import annotations

import logging
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
