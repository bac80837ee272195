"""The beat schedule. Every interval is a setting; every entry expires after one interval,
so a backlog never replays stale sweeps (the next run is due by then anyway)."""

from __future__ import annotations

from typing import Any

from ordersync.settings import get_settings

_settings = get_settings()


def _every(task: str, interval_s: float) -> dict[str, Any]:
    return {"task": task, "schedule": interval_s, "options": {"expires": interval_s}}


SCHEDULE: dict[str, dict[str, Any]] = {
    "revive-monitors": _every("ordersync.revive_monitors", _settings.monitor_revive_interval_s),
    "reconcile-open-orders": _every("ordersync.reconcile_open_orders", _settings.sweep_interval_s),
    "deep-reconcile": _every("ordersync.deep_reconcile", _settings.deep_reconcile_interval_s),
    "report-stale-orders": _every(
        "ordersync.report_stale_orders", _settings.stale_report_interval_s
    ),
    "purge-closed-orders": _every("ordersync.purge_closed_orders", _settings.purge_interval_s),
    "relay-events": _every("ordersync.relay_events", _settings.outbox_relay_interval_s),
}
if _settings.event_webhooks():  # only when there is somewhere to deliver to
    SCHEDULE["deliver-event-webhooks"] = _every(
        "ordersync.deliver_event_webhooks", _settings.event_webhook_interval_s
    )
