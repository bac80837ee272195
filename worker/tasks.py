"""Celery tasks. Each task parses its arguments, takes its lock, and calls one plain
function; the task names are a public contract (see README)."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.celery_app import app


@app.task(name="ordersync.ping", ignore_result=False)  # type: ignore[untyped-decorator]
def ping() -> dict[str, str]:
    """Liveness: proves a worker consumes from the broker."""
    return {"pong": datetime.now(UTC).isoformat()}
