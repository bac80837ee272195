"""The beat schedule. The reconciliation sweeps, stale-order alerts and cleanup arrive with
the reconciliation issue; every interval will be a setting."""

from __future__ import annotations

from typing import Any

SCHEDULE: dict[str, dict[str, Any]] = {}
