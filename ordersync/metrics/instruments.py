"""What workers count and time, as Prometheus counters and histograms.

Every instrument has labels: in a prefork worker the values live in per-process files
(``ordersync.metrics.multiproc``), and a labelled instrument creates its values only when a
label set is first used, which is after the worker switched to those files. Labels are
bounded: broker, account name, endpoint, outcome, sweep; never an order id.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

# Where the worker's instruments register: the worker's scrape reads the per-process files
# instead, and a process without prefork children (tests, the CLI) can collect this one.
REGISTRY: Final = CollectorRegistry(auto_describe=True)

# 10 ms to 5 min: a fill seen by a fast path, one seen by the 30 s sweep, one after a backlog.
LATENCY_BUCKETS_S: Final = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
REQUEST_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SWEEP_BUCKETS_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

PLACEMENT_LATENCY = Histogram(
    "ordersync_placement_latency_seconds",
    "From the placement task's send (its ordersync_sent_at header, else its first start) "
    "to the broker's acknowledgement.",
    ["broker", "account"], buckets=LATENCY_BUCKETS_S, registry=REGISTRY,
)  # fmt: skip
FILL_DETECTION_LATENCY = Histogram(
    "ordersync_fill_detection_latency_seconds",
    "From the broker's execution time of a fill to its commit in ordersync's database.",
    ["broker", "account", "source"], buckets=LATENCY_BUCKETS_S, registry=REGISTRY,
)  # fmt: skip
FILLS = Counter(
    "ordersync_fills_recorded_total", "Fills recorded (each broker fill exactly once).",
    ["broker", "account", "source"], registry=REGISTRY,
)  # fmt: skip
PLACEMENTS = Counter(
    "ordersync_placements_total",
    "Placements that ended: acknowledged by the broker, rejected by it, or never sent.",
    ["broker", "account", "outcome"], registry=REGISTRY,
)  # fmt: skip
PLACEMENTS_LATE = Counter(
    "ordersync_placements_late_total",
    "Placements the broker acknowledged only after the order's placement deadline.",
    ["broker", "account"], registry=REGISTRY,
)  # fmt: skip
PLACEMENTS_DROPPED = Counter(
    "ordersync_placements_dropped_total",
    "Placements that ended without an order at the broker although the call was valid.",
    ["account", "reason"], registry=REGISTRY,
)  # fmt: skip
PLACEMENTS_REFUSED = Counter(
    "ordersync_placements_refused_total",
    "Placements refused, by reason: invalid_arguments (the call broke the contract; nothing "
    "was written) or broker_rejected (the broker refused the order).",
    ["reason"], registry=REGISTRY,
)  # fmt: skip
BROKER_REQUESTS = Counter(
    "ordersync_broker_requests_total",
    "HTTP requests to brokers, each attempt once, by outcome (2xx, 4xx, 429, 5xx, error).",
    ["broker", "account", "endpoint", "outcome"], registry=REGISTRY,
)  # fmt: skip
BROKER_REQUEST_DURATION = Histogram(
    "ordersync_broker_request_duration_seconds", "Time of one HTTP request to a broker.",
    ["broker", "account", "endpoint"], buckets=REQUEST_BUCKETS_S, registry=REGISTRY,
)  # fmt: skip
BUDGET_LEASES = Counter(
    "ordersync_budget_leases_total",
    "Leases of request budget a process took (spent locally without a Redis round trip).",
    ["account"], registry=REGISTRY,
)  # fmt: skip
MONITOR_CHECKS = Counter(
    "ordersync_monitor_checks_total", "Monitor checks of an order, by outcome.",
    ["outcome"], registry=REGISTRY,
)  # fmt: skip
LOCK_SKIPS = Counter(
    "ordersync_lock_skips_total",
    "Work skipped because another process held the order's or sweep's lock.",
    ["task"], registry=REGISTRY,
)  # fmt: skip
CHAINS_REVIVED = Counter(
    "ordersync_monitor_chains_revived_total",
    "Monitor chains restarted after their next check went overdue (a worker died).",
    ["queue"], registry=REGISTRY,
)  # fmt: skip
FILL_GAPS = Counter(
    "ordersync_fill_gaps_total",
    "Fill gaps (the broker reports more filled than the recorded fills): opened (first "
    "re-read), reread, closed, given_up.",
    ["event"], registry=REGISTRY,
)  # fmt: skip
SWEEP_DURATION = Histogram(
    "ordersync_sweep_duration_seconds", "Wall time of a sweep's or beat job's run.",
    ["sweep"], buckets=SWEEP_BUCKETS_S, registry=REGISTRY,
)  # fmt: skip
SWEEP_RUNS = Counter(
    "ordersync_sweep_runs_total", "Sweep and beat job runs by outcome (ok, failed).",
    ["sweep", "outcome"], registry=REGISTRY,
)  # fmt: skip
RECONCILE = Counter(
    "ordersync_reconcile_total",
    "What reconciliation found per account: orders examined, anomalies, orders adopted, "
    "orders declared lost, position mismatches.",
    ["sweep", "account", "result"], registry=REGISTRY,
)  # fmt: skip
WEBHOOK_DELIVERIES = Counter(
    "ordersync_webhook_deliveries_total", "Event webhook deliveries by outcome.",
    ["endpoint", "outcome"], registry=REGISTRY,
)  # fmt: skip
STREAM_EVENTS = Counter(
    "ordersync_stream_events_total",
    "Order updates received from a broker stream, by the broker's event name "
    "(unreadable: a message that could not be read).",
    ["account", "kind"], registry=REGISTRY,
)  # fmt: skip
STREAM_LAG = Histogram(
    "ordersync_stream_lag_seconds",
    "From a stream event's broker timestamp to its commit in ordersync's database.",
    ["account"], buckets=LATENCY_BUCKETS_S, registry=REGISTRY,
)  # fmt: skip
STREAM_CONNECTS = Counter(
    "ordersync_stream_connects_total",
    "Stream connections made (authenticated, listening and caught up).",
    ["account"], registry=REGISTRY,
)  # fmt: skip
STREAM_RECONNECTS = Counter(
    "ordersync_stream_disconnects_total",
    "Stream connections lost or given up, by the error that ended them.",
    ["account", "reason"], registry=REGISTRY,
)  # fmt: skip
