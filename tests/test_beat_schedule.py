"""The beat schedule: every sweep is there, its interval a setting, and it expires after one
interval so a backlog never replays stale sweeps."""

from __future__ import annotations

import importlib

import pytest

import beat_schedule
from ordersync.settings import get_settings
from worker.tasks import app  # importing the tasks registers them


@pytest.fixture
def schedule(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, object]]:
    monkeypatch.setenv("ORDERSYNC_SWEEP_INTERVAL_S", "7")
    get_settings.cache_clear()
    try:
        return dict(importlib.reload(beat_schedule).SCHEDULE)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        importlib.reload(beat_schedule)


@pytest.mark.parametrize(
    ("task", "interval_s"),
    [
        ("ordersync.reconcile_open_orders", 7.0),
        ("ordersync.deep_reconcile", 300.0),
        ("ordersync.report_stale_orders", 30.0),
        ("ordersync.purge_closed_orders", 3600.0),
        ("ordersync.revive_monitors", 5.0),
        ("ordersync.relay_events", 1.0),
    ],
)
def test_every_sweep_is_scheduled_from_its_setting_and_expires(
    schedule: dict[str, dict[str, object]], task: str, interval_s: float
) -> None:
    (entry,) = [e for e in schedule.values() if e["task"] == task]
    assert entry["schedule"] == interval_s
    assert entry["options"] == {"expires": interval_s}
    assert task in app.tasks


@pytest.mark.parametrize("configured", [True, False])
def test_event_webhooks_are_scheduled_only_when_configured(
    monkeypatch: pytest.MonkeyPatch, configured: bool
) -> None:
    if configured:
        monkeypatch.setenv("ORDERSYNC_EVENT_WEBHOOK_URLS", "crm=https://hooks.example/x?k=1")
        monkeypatch.setenv("ORDERSYNC_EVENT_WEBHOOK_SECRET", "s")
        monkeypatch.setenv("ORDERSYNC_EVENT_WEBHOOK_INTERVAL_S", "0.5")
    get_settings.cache_clear()
    try:
        schedule = dict(importlib.reload(beat_schedule).SCHEDULE)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        importlib.reload(beat_schedule)
    entries = [e for e in schedule.values() if e["task"] == "ordersync.deliver_event_webhooks"]
    if configured:
        assert entries == [{"task": "ordersync.deliver_event_webhooks", "schedule": 0.5,
                            "options": {"expires": 0.5}}]  # fmt: skip
    else:
        assert entries == []
    assert "ordersync.deliver_event_webhooks" in app.tasks
    assert app.conf.task_routes["ordersync.deliver_event_webhooks"] == {
        "queue": "ordersync.monitor"
    }
