"""What the worker's one-line metric calls count: bounded labels, the placement latency's
start, late placements, and a metrics failure that never fails the work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from ordersync.metrics import record
from ordersync.metrics.instruments import REGISTRY
from worker.tasks import sent_at_of

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("status", "label"),
    [(200, "2xx"), (204, "2xx"), (404, "4xx"), (422, "4xx"), (429, "429"), (503, "5xx"),
     (None, "error")],
)  # fmt: skip
def test_status_classes_are_bounded(status: int | None, label: str) -> None:
    assert record.status_class(status) == label


@pytest.mark.parametrize(
    ("reason", "label"),
    [("polled", "polled"), ("window over; the sweeps own it", "window_over"),
     ("filled (shared check)", "filled_shared_check"), ("placement placed", "placement_placed"),
     ("", "unknown")],
)  # fmt: skip
def test_reasons_become_bounded_labels(reason: str, label: str) -> None:
    assert record.slug(reason) == label


def test_placement_latency_starts_at_the_send_when_the_sender_stamped_it() -> None:
    labels = {"broker": "alpaca", "account": "rec-stamped"}
    token = record.SENT_AT.set((T0 - timedelta(seconds=2)).timestamp())
    try:
        record.placement_acknowledged("alpaca", "rec-stamped", T0, T0 + timedelta(seconds=1),
                                      deadline=T0 + timedelta(seconds=30))  # fmt: skip
    finally:
        record.SENT_AT.reset(token)
    assert value("ordersync_placement_latency_seconds_sum", **labels) == pytest.approx(3.0)
    assert value("ordersync_placements_late_total", **labels) == 0


def test_placement_latency_starts_at_the_write_without_a_stamp_and_late_is_counted() -> None:
    labels = {"broker": "alpaca", "account": "rec-late"}
    record.placement_acknowledged("alpaca", "rec-late", T0, T0 + timedelta(seconds=40),
                                  deadline=T0 + timedelta(seconds=30))  # fmt: skip
    assert value("ordersync_placement_latency_seconds_sum", **labels) == pytest.approx(40.0)
    assert value("ordersync_placements_late_total", **labels) == 1
    assert value("ordersync_placements_total", outcome="acknowledged", **labels) == 1


@pytest.mark.parametrize(
    ("headers", "attribute", "expected"),
    [({"ordersync_sent_at": 1700000000.5}, None, 1700000000.5),
     ({}, "1700000001", 1700000001.0),
     ({"ordersync_sent_at": "soon"}, None, None),
     ({"ordersync_sent_at": "nan"}, None, None),
     ({"ordersync_sent_at": 1700000000500}, None, None),  # milliseconds
     ({"ordersync_sent_at": 0}, None, None),  # 1970
     ({"ordersync_sent_at": 1700000000 - 86401}, None, None),  # over a day before
     ({"ordersync_sent_at": 1700000061}, None, None),  # a minute ahead: a wrong clock
     (None, None, None)],
)  # fmt: skip
def test_the_sent_stamp_is_read_from_the_message_and_malformed_ones_are_ignored(
    headers: dict[str, object] | None, attribute: object, expected: float | None
) -> None:
    request = SimpleNamespace(headers=headers)
    if attribute is not None:
        request.ordersync_sent_at = attribute
    assert sent_at_of(request, now=1700000000.0) == expected


def test_a_metrics_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    record.reconciled("sweep", "acct", {"examined": "three"})  # type: ignore[dict-item]
    assert "metrics: reconciled failed" in caplog.text


def test_publishing_stamps_when_a_call_was_sent_once() -> None:
    headers: dict[str, object] = {}
    record.stamp_sent_at(headers=headers)
    first = headers[record.SENT_AT_HEADER]
    record.stamp_sent_at(headers=headers)
    assert headers[record.SENT_AT_HEADER] == first
    assert isinstance(first, float)


def test_the_sent_stamp_holds_only_while_its_message_is_worked_on() -> None:
    with record.sending(1700000000.0):
        assert record.SENT_AT.get() == 1700000000.0
    assert record.SENT_AT.get() is None
    with pytest.raises(RuntimeError), record.sending(1700000000.0):
        raise RuntimeError("the placement failed")
    assert record.SENT_AT.get() is None


def test_a_far_stamp_never_costs_the_acknowledgement_count() -> None:
    labels = {"broker": "alpaca", "account": "rec-far"}
    with record.sending(1e15):  # not a plausible time: datetime refuses it
        record.placement_acknowledged("alpaca", "rec-far", T0, T0, deadline=None)
    assert value("ordersync_placements_total", outcome="acknowledged", **labels) == 1
