"""A worker must survive its Redis transport going away.

Two paths of kombu's Redis transport end the worker's main process ("Unrecoverable error")
when the connection drops, and the worker then stays down until something restarts it:

- closing the channel, kombu puts the messages it had delivered but not acknowledged back
  into their queues; with Redis still down (a restart), ``QoS.restore_unacked`` fails;
- a task that was running when the connection dropped finishes (tasks are not cancelled on
  connection loss) and its acknowledgement goes to the old, closed channel, whose client is
  gone: an ``AttributeError`` that Celery does not expect there.

Here the first is logged instead, and the second becomes the connection error Celery logs
("Couldn't ack") and goes on from. Either way the messages stay in Redis's unacknowledged
index (if Redis kept its data), from where kombu restores them after the visibility
timeout; every task is idempotent, and the sweeps take over what a lost message leaves.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)
_restore_unacked: Any = kombu_redis.QoS.restore_unacked
_connparams: Any = kombu_redis.Channel._connparams


def _restore_unacked_or_leave_them(self: Any, client: Any = None) -> None:
    try:
        _restore_unacked(self, client)
    except Exception as error:
        logger.warning(
            "could not requeue %d unacknowledged messages, Redis is unreachable (%s: %s); "
            "they wait in its unacked index for the visibility timeout",
            len(self._delivered), type(error).__name__, error,
        )  # fmt: skip
        self._delivered.clear()


def _connparams_of_an_open_channel(self: Any, *args: Any, **kwargs: Any) -> Any:
    if self.connection is None or self.connection.client is None:
        raise redis.exceptions.ConnectionError("the channel's connection is closed")
    return _connparams(self, *args, **kwargs)


def survive_lost_connections() -> None:
    """Install the guards (idempotent)."""
    kombu_redis.QoS.restore_unacked = _restore_unacked_or_leave_them  # type: ignore[method-assign]
    kombu_redis.Channel._connparams = _connparams_of_an_open_channel  # type: ignore[method-assign]
