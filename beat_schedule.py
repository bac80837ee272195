"""The beat schedule. Every interval is a setting. The reconciliation sweeps, stale-order
alerts and cleanup arrive with the reconciliation issue."""

from __future__ import annotations

from typing import Any

from ordersync.settings import get_settings

_settings = get_settings()

SCHEDULE: dict[str, dict[str, Any]] = {
    "revive-monitors": {
        "task": "ordersync.revive_monitors",
        "schedule": _settings.monitor_revive_interval_s,
        "options": {"expires": _settings.monitor_revive_interval_s},
    },
}
