"""``ordersync bench --faults``: the exchange misbehaves as real brokers do (503s, 429s,
placements made whose answer is lost, FILL activities that show up late) while workers,
beat and Redis are killed and restarted during the run, at fixed points of the send time.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ordersync.stack import Stack, wait_for_ping

logger = logging.getLogger(__name__)

# As the end-to-end fault runs had them (at Alpaca's routes; a venue keeps those that apply).
EXCHANGE_FAULTS: dict[str, object] = {
    "p_5xx": 0.03,
    "p_429": 0.02,
    "p_lose_response": 0.04,
    "p_late_activity": 0.05,
    "late_activity_ms": [1000, 5000],
    "timeout_s": 2.0,
}
# (fraction of the send time, what): 6 worker kills, 2 beat kills, one Redis restart.
SCHEDULE: tuple[tuple[float, str], ...] = (
    (0.10, "worker"),
    (0.20, "beat"),
    (0.25, "worker"),
    (0.40, "worker"),
    (0.50, "redis"),
    (0.60, "worker"),
    (0.70, "beat"),
    (0.75, "worker"),
    (0.90, "worker"),
)
READY_DEADLINE_S = 90.0


@dataclass
class Chaos:
    """Runs the schedule in a thread while the orders go out; ``report`` says what it did."""

    stack: Stack
    sim: httpx.Client
    send_s: float
    exchange_faults: dict[str, object] = field(default_factory=lambda: dict(EXCHANGE_FAULTS))
    done: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    crashes: list[dict[str, Any]] = field(default_factory=list)  # exited on their own
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.sim.put("/faults", json=self.exchange_faults).raise_for_status()
        self._thread = threading.Thread(target=self._run, name="bench-chaos", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Wait for the schedule to finish (the last step restarts what it killed)."""
        if self._thread is not None:
            self._thread.join(timeout=self.send_s + 2 * READY_DEADLINE_S)
        self._stop.set()

    def _run(self) -> None:
        began = time.monotonic()
        for fraction, what in SCHEDULE:
            pause = began + fraction * max(self.send_s, 10.0) - time.monotonic()
            if pause > 0 and self._stop.wait(pause):  # the schedule's pacing
                return
            try:
                self._strike(what)
            except Exception as error:  # the run goes on; the report says it
                logger.exception("bench --faults: %s", what)
                self.errors.append(f"{what}: {type(error).__name__}: {error}")
            self.supervise()

    def supervise(self) -> None:
        """What exited on its own (not killed by the schedule) starts again, as under a
        process supervisor; the report counts it."""
        names = frozenset({*self.stack.worker_names, "beat"})
        for name, code in self.stack.restart_exited(names):
            self.crashes.append({"what": name, "exit_code": code, "at": time.time()})

    def _strike(self, what: str) -> None:
        at, killed_at = time.monotonic(), time.time()
        name = what
        if what == "redis":
            self.stack.restart_redis()
        elif what == "worker":  # the worker processes in turn: the others work on meanwhile
            names = self.stack.worker_names
            name = names[sum(d["what"] == "worker" for d in self.done) % len(names)]
            child = self.stack.restart(name)
            wait_for_ping(self.stack, READY_DEADLINE_S, child)
        else:
            self.stack.restart(what)
        self.done.append({"what": what, "name": name, "at": time.time(), "killed_at": killed_at,
                          "took_s": round(time.monotonic() - at, 3)})  # fmt: skip

    def kill_times(self) -> list[float]:
        """When each worker was killed (epoch seconds)."""
        return [d["killed_at"] for d in self.done if d["what"] == "worker"]

    def report(self) -> dict[str, Any]:
        kills = {name: sum(1 for d in self.done if d["what"] == name)
                 for name in ("worker", "beat", "redis")}  # fmt: skip
        return {"exchange": self.exchange_faults, "restarts": kills, "events": self.done,
                "crashed_and_restarted": self.crashes, "errors": self.errors}  # fmt: skip
