"""The gauges that come from the database and Redis, read at scrape time by one process
(``ordersync exporter``, later the API) instead of by every worker: orders by status,
stale orders, budgets, sweeps, outbox, webhooks, queues and workers online.

A source that does not answer makes its gauges absent for that scrape and
``ordersync_collector_source_up{source}`` 0; the other sources are still reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from ordersync.metrics import readings
from ordersync.settings import Settings
from worker.heartbeat import first_missing, last_runs, sweep_intervals
from worker.stale import STALE_CLASSES
from worker.stale_report import read_report

logger = logging.getLogger(__name__)

# Every name this collector exports, with its type: the ops files may name only these and
# the workers' instruments.
COLLECTED_METRICS: Final = {
    "ordersync_orders": "gauge",
    "ordersync_stale_orders": "gauge",
    "ordersync_stale_report_timestamp_seconds": "gauge",
    "ordersync_fill_gaps_open": "gauge",
    "ordersync_budget_tokens": "gauge",
    "ordersync_budget_capacity_tokens": "gauge",
    "ordersync_budget_granted": "counter",
    "ordersync_budget_waits": "counter",
    "ordersync_budget_wait_seconds": "counter",
    "ordersync_budget_exhausted": "counter",
    "ordersync_broker_rate_limited": "counter",
    "ordersync_sweep_last_success_timestamp_seconds": "gauge",
    "ordersync_sweep_last_run_timestamp_seconds": "gauge",
    "ordersync_sweep_interval_seconds": "gauge",
    "ordersync_sweep_last_run_ok": "gauge",
    "ordersync_outbox_backlog_events": "gauge",
    "ordersync_outbox_oldest_event_age_seconds": "gauge",
    "ordersync_webhook_pending_events": "gauge",
    "ordersync_webhook_dead_letters": "gauge",
    "ordersync_queue_depth_messages": "gauge",
    "ordersync_workers_online": "gauge",
    "ordersync_stream_healthy": "gauge",
    "ordersync_collector_source_up": "gauge",
}


@dataclass(frozen=True, slots=True)
class Sources:
    settings: Settings
    sessions: sessionmaker[Session]
    redis: redis.Redis
    amqp: bool
    broker_url: str | None = None  # the Celery transport; None: the Celery app's
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


class StateCollector(Collector):
    """Reads the live state at each scrape (a few queries and Redis calls)."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def describe(self) -> list[Metric]:
        return []  # no reads at registration: the first scrape does them

    def collect(self) -> Iterator[Metric]:
        now = self.sources.now()
        up = GaugeMetricFamily(
            "ordersync_collector_source_up",
            "1 when the source answered this scrape (database, redis, budget, transport).",
            labels=["source"],
        )
        down: set[str] = set()
        for source, read in (
            ("database", self._database),
            ("redis", self._redis),
            ("budget", self._budget),
            ("transport", self._transport),
        ):
            if source == "budget" and down:  # it needs both: not a second wait this scrape
                up.add_metric([source], 0)
                continue
            try:
                metrics = list(read(now))
            except Exception as error:  # one source down must not hide the others
                logger.warning("metrics: %s unavailable this scrape: %s", source, error)
                up.add_metric([source], 0)
                down.add(source)
                continue
            up.add_metric([source], 1)
            yield from metrics
        yield up

    def _database(self, now: datetime) -> Iterator[Metric]:
        with self.sources.sessions() as session:
            orders = readings.orders_by_status(session)
            gaps = readings.fill_gaps_open(session)
            backlog, oldest_s = readings.outbox_backlog(session, now)
        yield _gauge("ordersync_orders", "Orders in the database by account and status.",
                     ["account", "status"], orders)  # fmt: skip
        yield _gauge("ordersync_fill_gaps_open",
                     "Orders the broker reports more filled than their recorded fills.",
                     ["account"], {(a,): n for a, n in gaps.items()})  # fmt: skip
        yield _gauge("ordersync_outbox_backlog_events",
                     "Outbox events not yet published to the event stream.", [],
                     {(): backlog})  # fmt: skip
        yield _gauge("ordersync_outbox_oldest_event_age_seconds",
                     "Age of the oldest unpublished outbox event (0 when none).", [],
                     {(): oldest_s or 0.0})  # fmt: skip

    def _budget(self, now: datetime) -> Iterator[Metric]:
        """Needs both: the accounts from the database, their buckets and streams from Redis."""
        with self.sources.sessions() as session:
            budgets = readings.budgets(session, self.sources.redis, self.sources.settings, now)
            streams = readings.stream_health(session, self.sources.redis)
        yield from _budget_metrics(budgets)
        yield _gauge("ordersync_stream_healthy",
                     "1 while the account's broker stream is connected, listening and caught "
                     "up (its monitors then poll rarely), else 0.", ["account"],
                     {(name,): int(up) for name, up in streams.items()})  # fmt: skip

    def _redis(self, now: datetime) -> Iterator[Metric]:
        client, settings = self.sources.redis, self.sources.settings
        report = read_report(client)
        counts = report.counts if report is not None else {}
        yield _gauge("ordersync_stale_orders",
                     "Stale orders by class, as the last stale report counted them.",
                     ["class"], {(c,): counts.get(c, 0) for c in STALE_CLASSES})  # fmt: skip
        yield _gauge("ordersync_stale_report_timestamp_seconds",
                     "When the last stale report ran (no sample before the first).", [],
                     {} if report is None else {(): report.at.timestamp()})  # fmt: skip
        yield from _sweep_metrics(client, settings)
        webhooks = readings.webhook_counts(client)
        yield _gauge("ordersync_webhook_pending_events",
                     "Events waiting for delivery per webhook endpoint (as last counted).",
                     ["endpoint"],
                     {(n,): int(c.get("pending", 0)) for n, c in webhooks.items()})  # fmt: skip
        yield _gauge("ordersync_webhook_dead_letters",
                     "Dead-lettered webhook deliveries per endpoint (as last counted).",
                     ["endpoint"],
                     {(n,): int(c.get("dead", 0)) for n, c in webhooks.items()})  # fmt: skip
        online = readings.workers_online(client, now)
        yield _gauge("ordersync_workers_online",
                     "Celery workers that said they are online in the last 30 s.", [],
                     {(): len(online)})  # fmt: skip

    def _transport(self, now: datetime) -> Iterator[Metric]:
        depths = readings.queue_depths(self.sources.amqp, self.sources.broker_url)
        known = {(q,): n for q, n in depths.items() if n is not None}
        if len(known) < len(depths) and not known:
            raise ConnectionError("no queue depth could be read")
        yield _gauge("ordersync_queue_depth_messages", "Messages waiting in a Celery queue.",
                     ["queue"], known)  # fmt: skip


def _gauge(name: str, doc: str, labels: list[str],
           values: Mapping[Any, float]) -> GaugeMetricFamily:  # fmt: skip
    """``values``: label values (a tuple, in ``labels`` order) -> value."""
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), float(value))
    return family


def _budget_metrics(budgets: list[readings.BudgetReading]) -> Iterator[Metric]:
    tokens = GaugeMetricFamily("ordersync_budget_tokens",
                               "Request budget tokens left now.", labels=["account"])  # fmt: skip
    capacity = GaugeMetricFamily("ordersync_budget_capacity_tokens",
                                 "Size of the account's request budget.",
                                 labels=["account"])  # fmt: skip
    counters = {
        "granted": CounterMetricFamily("ordersync_budget_granted",
                                       "Broker requests the budget let through.",
                                       labels=["account"]),
        "waited": CounterMetricFamily("ordersync_budget_waits",
                                      "Broker requests that waited for budget.",
                                      labels=["account"]),
        "wait_s": CounterMetricFamily("ordersync_budget_wait_seconds",
                                      "Time spent waiting for budget, in all.",
                                      labels=["account"]),
        "exhausted": CounterMetricFamily("ordersync_budget_exhausted",
                                         "Work that gave up waiting for budget.",
                                         labels=["account"]),
        "throttled_429": CounterMetricFamily("ordersync_broker_rate_limited",
                                             "429 answers from the broker.",
                                             labels=["account"]),
    }  # fmt: skip
    for b in budgets:
        tokens.add_metric([b.account], b.tokens)
        capacity.add_metric([b.account], b.capacity)
        for attr, family in counters.items():
            family.add_metric([b.account], float(getattr(b, attr)))
    yield tokens
    yield capacity
    yield from counters.values()


def _sweep_metrics(client: redis.Redis, settings: Settings) -> Iterator[Metric]:
    """A sweep that never succeeded counts from when the dead-man check first missed it,
    so "not succeeded within 3 intervals" fires for it too."""
    runs = last_runs(client)
    missing = first_missing(client)
    intervals = sweep_intervals(settings)
    ok_at = GaugeMetricFamily("ordersync_sweep_last_success_timestamp_seconds",
                              "When the sweep last finished without error.",
                              labels=["sweep"])  # fmt: skip
    ran_at = GaugeMetricFamily("ordersync_sweep_last_run_timestamp_seconds",
                               "When the sweep last finished.", labels=["sweep"])  # fmt: skip
    ok = GaugeMetricFamily("ordersync_sweep_last_run_ok",
                           "1 when the sweep's last run succeeded.", labels=["sweep"])  # fmt: skip
    every = GaugeMetricFamily("ordersync_sweep_interval_seconds",
                              "How often beat runs the sweep.", labels=["sweep"])  # fmt: skip
    for name, interval_s in sorted(intervals.items()):
        every.add_metric([name], interval_s)
    for name, since in sorted(missing.items()):
        run = runs.get(name)
        if run is None or run.last_ok is None:
            ok_at.add_metric([name], since.timestamp())
    for name, run in sorted(runs.items()):
        if run.last_ok is not None:
            ok_at.add_metric([name], run.last_ok.timestamp())
        if run.last_finished is not None:
            ran_at.add_metric([name], run.last_finished.timestamp())
        if run.last_run_ok is not None:
            ok.add_metric([name], 1.0 if run.last_run_ok else 0.0)
    yield from (ok_at, ran_at, ok, every)
