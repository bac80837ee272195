"""Refused calls through real worker processes (README "Task contract"): the caller, a
Celery app that imports nothing of ordersync, gets ``InvalidTaskArguments`` with the
problem as its message; Flower's task-failed event names it too; the worker logs one line
with the task id, no traceback, and adds one ``invalid_task_calls`` row."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from tests.worker.conftest import ACCOUNT, TrackingSystem, wait_for
from worker.args import InvalidTaskArguments, PlaceOrderArgs, parse_args

pytestmark = pytest.mark.integration

PLACE = "ordersync.place_order"
BAD_PLACEMENTS: list[dict[str, Any]] = [
    {"account": ACCOUNT, "symbol": "AAPL", "side": "buy", "quantity": 1.5},
    {"account": ACCOUNT, "symbol": "AAPL", "side": "buy", "quantity": "1", "colour": "red"},
]

# A trading service's side: a Celery app of its own, run where ordersync cannot be imported.
CLIENT = """
import json, sys
from celery import Celery

app = Celery("trading-service", broker=sys.argv[1], backend=sys.argv[1])
seen = {}
for task_id in sys.argv[2:]:
    result = app.AsyncResult(task_id)
    try:
        result.get(timeout=60)
    except Exception as error:
        seen[task_id] = [type(error).__name__, str(error), result.state]
ours = sorted(m for m in sys.modules if m.split(".")[0] in ("worker", "models", "ordersync"))
print(json.dumps({"seen": seen, "ordersync_modules": ours}))
"""


def problem_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """What the worker's parser says about a placement call."""
    with pytest.raises(InvalidTaskArguments) as refused:
        parse_args(PlaceOrderArgs, PLACE, args, kwargs)
    return refused.value.problem


@pytest.fixture
def failed_events(system: TrackingSystem) -> Iterator[list[dict[str, Any]]]:
    """The ``task-failed`` events Flower would show, captured from before the worker starts
    (it announces itself with ``worker-online``, so the receiver is known to be listening)."""
    events: list[dict[str, Any]] = []
    online = threading.Event()
    with system.client.connection_for_read() as connection:
        receiver = system.client.events.Receiver(connection, handlers={
            "task-failed": events.append, "worker-online": lambda event: online.set(),
        })  # fmt: skip
        thread = threading.Thread(target=receiver.capture, kwargs={"wakeup": False}, daemon=True)
        thread.start()
        system.env["ORDERSYNC_TASK_EVENTS"] = "true"
        system.start_worker("w1", concurrency=1)
        wait_for(online.is_set, 60, "the worker announced itself")
        yield events
        receiver.should_stop = True
        thread.join(timeout=10)


def foreign_client(system: TrackingSystem, results: list[AsyncResult], cwd: Path) -> Any:
    """What the trading service's own process sees for each result."""
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, system.redis_url, *(r.id for r in results)],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def refusal_lines(log: str, task_id: str) -> list[str]:
    """The worker's lines about a task other than Celery's "received" line."""
    return [line for line in log.splitlines() if task_id in line and "] received" not in line]


def test_a_refused_call_reaches_the_caller_and_flower_as_invalid_task_arguments(
    system: TrackingSystem, failed_events: list[dict[str, Any]], tmp_path: Path
) -> None:
    expected = {}
    results = []
    for kwargs in BAD_PLACEMENTS:
        results.append(system.client.send_task(PLACE, kwargs=kwargs))
        expected[results[-1].id] = problem_of((), kwargs)
    results.append(system.client.send_task(PLACE, args=[ACCOUNT, "AAPL"]))
    expected[results[-1].id] = problem_of((ACCOUNT, "AAPL"), {})
    monitor = system.client.send_task("ordersync.monitor_order", args=[42])  # no result kept
    bad_chain = system.client.send_task("ordersync.monitor_order", args=["an-order", 5])

    for result in results:
        with pytest.raises(Exception, match=re.escape(expected[result.id])) as raised:
            result.get(timeout=60)
        assert (type(raised.value).__name__, str(raised.value)) == (
            "InvalidTaskArguments", expected[result.id],
        )  # fmt: skip
        assert result.state == "FAILURE"
        assert result.traceback is not None
        last = result.traceback.strip().splitlines()[-1]
        assert "InvalidTaskArguments: " in last
        assert last.endswith(expected[result.id])

    client = foreign_client(system, results, tmp_path)
    assert client["ordersync_modules"] == []
    assert client["seen"] == {
        task_id: ["InvalidTaskArguments", problem, "FAILURE"]
        for task_id, problem in expected.items()
    }

    every = [*results, monitor, bad_chain]
    wait_for(lambda: {e["uuid"] for e in failed_events} >= {r.id for r in every}, 60,
             "a task-failed event for every refused call")  # fmt: skip
    flower = {e["uuid"]: e["exception"] for e in failed_events}
    for result in results:
        assert flower[result.id] == repr(InvalidTaskArguments("", expected[result.id]))
    assert flower[monitor.id].startswith("InvalidTaskArguments('order_id must be a string")
    assert "chain a string or null" in flower[bad_chain.id]

    recorded = {call.task_id: call for call in system.invalid_calls()}
    assert set(recorded) == {r.id for r in every}
    assert recorded[monitor.id].task_name == "ordersync.monitor_order"
    log = system.log("w1")
    for result in every:
        lines = refusal_lines(log, result.id)
        assert len(lines) == 1, lines
        assert f"refused {recorded[result.id].task_name} (task {result.id}): " in lines[0]
    assert "Traceback" not in log
    assert "raised" not in log
