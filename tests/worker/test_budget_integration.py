"""Several real processes, each with its own worker context, hammer the paper exchange set
to a low rate limit through one account's shared budget in a real Redis, while the
exchange throws a burst of 429s: it never sees more than the budget allows, and every call
ends counted (through, or ``BudgetExhausted``)."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
import traceback
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy.orm import Session

from brokers.errors import RateLimited
from core.enums import BrokerKind
from models.accounts import ensure_account
from models.db import make_engine
from tests.conftest import migrated_database
from tests.paper_exchange import PaperExchange
from worker.budget import BudgetExhausted, BudgetSize, budget_stats
from worker.context import context

pytestmark = pytest.mark.integration

ACCOUNT = "budget"
CREDENTIALS_ENV = "ORDERSYNC_ACCOUNT_BUDGET_TEST"
LIMIT_PER_MIN = 120  # the exchange's and the account's: 24 at once, then 1.2 a second
PROCESSES = 4
THREADS = 4  # callers per process, as in a threaded worker
CALLS = 8  # per caller: 128 calls in all, more than the exchange takes in a minute
INJECTED_429 = 4
MAX_WAIT_S = 1.5
HEADROOM = 0.8
SIZE = BudgetSize.of(LIMIT_PER_MIN, headroom=HEADROOM, sweep_reserve=0.25)
DEADLINE_S = 120.0
OUTCOMES = ("ok", "exhausted", "rate_limited", "wrong_ids")


def _hammer(start: Any, results: Any) -> None:
    """One worker process (its settings from the inherited environment): THREADS callers
    each make CALLS reads through the account's adapter, each outcome counted."""
    try:
        ctx = context()
        with ctx.sessions() as session:
            account = ctx.account(session, name=ACCOUNT)
        adapter = ctx.adapter(account)
        counts: Counter[str] = Counter()
        lock = threading.Lock()

        def caller() -> None:
            for _ in range(CALLS):
                try:
                    adapter.list_positions()
                    outcome = "ok"
                except BudgetExhausted as error:
                    outcome = "exhausted" if error.account_id == account.id else "wrong_ids"
                except RateLimited:  # the adapter's own retries all met 429s
                    outcome = "rate_limited"
                with lock:
                    counts[outcome] += 1

        threads = [threading.Thread(target=caller) for _ in range(THREADS)]
        start.wait(timeout=DEADLINE_S)
        began = time.time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=DEADLINE_S)
        alive = sum(thread.is_alive() for thread in threads)
        summary = {key: counts[key] for key in OUTCOMES}
        results.put({**summary, "began": began, "ended": time.time(), "alive": alive})
    except BaseException:
        results.put({"error": traceback.format_exc()})
        start.abort()  # the test fails at once instead of waiting for this process


def test_processes_share_one_budget_and_lose_nothing_under_429s(
    paper_exchange: PaperExchange, tracking_redis_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    database_url = next(migrated_database("sqlite", tmp_path))
    engine = make_engine(database_url)
    with Session(engine) as session:
        account = ensure_account(
            session, name=ACCOUNT, broker=BrokerKind.ALPACA, base_url=paper_exchange.base_url,
            credentials_env=CREDENTIALS_ENV, rate_limit_per_min=LIMIT_PER_MIN,
            now=datetime.now(UTC),
        )  # fmt: skip
        session.commit()
        account_id = account.id
    engine.dispose()
    paper_exchange.set_faults(rate_limit_per_min=LIMIT_PER_MIN)
    env = {  # set before the processes start (and import ordersync), so they inherit it
        "ORDERSYNC_DATABASE_URL": database_url,
        "ORDERSYNC_REDIS_URL": tracking_redis_url,
        "ORDERSYNC_VAR_DIR": str(tmp_path / "var"),
        "ORDERSYNC_RATE_LIMIT_HEADROOM": str(HEADROOM),
        "ORDERSYNC_RATE_LIMIT_MAX_WAIT_S": str(MAX_WAIT_S),
        "ORDERSYNC_RATE_LIMIT_FRESH_MAX_WAIT_S": str(MAX_WAIT_S),
        "ORDERSYNC_RATE_LIMIT_MONITOR_RESERVE": "0",  # one level of callers: no priorities
        "ORDERSYNC_BROKER_MAX_RETRY_WAIT_S": "1.5",
        f"{CREDENTIALS_ENV}_KEY_ID": paper_exchange.key_id,
        f"{CREDENTIALS_ENV}_SECRET_KEY": paper_exchange.secret_key,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(PROCESSES + 1)  # every process set up before any call is made
    results = spawn.Queue()
    processes = [
        spawn.Process(target=_hammer, args=(start, results), daemon=True) for _ in range(PROCESSES)
    ]
    outcomes: list[dict[str, Any]] = []
    try:
        for process in processes:
            process.start()
        start.wait(timeout=DEADLINE_S)
        # A storm of 429s once the burst is spent: the bucket is empty, callers are waiting.
        paper_exchange.wait_for(lambda: paper_exchange.requests()["total"] >= SIZE.capacity, 30)
        paper_exchange.set_faults(next_429=INJECTED_429)
        deadline = time.monotonic() + DEADLINE_S
        while len(outcomes) < PROCESSES:
            try:
                outcomes.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"only {len(outcomes)} of {PROCESSES} processes reported "
                                     f"within {DEADLINE_S} s") from None  # fmt: skip
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()

    errors = [outcome["error"] for outcome in outcomes if "error" in outcome]
    assert not errors, "\n".join(errors)

    seen = paper_exchange.requests()
    client = redis.Redis.from_url(tracking_redis_url)
    counts = budget_stats(client, account_id)
    client.close()
    ok, exhausted, rate_limited = (
        sum(outcome[key] for outcome in outcomes) for key in ("ok", "exhausted", "rate_limited")
    )
    span_s = max(o["ended"] for o in outcomes) - min(o["began"] for o in outcomes)

    # The exchange never had to refuse a request, and saw no more than the budget allows.
    assert seen["rate_limited"] == 0
    assert seen["total"] <= LIMIT_PER_MIN
    assert seen["total"] <= SIZE.capacity + SIZE.per_minute / 60 * span_s + 2
    # Nothing lost: every call went through or ended in a named, counted exception.
    assert sum(outcome["alive"] for outcome in outcomes) == 0
    assert ok + exhausted + rate_limited == PROCESSES * THREADS * CALLS
    assert sum(outcome["wrong_ids"] for outcome in outcomes) == 0
    assert counts.exhausted == exhausted > 0
    assert counts.waited > 0
    assert counts.wait_ms > 0
    # Every request had a token, and every 429 was seen by the budget.
    assert seen["total"] == counts.granted
    assert seen["faulted"] == counts.throttled_429 == INJECTED_429
    assert ok == seen["total"] - INJECTED_429
