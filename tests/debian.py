"""Debian packages a test needs (promtool, chromium), installed by the test set-up itself
when missing, so `make test` needs no manual step."""

from __future__ import annotations

import os
import shutil
import subprocess


def in_ci() -> bool:
    """CI (or ``ORDERSYNC_TEST_REQUIRE_SERVICES=1``): a missing tool fails, never skips."""
    ci = os.environ.get("CI", "").strip().lower()
    return ci not in ("", "0", "false", "no") or (
        os.environ.get("ORDERSYNC_TEST_REQUIRE_SERVICES") == "1"
    )


def _install_command(*args: str) -> list[str]:
    """``apt-get args``, as root or through ``sudo -n``; raises LookupError when neither."""
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise LookupError("apt-get is not available")
    command = ["env", "DEBIAN_FRONTEND=noninteractive", apt_get, *args]
    if os.geteuid() == 0:
        return command
    sudo = shutil.which("sudo")
    if sudo is None:
        raise LookupError("not root, and sudo is not available")
    return [sudo, "-n", *command]


def install(*packages: str, timeout_s: float = 600) -> None:
    """``apt-get update`` then install ``packages``; raises LookupError with the reason."""
    lock_wait = ["-o", "DPkg::Lock::Timeout=300"]  # another apt run holds the lock
    steps = (
        _install_command(*lock_wait, "update"),
        _install_command(*lock_wait, "install", "-y", "--no-install-recommends", *packages),
    )
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              check=False)  # fmt: skip
        if done.returncode != 0:
            raise LookupError(
                f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
            )
