"""The shared request budget on fakeredis, with an injected clock: no real sleeping."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from brokers.base import RateLimitInfo
from brokers.errors import BrokerError, RateLimited
from brokers.registry import AccountConnection
from core.enums import BrokerKind
from ordersync.settings import Settings
from worker.budget import (
    JITTER_S,
    LEASE_TTL_S,
    MAX_LEASE,
    Budget,
    BudgetExhausted,
    BudgetSize,
    BudgetStats,
    BudgetUnavailable,
    DeadlinePassed,
    Priority,
    adapter_hooks,
    bucket_key,
    budget_stats,
    current_priority,
    priority,
    send_by,
)

ACCOUNT = "acc-1"
T0 = 1_700_000_000.0
# 100/min at 0.8 headroom: 80 a minute at most, 20 at once, 60 a minute refilled (1 per s).
SIZE = BudgetSize.of(100, headroom=0.8, sweep_reserve=0.25)
TOKEN_S = 1.0


class FakeClock:
    """Epoch seconds that move only when someone sleeps; ``during_sleep`` plays other
    processes acting while this one waits."""

    def __init__(self) -> None:
        self.now = T0
        self.sleeps: list[float] = []
        self.during_sleep: Callable[[], None] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.during_sleep is not None:
            self.during_sleep()

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_budget(server: fakeredis.FakeServer, clock: FakeClock) -> Callable[..., Budget]:
    """A budget of its own client on the shared server: each call is another process."""

    def make(size: BudgetSize = SIZE, max_wait_s: float = 30.0) -> Budget:
        client = fakeredis.FakeRedis(server=server, decode_responses=True)
        return Budget(client, ACCOUNT, size, max_wait_s=max_wait_s, clock=clock,
                      sleep=clock.sleep)  # fmt: skip

    return make


@pytest.fixture
def budget(make_budget: Callable[..., Budget]) -> Budget:
    return make_budget()


def stats(server: fakeredis.FakeServer) -> BudgetStats:
    return budget_stats(fakeredis.FakeRedis(server=server), ACCOUNT)


def drain(budget: Budget, count: int) -> None:
    for _ in range(count):
        budget.acquire(Priority.MONITOR)


# -- size ------------------------------------------------------------------------------------


def test_size_for_alpaca_keeps_every_minute_within_the_headroom() -> None:
    size = BudgetSize.of(200, headroom=0.8, sweep_reserve=0.25)
    assert (size.capacity, size.per_minute, size.sweep_floor) == (40, 120, 10)


@given(
    limit=st.integers(min_value=1, max_value=1_000_000),
    headroom=st.floats(min_value=0.05, max_value=1.0),
    reserve=st.floats(min_value=0.0, max_value=0.99),
)
def test_size_burst_plus_a_minute_of_refill_never_exceeds_the_limit(
    limit: int, headroom: float, reserve: float
) -> None:
    assume(limit * headroom > 1)  # a budget under one request a minute cannot be kept
    size = BudgetSize.of(limit, headroom=headroom, sweep_reserve=reserve)
    assert size.capacity >= 1
    assert size.per_minute > 0
    assert size.capacity + size.per_minute <= limit * headroom + 1e-6
    assert 0 <= size.sweep_floor <= size.capacity - 1  # a sweep can always get a token


def test_size_refuses_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BudgetSize.of(0, headroom=0.8, sweep_reserve=0.25)


# -- refill ----------------------------------------------------------------------------------


def test_a_fresh_bucket_is_full_then_refills_one_token_per_interval(
    budget: Budget, clock: FakeClock, server: fakeredis.FakeServer
) -> None:
    drain(budget, 20)
    assert clock.sleeps == []

    budget.acquire()

    assert clock.sleeps == [pytest.approx(TOKEN_S, abs=JITTER_S)]
    assert stats(server) == BudgetStats(granted=21, waited=1, wait_ms=round(clock.sleeps[0] * 1000))


def test_refill_is_proportional_to_time_and_capped_at_capacity(
    budget: Budget, clock: FakeClock
) -> None:
    drain(budget, 20)
    clock.now += 5.5 * TOKEN_S
    drain(budget, 5)
    assert clock.sleeps == []
    budget.acquire()  # half a token left: half an interval to wait
    assert clock.sleeps == [pytest.approx(TOKEN_S / 2, abs=JITTER_S)]

    clock.now += 3600
    clock.sleeps.clear()
    drain(budget, 20)
    assert clock.sleeps == []
    budget.acquire()
    assert len(clock.sleeps) == 1


def test_a_request_takes_as_many_tokens_as_it_weighs(
    budget: Budget, clock: FakeClock, server: fakeredis.FakeServer
) -> None:
    budget.acquire(cost=15)
    budget.acquire(cost=5)
    assert clock.sleeps == []

    budget.acquire(cost=4)  # the bucket is empty: four intervals for four tokens

    assert clock.sleeps == [pytest.approx(4 * TOKEN_S, abs=JITTER_S)]
    assert stats(server).granted == 24


@pytest.mark.parametrize("cost", [0, -1])
def test_a_weight_below_one_is_refused(budget: Budget, cost: int) -> None:
    with pytest.raises(ValueError, match=f"not {cost}"):
        budget.acquire(cost=cost)


def test_a_request_heavier_than_the_bucket_waits_for_it_full_and_takes_all(
    budget: Budget, clock: FakeClock, server: fakeredis.FakeServer
) -> None:
    budget.acquire(cost=1)
    budget.acquire(cost=21)  # 21 of a 20-token bucket: once it is full again, all of it
    assert clock.sleeps == [pytest.approx(TOKEN_S, abs=JITTER_S)]
    assert stats(server).granted == 21
    assert bucket_tokens(server) == 0


def test_a_sweep_heavier_than_the_bucket_above_its_reserve_is_still_granted(
    budget: Budget, clock: FakeClock
) -> None:
    budget.acquire(Priority.SWEEP, cost=16)  # more than the 15 above the reserve of 5
    assert clock.sleeps == []


def test_a_heavy_request_waits_for_the_sweep_reserve_too(budget: Budget, clock: FakeClock) -> None:
    budget.acquire(Priority.SWEEP, cost=10)  # 10 left of 20, 5 of them reserved
    assert clock.sleeps == []
    budget.acquire(Priority.SWEEP, cost=6)  # would leave 4: waits for 1 token
    assert clock.sleeps == [pytest.approx(TOKEN_S, abs=JITTER_S)]


def test_processes_share_one_bucket(make_budget: Callable[..., Budget], clock: FakeClock) -> None:
    first, second = make_budget(), make_budget()
    drain(first, 20)
    second.acquire()
    assert clock.sleeps == [pytest.approx(TOKEN_S, abs=JITTER_S)]


def test_the_redis_clock_is_used_without_an_injected_one(server: fakeredis.FakeServer) -> None:
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    sleeps: list[float] = []
    budget = Budget(client, ACCOUNT, SIZE, max_wait_s=0.5, sleep=sleeps.append)
    drain(budget, 20)
    with pytest.raises(BudgetExhausted):  # the next token is about 1 s away
        budget.acquire()
    assert sleeps == []
    assert stats(server).granted == 20


# -- priorities ------------------------------------------------------------------------------


def test_sweeps_leave_the_reserve_to_fresh_orders(budget: Budget, clock: FakeClock) -> None:
    for _ in range(15):  # 20 tokens, 5 (a quarter) reserved
        budget.acquire(Priority.SWEEP)
    assert clock.sleeps == []

    budget.acquire(Priority.PLACEMENT)  # a fresh order's call still goes at once
    budget.acquire(Priority.MONITOR)
    assert clock.sleeps == []

    budget.acquire(Priority.SWEEP)  # 3 left: the sweep waits until 6 are there (3 tokens)
    assert clock.sleeps == [pytest.approx(3 * TOKEN_S, abs=JITTER_S)]


def test_a_sweep_gives_up_while_monitors_keep_the_bucket_low(
    make_budget: Callable[..., Budget], clock: FakeClock, server: fakeredis.FakeServer
) -> None:
    sweep, monitors = make_budget(max_wait_s=10), make_budget()
    drain(monitors, 15)
    clock.during_sleep = lambda: monitors.acquire(Priority.MONITOR)  # each new token is spent

    with pytest.raises(BudgetExhausted) as caught:
        sweep.acquire(Priority.SWEEP)

    assert caught.value.priority is Priority.SWEEP
    assert sum(clock.sleeps) <= 10
    assert stats(server).exhausted == 1


def test_priority_context_sets_the_level_for_calls_inside_it(
    budget: Budget, clock: FakeClock
) -> None:
    assert current_priority() is Priority.MONITOR
    drain(budget, 15)
    with priority(Priority.SWEEP) as level:
        assert level is Priority.SWEEP
        with priority(Priority.PLACEMENT):
            assert current_priority() is Priority.PLACEMENT
            budget.acquire()  # placement: no wait at 5 tokens
        assert current_priority() is Priority.SWEEP
        assert clock.sleeps == []
        budget.acquire()  # sweep: waits for the reserve to refill
        assert len(clock.sleeps) == 1
    assert current_priority() is Priority.MONITOR


def test_priority_is_restored_after_an_error() -> None:
    with pytest.raises(RuntimeError), priority(Priority.SWEEP):
        raise RuntimeError("boom")
    assert current_priority() is Priority.MONITOR


# -- leases: a large bucket lends a process a few tokens -------------------------------------

# 100,000/min at 0.8: 20,000 tokens at once, so a lease is MAX_LEASE tokens.
LARGE = BudgetSize.of(100_000, headroom=0.8, sweep_reserve=0.25)


def bucket_tokens(server: fakeredis.FakeServer) -> float:
    return float(fakeredis.FakeRedis(server=server).hget(bucket_key(ACCOUNT), "tokens") or 0)


def test_small_buckets_never_lend() -> None:
    assert SIZE.lease == 1
    assert BudgetSize.of(200, headroom=0.8, sweep_reserve=0.25).lease == 1  # Alpaca


def test_a_large_bucket_lends_a_lease_spent_without_asking_redis(
    make_budget: Callable[..., Budget], server: fakeredis.FakeServer
) -> None:
    assert LARGE.lease == MAX_LEASE
    budget = make_budget(LARGE)
    budget.acquire()
    assert bucket_tokens(server) == LARGE.capacity - MAX_LEASE
    for _ in range(MAX_LEASE - 1):
        budget.acquire()
    assert bucket_tokens(server) == LARGE.capacity - MAX_LEASE  # the lease, not Redis
    budget.acquire()
    assert bucket_tokens(server) == LARGE.capacity - 2 * MAX_LEASE
    assert stats(server).granted == 2 * MAX_LEASE  # tokens taken, leases included


def test_what_is_left_of_a_lease_is_spent_before_the_bucket_and_never_lost(
    make_budget: Callable[..., Budget], server: fakeredis.FakeServer
) -> None:
    budget = make_budget(LARGE)
    for _ in range(MAX_LEASE - 3):
        budget.acquire()  # 3 of the first lease left
    budget.acquire(cost=5)  # those 3, and 2 of a second lease: 14 of it left
    assert bucket_tokens(server) == LARGE.capacity - 2 * MAX_LEASE
    for _ in range(MAX_LEASE - 2):
        budget.acquire()
    assert bucket_tokens(server) == LARGE.capacity - 2 * MAX_LEASE
    budget.acquire()
    assert bucket_tokens(server) == LARGE.capacity - 3 * MAX_LEASE


def test_a_lease_not_spent_in_time_is_dropped(
    make_budget: Callable[..., Budget], clock: FakeClock, server: fakeredis.FakeServer
) -> None:
    budget = make_budget(LARGE)
    budget.acquire()
    clock.now += LEASE_TTL_S  # the monotonic timer is the injected clock too
    budget.acquire()
    assert stats(server).granted == 2 * MAX_LEASE


def test_no_lease_once_the_bucket_is_half_empty(
    make_budget: Callable[..., Budget], server: fakeredis.FakeServer
) -> None:
    budget = make_budget(LARGE)
    half = {"tokens": LARGE.capacity / 2, "at": int(T0 * 1000)}
    fakeredis.FakeRedis(server=server).hset(bucket_key(ACCOUNT), mapping=half)
    budget.acquire()
    assert bucket_tokens(server) == pytest.approx(LARGE.capacity / 2 - 1)
    assert stats(server).granted == 1


def test_a_429_drops_the_lease_at_once(
    make_budget: Callable[..., Budget], clock: FakeClock
) -> None:
    budget = make_budget(LARGE, max_wait_s=5)
    budget.acquire()
    budget.observe(RateLimitInfo(100_000, 0, clock.utc() + timedelta(seconds=30), 429))
    with pytest.raises(BudgetExhausted):  # the lease is gone and the bucket blocked
        budget.acquire()


def test_fresh_orders_wait_less_than_sweeps(server: fakeredis.FakeServer, clock: FakeClock) -> None:
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    budget = Budget(client, ACCOUNT, SIZE, max_wait_s=20, fresh_max_wait_s=2, clock=clock,
                    sleep=clock.sleep)  # fmt: skip
    budget.observe(RateLimitInfo(100, 0, clock.utc() + timedelta(seconds=10), 429))
    with pytest.raises(BudgetExhausted) as monitor:
        budget.acquire(Priority.MONITOR)
    assert monitor.value.waited_s <= 2
    waited_before = sum(clock.sleeps)
    budget.acquire(Priority.SWEEP)  # the block, then the refill of its reserve: 16 s
    assert sum(clock.sleeps) - waited_before == pytest.approx(16, abs=2 + JITTER_S)


# -- 429 and the broker's headers --------------------------------------------------------------


def limited(clock: FakeClock, reset_in_s: float | None, status: int = 429) -> RateLimitInfo:
    reset = None if reset_in_s is None else clock.utc() + timedelta(seconds=reset_in_s)
    return RateLimitInfo(limit=100, remaining=0, reset_at=reset, status_code=status)


def test_a_429_empties_the_bucket_and_blocks_every_process_until_the_reset(
    make_budget: Callable[..., Budget], clock: FakeClock, server: fakeredis.FakeServer
) -> None:
    seen_by, other = make_budget(), make_budget()
    seen_by.observe(limited(clock, 5))

    other.acquire()

    # blocked for 5 s, then refilling from empty: the first token a second later
    assert sum(clock.sleeps) == pytest.approx(5 + TOKEN_S, abs=2 * JITTER_S)
    assert stats(server).throttled_429 == 1


def test_a_block_longer_than_the_wait_fails_at_once_and_says_when(
    make_budget: Callable[..., Budget], clock: FakeClock, server: fakeredis.FakeServer
) -> None:
    budget = make_budget(max_wait_s=2)
    budget.observe(limited(clock, 30))

    with pytest.raises(BudgetExhausted) as caught:
        budget.acquire()

    error = caught.value
    assert clock.sleeps == []  # no point sleeping 2 s for a 31 s wait
    assert isinstance(error, RateLimited)
    assert isinstance(error, BrokerError)
    assert error.account_id == ACCOUNT
    assert ACCOUNT in str(error)
    assert error.retry_at == clock.utc() + timedelta(seconds=30 + TOKEN_S)
    assert stats(server) == BudgetStats(exhausted=1, throttled_429=1)


def test_a_429_without_a_reset_only_empties_the_bucket(budget: Budget, clock: FakeClock) -> None:
    budget.observe(RateLimitInfo(None, None, None, 429))
    budget.acquire()
    assert clock.sleeps == [pytest.approx(TOKEN_S, abs=JITTER_S)]


def test_a_reset_beyond_one_window_is_capped(
    make_budget: Callable[..., Budget], clock: FakeClock
) -> None:
    budget = make_budget(max_wait_s=120)
    budget.observe(limited(clock, 86_400))
    budget.acquire()
    assert sum(clock.sleeps) == pytest.approx(60 + TOKEN_S, abs=2 * JITTER_S)


def test_a_reset_in_the_past_does_not_block(budget: Budget, clock: FakeClock) -> None:
    budget.observe(limited(clock, -10))
    budget.acquire()
    assert clock.sleeps == [pytest.approx(TOKEN_S, abs=JITTER_S)]


def test_nothing_remaining_blocks_like_a_429_but_is_not_counted_as_one(
    budget: Budget, clock: FakeClock, server: fakeredis.FakeServer
) -> None:
    budget.observe(limited(clock, 4, status=200))
    budget.acquire()
    assert sum(clock.sleeps) == pytest.approx(4 + TOKEN_S, abs=2 * JITTER_S)
    assert stats(server).throttled_429 == 0


def test_few_remaining_shrink_the_bucket(budget: Budget, clock: FakeClock) -> None:
    budget.observe(RateLimitInfo(100, 3, clock.utc() + timedelta(seconds=9), 200))
    drain(budget, 3)
    assert clock.sleeps == []
    budget.acquire()
    assert clock.sleeps == [pytest.approx(TOKEN_S, abs=JITTER_S)]


def test_what_is_left_of_a_shorter_window_does_not_shrink_the_bucket(
    budget: Budget, clock: FakeClock, server: fakeredis.FakeServer
) -> None:
    """Coinbase's 30 a second: 3 left this second is no reason to hold the minute's bucket
    at 3 (monitors, which must leave a reserve, would wait for ever); none left is."""
    budget.observe(RateLimitInfo(30, 3, clock.utc() + timedelta(seconds=1), 200, window_s=1))
    drain(budget, 10)
    assert clock.sleeps == []
    budget.observe(RateLimitInfo(30, 0, clock.utc() + timedelta(seconds=1), 200, window_s=1))
    assert bucket_tokens(server) == 0


def test_plenty_remaining_changes_nothing(budget: Budget, clock: FakeClock) -> None:
    drain(budget, 10)
    budget.observe(RateLimitInfo(100, 90, clock.utc() + timedelta(seconds=9), 200))
    drain(budget, 10)
    assert clock.sleeps == []


# -- waiting, counting, failing ----------------------------------------------------------------


def test_exhausted_after_the_longest_wait_and_counted(
    make_budget: Callable[..., Budget], clock: FakeClock, server: fakeredis.FakeServer
) -> None:
    budget, rival = make_budget(max_wait_s=3), make_budget()
    drain(rival, 20)
    clock.during_sleep = lambda: rival.acquire(Priority.MONITOR)  # another process wins

    with pytest.raises(BudgetExhausted) as caught:
        budget.acquire()

    waited = clock.now - T0
    assert waited <= 3
    assert caught.value.waited_s == pytest.approx(waited)
    counts = stats(server)
    assert (counts.exhausted, counts.waited) == (1, 1)
    assert counts.wait_ms == round(waited * 1000)
    assert counts.granted == 20 + len(clock.sleeps)  # only the rival's calls got through


def test_budget_exhausted_survives_pickling() -> None:
    error = BudgetExhausted(ACCOUNT, Priority.SWEEP, 1.5, datetime(2024, 1, 2, tzinfo=UTC))
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.account_id, copy.priority, copy.waited_s, copy.retry_at) == (
        error.account_id, error.priority, error.waited_s, error.retry_at,
    )  # fmt: skip
    assert str(copy) == str(error)


def test_redis_down_fails_closed_naming_the_account(
    budget: Budget, server: fakeredis.FakeServer
) -> None:
    server.connected = False
    with pytest.raises(BudgetUnavailable) as caught:
        budget.acquire()
    assert isinstance(caught.value, RateLimited)
    assert caught.value.account_id == ACCOUNT


def test_stats_of_an_unknown_account_are_zero(server: fakeredis.FakeServer) -> None:
    assert budget_stats(fakeredis.FakeRedis(server=server), "nobody") == BudgetStats()


# -- wiring ----------------------------------------------------------------------------------


def test_adapter_hooks_spend_the_connections_account_budget(
    server: fakeredis.FakeServer,
) -> None:
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    settings = Settings(
        _env_file=None,
        rate_limit_max_wait_s=0.01,
        rate_limit_fresh_max_wait_s=0.01,
        rate_limit_monitor_reserve=0,
    )
    connection = AccountConnection("a", BrokerKind.ALPACA, "http://x", "X", ACCOUNT, 40)
    hooks = adapter_hooks(client, settings)(connection)
    assert hooks.gate is not None
    assert hooks.observer is not None

    for _ in range(8):  # 40/min at 0.8: 8 at once
        hooks.gate(1)
    with pytest.raises(BudgetExhausted):
        hooks.gate(1)
    hooks.observer(RateLimitInfo(40, 0, None, 429))

    assert stats(server) == BudgetStats(granted=8, exhausted=1, throttled_429=1)


# -- send_by: no request after a deadline ------------------------------------------------------


def test_nothing_is_sent_once_the_send_by_time_has_passed(budget: Budget, clock: FakeClock) -> None:
    with send_by(clock.utc() - timedelta(seconds=1)), pytest.raises(DeadlinePassed) as late:
        budget.acquire(Priority.PLACEMENT)
    assert late.value.account_id == ACCOUNT
    assert isinstance(late.value, RateLimited)  # like any refusal of the gate: never sent
    assert clock.sleeps == []


def test_a_wait_for_a_token_ends_at_the_send_by_time(budget: Budget, clock: FakeClock) -> None:
    budget.observe(limited(clock, 30))  # blocked for 30 s
    with send_by(clock.utc() + timedelta(seconds=3)), pytest.raises(DeadlinePassed):
        budget.acquire(Priority.PLACEMENT)
    assert sum(clock.sleeps) <= 3


def test_a_token_within_the_send_by_time_is_granted(budget: Budget, clock: FakeClock) -> None:
    budget.observe(limited(clock, 1))
    with send_by(clock.utc() + timedelta(seconds=10)):
        budget.acquire(Priority.PLACEMENT)
    assert 1 <= sum(clock.sleeps) <= 10


def test_nested_send_by_keeps_the_earlier_deadline(budget: Budget, clock: FakeClock) -> None:
    soon = clock.utc() - timedelta(seconds=1)
    with send_by(soon), send_by(clock.utc() + timedelta(hours=1)), pytest.raises(DeadlinePassed):
        budget.acquire()
    with send_by(None):
        budget.acquire()  # no deadline outside the blocks


def test_deadline_passed_survives_pickling() -> None:
    error = DeadlinePassed(ACCOUNT, datetime(2026, 12, 3, tzinfo=UTC))
    again = pickle.loads(pickle.dumps(error))
    assert (again.account_id, again.deadline) == (ACCOUNT, error.deadline)


def test_monitors_leave_the_last_tokens_to_placements(
    server: fakeredis.FakeServer, clock: FakeClock
) -> None:
    size = BudgetSize.of(200, headroom=0.8, sweep_reserve=0.25, monitor_reserve=0.1)
    assert (size.capacity, size.monitor_floor, size.sweep_floor) == (40, 4, 10)
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    budget = Budget(client, ACCOUNT, size, max_wait_s=30, fresh_max_wait_s=0.01, clock=clock,
                    sleep=clock.sleep)  # fmt: skip
    for _ in range(36):
        budget.acquire(Priority.MONITOR)
    with pytest.raises(BudgetExhausted):
        budget.acquire(Priority.MONITOR)  # 4 left: the placements'
    for _ in range(4):
        budget.acquire(Priority.PLACEMENT)


def test_a_token_granted_after_the_send_by_time_is_not_used(
    budget: Budget, clock: FakeClock
) -> None:
    budget.observe(limited(clock, 1))  # a token in about 2 s
    late = clock.utc() + timedelta(seconds=2.5)
    clock.during_sleep = lambda: setattr(clock, "now", clock.now + 0.5)  # slept long
    with send_by(late), pytest.raises(DeadlinePassed):
        budget.acquire(Priority.PLACEMENT)
