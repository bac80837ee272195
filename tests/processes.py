"""Helpers for tests that run real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any], timeout_s: float = 30, *,
                 group: bool = False) -> None:  # fmt: skip
    """SIGTERM, then SIGKILL if it will not go; ``group`` signals its whole process group
    (a session leader's children too), so no process is left behind."""

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)

    if process.poll() is None:
        send(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            process.wait(timeout=10)
    if group:
        send(signal.SIGKILL)  # stragglers of a group whose leader already exited
