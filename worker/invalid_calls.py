"""Refused task calls: one log line with the task id, one row, one counter."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from models.orders import InvalidTaskCall
from worker.context import WorkerContext

logger = logging.getLogger(__name__)
COUNTER_KEY = "ordersync:stats:invalid_calls"
_SECRET = re.compile(r"secret|password|token|api[_-]?key|credential", re.IGNORECASE)
MAX_ARGUMENTS_CHARS = 4000


def redact(value: Any) -> Any:
    """Task arguments never carry secrets; if a caller sends one anyway, we don't keep it."""
    if isinstance(value, dict):
        return {k: "***" if _SECRET.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def redact_call(
    args: tuple[Any, ...], kwargs: dict[str, Any], known: frozenset[str] | None
) -> dict[str, Any]:
    """With the contract's argument names (``known``), only their values are kept: an
    unknown argument or a positional one (contracts take keywords only) may be a
    credential under any name, so only its name is kept."""
    if known is None:
        return {"args": redact(list(args)), "kwargs": redact(kwargs)}
    kept = {k: redact(v) if k in known else "***" for k, v in kwargs.items()}
    return {"args": ["***"] * len(args), "kwargs": redact(kept)}


def record_invalid_call(
    ctx: WorkerContext, task_name: str, task_id: str | None, error: str,
    args: tuple[Any, ...], kwargs: dict[str, Any], known: frozenset[str] | None = None,
) -> None:  # fmt: skip
    logger.error("refused %s (task %s): %s", task_name, task_id, error)
    arguments = json.dumps(redact_call(args, kwargs, known), default=repr)
    try:
        ctx.redis.hincrby(COUNTER_KEY, task_name, 1)
        with ctx.sessions.begin() as session:
            session.add(
                InvalidTaskCall(
                    task_name=task_name, task_id=task_id, error=error[:4000],
                    arguments=arguments[:MAX_ARGUMENTS_CHARS], at=ctx.now(),
                )
            )  # fmt: skip
    except Exception:
        logger.exception("could not record the refused call to %s (task %s)", task_name, task_id)
