"""``ordersync stream``: each broker account's order updates as they happen, the fast path;
the per-order monitors and the sweeps stay the net.

One connection per account, held by exactly one process through a Redis lease
(``HeldLock``: a standby takes over when it lapses, at once when the holder's process is
gone); accounts whose broker keeps one stream session per token (Tradier) share one
connection, under the lease of the first of them by name. Every event goes through the
state machine as a polled report does. On every (re)connect, once listening, each account
is caught up over REST (its new fills, its open orders against the broker's). A stream
that stalls or loses messages is found out by the monitors' safety checks (the broker
ahead of what it delivered, ``stream_health.suspect``): the connection is dropped, and the
reconnect catches up. Silence alone proves nothing (an account may have nothing going on,
a market order may wait for the open). Reconnects back off exponentially with jitter.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from sqlalchemy import select

from brokers.base import OrderStream, Unreadable
from brokers.errors import BrokerError, BrokerUnavailable
from brokers.registry import connect_stream, stream_session_key
from core.enums import ReportSource
from core.reports import StreamEvent
from models.orders import Account
from ordersync.metrics import record
from worker import replacements
from worker.context import AccountInfo, WorkerContext
from worker.fills import park, sync_now
from worker.legs import register_legs
from worker.locks import HeldLock
from worker.reconcile import catch_up, kept_alive
from worker.stream_apply import apply_event
from worker.stream_health import (
    STREAMING,
    mark_healthy,
    mark_unhealthy,
    suspect,
    take_suspicion,
)

logger = logging.getLogger(__name__)
BACKOFF_BASE_S = 0.5
RENEW_EVERY_S = 1.0
Connect = Callable[[AccountInfo, tuple[AccountInfo, ...]], OrderStream]


def lease_name(account_id: str) -> str:
    return f"ordersync:stream:lease:{account_id}"


class Stalled(BrokerUnavailable):
    """The broker turned out ahead of what the stream delivered (a stall, lost messages)."""


class LeaseLost(RuntimeError):
    """Another process holds the account's stream now: this one lets go."""


def stream_for(account: AccountInfo, sharing: tuple[AccountInfo, ...] = ()) -> OrderStream:
    return connect_stream(account=account.name, broker=account.broker,
                          base_url=account.base_url, credentials_env=account.credentials_env,
                          sharing=[(a.name, a.credentials_env) for a in sharing])  # fmt: skip


def backoff_s(failures: int, cap_s: float, rng: random.Random) -> float:
    """Exponential from BACKOFF_BASE_S, capped, jittered over its upper half."""
    ceiling = min(cap_s, BACKOFF_BASE_S * 2.0 ** max(0, failures - 1))
    return float(ceiling * (0.5 + rng.random() / 2))


class AccountStream:
    """One account's stream in this process (with the accounts ``sharing`` its connection):
    standby until it holds the lease."""

    def __init__(
        self, ctx: WorkerContext, account: AccountInfo, stop: threading.Event,
        connect: Connect = stream_for, rng: random.Random | None = None,
        sharing: tuple[AccountInfo, ...] = (),
    ) -> None:  # fmt: skip
        self.ctx = ctx
        self.account = account
        self.sharing = sharing
        self.accounts = (account, *sharing)
        self._by_name = {a.name: a for a in self.accounts}
        self.stop = stop
        self.connect = connect
        self.rng = rng or random.Random()
        self.holding = False
        self.connected = False  # this hold came up and caught up
        self.keep: Callable[[], None] = lambda: None  # renews the lease (or raises)
        self.derives: bool | None = None  # the broker lists no fills: they are derived

    def run(self) -> None:
        failures = 0
        s = self.ctx.settings
        while not self.stop.is_set():
            try:
                failures = self._turn(failures)
            except Exception:  # Redis away while taking the lease: not this loop's to end
                failures += 1
                logger.exception("stream of account %s failed", self.account.name)
            if failures:
                self.stop.wait(backoff_s(failures, s.stream_backoff_max_s, self.rng))

    def _turn(self, failures: int) -> int:
        """Stand by, or hold the stream until it ends; the failures in a row so far."""
        s = self.ctx.settings
        lease = HeldLock(self.ctx.redis, lease_name(self.account.id), s.stream_lease_s)
        with lease as held:
            if not held:
                self.stop.wait(min(1.0, s.stream_lease_s / 5))  # standby
                return 0
            self.connected = False
            try:
                self._hold(lease)
                return 0
            except LeaseLost:
                logger.warning("stream of account %s: lease lost", self.account.name)
                return 0
            except BrokerError as error:
                record.stream_reconnect(self.account.name, type(error).__name__)
                logger.warning("stream of account %s: %s", self.account.name, error)
            except Exception:  # a database or Redis error: not this loop's to end
                logger.exception("stream of account %s failed", self.account.name)
            finally:
                self.holding = False
                for account in self.accounts:
                    if lease.held:  # a lost lease's health is its new holder's to keep
                        mark_unhealthy(self.ctx.redis, account.id)
                    record.stream_connected(account.name, False)
            # A connection that came up and caught up starts the count again.
            return 1 if self.connected else failures + 1

    def _hold(self, lease: HeldLock) -> None:
        s = self.ctx.settings

        def keep() -> None:
            if not lease.renew():
                raise LeaseLost(self.account.id)

        self.keep = keep
        with self.connect(self.account, self.sharing) as stream:
            self.holding = True
            for account in self.accounts:
                with kept_alive(keep):
                    caught = catch_up(self.ctx, account.id, ReportSource.STREAM)
                if caught.yielded is not None:
                    raise BrokerUnavailable(f"catch-up of {account.name} stopped: "
                                            f"{caught.yielded}")  # fmt: skip
                logger.info("stream of account %s connected; caught up (%s requests)",
                            account.name, caught.requests)  # fmt: skip
            self.connected = True
            for account in self.accounts:
                record.stream_connected(account.name, True)
                take_suspicion(self.ctx.redis, account.id)  # the catch-up answered it
            renewed = time.monotonic()
            self._mark_healthy()
            for item in stream.events(s.stream_idle_s):
                now = time.monotonic()
                if self.stop.is_set():
                    return
                if now - renewed >= RENEW_EVERY_S:
                    keep()
                    self._mark_healthy()
                    renewed = now
                    self._raise_if_suspected()
                if item is not None:
                    self._handle(item)

    def _mark_healthy(self) -> None:
        for account in self.accounts:
            mark_healthy(self.ctx.redis, account.id, self.ctx.settings.stream_health_ttl_s)

    def _raise_if_suspected(self) -> None:
        """Stalled when a monitor found the broker ahead of what one account's events said
        (every suspicion taken: the reconnect catches each account up)."""
        found = [(a, why) for a in self.accounts
                 if (why := take_suspicion(self.ctx.redis, a.id)) is not None]  # fmt: skip
        if found:
            account, why = found[0]
            raise Stalled(f"stream of account {account.name} missed news ({why}): "
                          "reconnecting to catch up")  # fmt: skip

    def _handle(self, item: StreamEvent | Unreadable) -> None:
        if isinstance(item, Unreadable):  # its news is lost: the REST catch-up has it
            for each in self.accounts:  # whose it was is unknown
                record.stream_event(each.name, "unreadable", None)
                suspect(self.ctx.redis, each.id, f"an unreadable message: {item.reason}")
            logger.error("stream of account %s: unreadable message: %s (%s)",
                         self.account.name, item.reason, item.excerpt)  # fmt: skip
            return
        account: AccountInfo | None = self.account
        if item.account is not None:
            account = self._by_name.get(item.account)
        if account is None:  # the connection was made for these accounts only
            logger.error("stream of account %s: an event of account %s, not carried here",
                         self.account.name, item.account)  # fmt: skip
            return
        applied = apply_event(self.ctx, account.id, item, derive_fills=self._derives())
        record.stream_event(account.name, item.kind, item.at)
        if applied.order_id is None:
            if item.fill is not None:  # an order not known here yet: its fill waits for it
                park(self.ctx, account.id, [item.fill])
            return
        if applied.fill_gap and not applied.fill_recorded and not self._derives():
            sync_now(self.ctx, account.id, keep_alive=self.keep)  # did not add up
        if applied.replaced_by is not None:
            replacements.follow(self.ctx, applied.order_id, applied.replaced_by,
                                ReportSource.STREAM)  # fmt: skip
        if item.report.legs:  # an order with legs whose placement answer may be lost
            register_legs(self.ctx, applied.order_id, item.report, ReportSource.STREAM)

    def _derives(self) -> bool:
        """Whether the broker has no fill listing, so fills are derived from the events."""
        if self.derives is None:
            self.derives = not self.ctx.adapter(self.account).lists_fills
        return self.derives


def streamed_accounts(ctx: WorkerContext) -> list[tuple[AccountInfo, ...]]:
    """The active accounts of streamed brokers, by name, as their connections carry them:
    those that must share one (``stream_session_key``) together, the first by name first."""
    with ctx.sessions() as session:
        rows = session.scalars(select(Account).where(Account.is_active.is_(True),
                                                     Account.broker.in_(STREAMING))
                               .order_by(Account.name))  # fmt: skip
        accounts = [AccountInfo.of(row) for row in rows]
    groups: dict[str, list[AccountInfo]] = {}
    for account in accounts:
        key = stream_session_key(account.broker, account.base_url, account.credentials_env)
        groups.setdefault(account.id if key is None else key, []).append(account)
    return [tuple(group) for group in groups.values()]


def run_streams(ctx: WorkerContext, stop: threading.Event, connect: Connect = stream_for,
                on_start: Callable[[AccountStream], None] | None = None) -> None:  # fmt: skip
    """A thread per stream connection (standby or holding), accounts looked up again every
    ``stream_accounts_refresh_s``; a disabled account's thread ends (one sharing its
    connection with others: that connection is made anew for the rest)."""
    running: dict[tuple[str, ...], tuple[threading.Event, threading.Thread]] = {}
    try:
        while not stop.is_set():
            try:  # keyed by the accounts a connection carries: a change makes a new one
                wanted = {tuple(a.id for a in group): group for group in streamed_accounts(ctx)}
            except Exception:  # the database away: the running streams go on meanwhile
                logger.exception("streams: cannot read the accounts; trying again")
                stop.wait(ctx.settings.stream_accounts_refresh_s)
                continue
            for key, (own_stop, thread) in list(running.items()):
                if key not in wanted or not thread.is_alive():
                    own_stop.set()
                    thread.join(timeout=10)
                    del running[key]
            for key, (account, *sharing) in wanted.items():
                if key in running:
                    continue
                own_stop = threading.Event()
                worker = AccountStream(ctx, account, own_stop, connect, sharing=tuple(sharing))
                thread = threading.Thread(target=worker.run, name=f"stream-{account.name}",
                                          daemon=True)  # fmt: skip
                running[key] = (own_stop, thread)
                thread.start()
                if on_start is not None:
                    on_start(worker)
            stop.wait(ctx.settings.stream_accounts_refresh_s)
    finally:
        for own_stop, _ in running.values():
            own_stop.set()
        for _, thread in running.values():
            thread.join(timeout=10)
