"""The sweeps: the 30-second sweep of open orders nobody looked at lately, and the deep
reconciliation of the broker's recent orders against ours.

Both take the broker's view in pages from its list endpoint (cost grows with pages, not
orders), look single orders up only where a listing cannot tell, and apply every report
through the state machine, a page per transaction.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, and_, event, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from brokers.base import BrokerAdapter, ListStatus
from brokers.errors import BrokerError, OrderNotFound
from core.enums import OPEN_STATUSES, OrderOrigin, OrderStatus, OrderType, ReportSource
from core.reports import OrderReport, PositionReport
from models.base import new_id
from models.ledger import Position
from models.orders import Order, OrderEvent
from models.outbox import EventKind, add_order_event
from models.reconciliation import LocalRef, MissAction, judge_miss, match
from models.repository import (
    apply_to_order,
    link_replacement,
    record_applied,
    recorded_fill_keys,
    state_of,
)
from models.state_machine import OrderState, Verdict, apply_report, local_transition
from worker import placement, replacements
from worker.alerts import Alert, AlertKind, send_alert
from worker.budget import Priority, priority
from worker.chains import is_live
from worker.context import AccountInfo, WorkerContext
from worker.fees import sync_fees, unposted_allowance
from worker.fills import adopt_parked, gap_state, sync_now
from worker.gaps import Gap, close_gap
from worker.placement import Step
from worker.reports import apply_in_new_session, log_anomalies, raced, record_derived_fill
from worker.trade_pl import compare_trade_pnl

logger = logging.getLogger(__name__)
ATTEMPTS = 5
GAP_CHECK_CHUNK = 500
LOST_KEY = "ordersync:stats:orders_declared_lost"
# The status a broker gives an exit leg it holds back until its sibling ends (Alpaca's).
HELD = "held"


@dataclass
class SweepStats:
    """What one run did, per account; kept with the run's record for operators."""

    account_id: str
    local_orders: int = 0
    listed: int = 0
    pages: int = 0
    lookups: int = 0
    fill_syncs: int = 0
    fills_derived: int = 0  # for brokers without a fill listing
    applied: int = 0
    unchanged: int = 0
    misses: int = 0
    declared_lost: int = 0
    rejected: int = 0
    takeovers: int = 0  # write-ahead rows whose placement was attempted here
    gaps_given_up: int = 0  # fill gaps re-read to the limit (alerted once, not watched)
    adopted: int = 0
    replacements: int = 0  # orders found replacing ours, linked or registered
    held_legs: int = 0  # held exit legs not looked up: an order of their group is listed
    malformed: int = 0
    queries: int = 0
    wall_s: float = 0.0
    yielded: str | None = None  # the budget or the broker stopped the run early
    watch: list[str] = field(default_factory=list)  # orders that need a monitor
    # Of those, the ones the broker reports more filled than recorded: noted where the
    # report is applied, so deciding on a fill sync costs no query per order.
    fill_gaps: set[str] = field(default_factory=set)
    position_mismatches: list[str] = field(default_factory=list)
    # Crypto positions the broker holds less of than we do by fees not posted yet.
    fees_to_post: list[str] = field(default_factory=list)
    # Holdings another of our symbols pays with (BTC beside ETHBTC): its trades move the
    # balance, which positions per symbol do not follow, so they are not compared.
    positions_not_compared: list[str] = field(default_factory=list)
    fees_recorded: int = 0
    # Closed trades whose realized P&L was held against the broker's own trades (OANDA's),
    # those that differ (alerted), and those the broker matched with other fills (why).
    pnl_compared: int = 0
    pnl_mismatches: list[str] = field(default_factory=list)
    pnl_not_compared: list[str] = field(default_factory=list)
    # Orders the broker reports replaced whose replacement we have not linked yet:
    # (our id, the replacing order's broker id).
    unfollowed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return self.pages + self.lookups + self.fill_syncs

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["requests"] = self.requests
        data["watch"] = len(self.watch)
        data["fill_gaps"] = len(self.fill_gaps)
        data["unfollowed"] = len(self.unfollowed)
        data["fees_to_post"] = len(self.fees_to_post)
        # counted apart, so the run's totals carry them; the lines stay with the account
        data["pnl_mismatched"] = len(self.pnl_mismatches)
        data["pnl_not_comparable"] = len(self.pnl_not_compared)
        return data


# What a sweep run calls between its broker requests to keep its lock (raises when lost).
_KEEP_ALIVE: ContextVar[Callable[[], None] | None] = ContextVar("sweep_keep_alive", default=None)


@contextmanager
def kept_alive(renew: Callable[[], None]) -> Iterator[None]:
    """Inside the block, the sweep calls ``renew`` after every request it makes."""
    token = _KEEP_ALIVE.set(renew)
    try:
        yield
    finally:
        _KEEP_ALIVE.reset(token)


def _keep_alive() -> None:
    renew = _KEEP_ALIVE.get()
    if renew is not None:
        renew()


@contextmanager
def counting_queries(engine: Engine) -> Iterator[list[int]]:
    """Count the SQL statements this process sends through ``engine`` meanwhile."""
    counter = [0]

    def count(*_: object) -> None:
        counter[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _ref(order: Order) -> LocalRef:
    return LocalRef(order.id, order.broker_order_id, order.client_order_id, order.status,
                    order.created_at, order.miss_count, order.lost_at is not None,
                    order.symbol)  # fmt: skip


_REF_COLUMNS = (Order.id, Order.broker_order_id, Order.client_order_id, Order.status,
                Order.created_at, Order.miss_count, Order.lost_at, Order.symbol)  # fmt: skip


def _refs(rows: Sequence[Any]) -> list[LocalRef]:
    return [LocalRef(r[0], r[1], r[2], r[3], r[4], r[5], r[6] is not None, r[7]) for r in rows]


def sweep_open_orders(ctx: WorkerContext, account_id: str) -> SweepStats:
    """Open orders not checked within ``sweep_fresh_s`` get the broker's view."""
    stats = SweepStats(account_id)
    began = time.monotonic()
    with counting_queries(ctx.engine) as queries, priority(Priority.SWEEP):
        now = ctx.now()
        stale_before = now - timedelta(seconds=ctx.settings.sweep_fresh_s)
        with ctx.sessions() as session:
            account = ctx.account(session, id=account_id)
            # Write-ahead rows are due sooner: a placement whose task and monitor chain were
            # both lost (a Redis restart) has only until its deadline (30 s for market).
            orphan_before = now - timedelta(seconds=ctx.settings.place_lease_s)
            write_ahead = and_(Order.status == OrderStatus.PENDING_NEW,
                               Order.broker_order_id.is_(None),
                               Order.created_at < orphan_before)  # fmt: skip
            rows = session.execute(
                select(*_REF_COLUMNS)
                .where(Order.account_id == account_id, Order.status.in_(OPEN_STATUSES),
                       or_(write_ahead, and_(
                           Order.created_at < stale_before,
                           or_(Order.last_checked_at.is_(None),
                               Order.last_checked_at < stale_before))))
                .order_by(Order.last_checked_at.asc().nulls_first())
            ).all()  # fmt: skip
            gapped = _ended_with_a_gap(session, account_id, now, ctx.settings.deep_lookback_s)
        refs = _refs(rows)
        stats.local_orders = len(refs)
        if refs:
            _reconcile(ctx, account, refs, "open", None, ReportSource.SWEEP, stats)
        if gapped:
            _watch_ended_gaps(ctx, account, gapped, stats)
    stats.queries, stats.wall_s = queries[0], round(time.monotonic() - began, 3)
    return stats


def _ended_with_a_gap(session: Any, account_id: str, now: datetime,
                      lookback_s: float) -> list[str]:  # fmt: skip
    """Ended orders the broker reports more filled than their recorded fills (their monitor
    chain may have died with a worker): compared as written, exact on both databases."""
    since = now - timedelta(seconds=lookback_s)
    return list(session.scalars(
        select(Order.id).where(
            Order.account_id == account_id, Order.status.not_in(OPEN_STATUSES),
            Order.closed_at >= since,
            Order.broker_filled_quantity != Order.filled_quantity,
        )
    ))  # fmt: skip


def _watch_ended_gaps(ctx: WorkerContext, account: AccountInfo, gapped: list[str],
                      stats: SweepStats) -> None:  # fmt: skip
    """Their fills are due: one forward sync now, and a monitor (bounded re-reads)."""
    stats.fill_gaps.update(gapped)
    stats.watch.extend(o for o in gapped if o not in stats.watch)
    _drop_given_up(ctx, stats)
    if stats.fill_gaps and ctx.adapter(account).lists_fills and not stats.fill_syncs:
        _sync_fills(ctx, account, stats)


def deep_reconcile(ctx: WorkerContext, account_id: str) -> SweepStats:
    """The broker's orders of the lookback window against ours: adopt the unknown, resolve
    write-ahead rows, declare the lost (after repeated misses), fill gaps, positions, and
    closed trades' realized P&L where the broker keeps trades."""
    stats = SweepStats(account_id)
    began = time.monotonic()
    with counting_queries(ctx.engine) as queries, priority(Priority.SWEEP):
        now = ctx.now()
        since = now - timedelta(seconds=ctx.settings.deep_lookback_s)
        with ctx.sessions() as session:
            account = ctx.account(session, id=account_id)
            rows = session.execute(
                select(*_REF_COLUMNS).where(
                    Order.account_id == account_id,
                    or_(Order.status.in_(OPEN_STATUSES), Order.created_at >= since),
                )
            ).all()
        refs = _refs(rows)
        stats.local_orders = len(refs)
        _reconcile(ctx, account, refs, "all", since, ReportSource.DEEP, stats)
        if stats.yielded is None:
            _close_fill_gaps(ctx, account, since, stats)
        if stats.yielded is None:
            _sync_fees(ctx, account, since, stats)
        if stats.yielded is None:
            _compare_positions(ctx, account, since, stats)
        if stats.yielded is None:
            compare_trade_pnl(ctx, account, since, stats)
    stats.queries, stats.wall_s = queries[0], round(time.monotonic() - began, 3)
    return stats


def _reconcile(
    ctx: WorkerContext, account: AccountInfo, refs: list[LocalRef], status: ListStatus,
    since: datetime | None, source: ReportSource, stats: SweepStats,
) -> None:  # fmt: skip
    adapter = ctx.adapter(account)
    # A broker that lists one symbol at a time is asked for the symbols of our orders: an
    # order placed outside ordersync in another symbol is not seen there (no adoption).
    symbols = sorted({r.symbol for r in refs if r.symbol}) if adapter.lists_by_symbol else []
    try:
        reports = _list_all(adapter, status, since, ctx.settings.sweep_page_size, stats,
                            symbols)  # fmt: skip
    except BrokerError as error:
        stats.yielded = f"listing stopped: {error}"
        logger.warning("%s of account %s stopped: %s", source.value, account.name, error)
        return
    stats.listed = len(reports)
    matched = match(refs, reports)
    size = ctx.settings.sweep_page_size
    for start in range(0, len(matched.pairs), size):
        _apply_batch(ctx, matched.pairs[start : start + size], source, stats)
        _keep_alive()
    for ref, report in matched.pairs:  # their broker id is new here: fills parked under it
        if ref.broker_order_id is None:
            adopt_parked(ctx, account.id, report.broker_order_id)
    latest = {ref.id: report for ref, report in matched.pairs}
    ours = _replaced_here(ctx, account.id, matched.unknown)
    for report in matched.unknown:
        replaced = ours.get(report.replaces) if report.replaces else None
        if replaced is not None:  # the order that took one of ours' place: followed
            _register_replacement(ctx, account, replaced, report, source, stats, latest)
        elif source is ReportSource.DEEP:
            _adopt(ctx, account, report, stats, latest)
        else:
            continue
        _keep_alive()
    unlisted = [r for r in matched.unlisted if r.status in OPEN_STATUSES]
    if unlisted:
        held = _held_while_listed(ctx, unlisted, reports)
        stats.held_legs += len(held)
        unlisted = [r for r in unlisted if r.id not in held]
    _look_up(ctx, adapter, account, unlisted, source, stats, latest)
    _follow_replacements(ctx, source, stats)
    _drop_given_up(ctx, stats)
    if not stats.fill_gaps:
        return
    if adapter.lists_fills:
        _sync_fills(ctx, account, stats)
        return
    for order_id in sorted(stats.fill_gaps):  # a broker without a fill listing: derive them
        if order_id in latest and record_derived_fill(ctx, order_id, latest[order_id], source):
            stats.fills_derived += 1


def _drop_given_up(ctx: WorkerContext, stats: SweepStats) -> None:
    """A gap re-read to its limit was alerted: no monitor again for it (it would only
    find the same thing); deep reconciliation's cheap forward sync still looks."""
    given_up = {o for o in stats.fill_gaps if gap_state(ctx, o).alerted}
    if given_up:
        stats.fill_gaps -= given_up
        stats.watch = [o for o in stats.watch if o not in given_up]


def _list_all(
    adapter: BrokerAdapter, status: ListStatus, since: datetime | None, page_size: int,
    stats: SweepStats, symbols: Sequence[str] = (),
) -> list[OrderReport]:  # fmt: skip
    reports: list[OrderReport] = []
    token: str | None = None
    while True:
        page = adapter.list_orders(status=status, after=since if token is None else None,
                                   page_size=page_size, page_token=token,
                                   symbols=symbols)  # fmt: skip
        stats.pages += 1
        _keep_alive()
        for item in page.malformed:
            stats.malformed += 1
            logger.error("unreadable order in the broker's listing: %s", item.reason)
        reports.extend(page.items)
        token = page.next_token
        if token is None:
            return reports


def _needs_watch(order: Order) -> bool:
    """Close watching: an unsettled cancel or placement, an open market order, a fill gap."""
    if order.status.is_terminal:
        return order.broker_filled_quantity > order.filled_quantity
    return (
        order.status in (OrderStatus.PENDING_NEW, OrderStatus.PENDING_CANCEL)
        or order.order_type is OrderType.MARKET
        or order.broker_filled_quantity > order.filled_quantity
    )


def _apply_batch(
    ctx: WorkerContext, pairs: list[tuple[LocalRef, OrderReport]], source: ReportSource,
    stats: SweepStats,
) -> None:  # fmt: skip
    """One page of reports in one transaction; an unchanged order only gets its check time."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with ctx.sessions.begin() as session:
                now = ctx.now()
                ids = [ref.id for ref, _ in pairs]
                orders = {o.id: o for o in session.scalars(select(Order).where(Order.id.in_(ids)))}
                filled = [o.id for o in orders.values() if o.filled_quantity]
                fill_ids = defaultdict(set, recorded_fill_keys(session, filled))
                applied_n, unchanged, watch, gaps = 0, [], [], []
                unfollowed: list[tuple[str, str]] = []
                for ref, report in pairs:
                    order = orders.get(ref.id)
                    if order is None:
                        continue
                    applied = apply_report(state_of(order, frozenset(fill_ids[order.id])),
                                           report, now=now)  # fmt: skip
                    link_replacement(session, order, report, applied.state.status)
                    if (applied.state.status is OrderStatus.REPLACED
                            and order.replaced_by_id is None and report.replaced_by):  # fmt: skip
                        unfollowed.append((order.id, report.replaced_by))
                    quiet = applied.verdict in (Verdict.DUPLICATE, Verdict.STALE)
                    if quiet and not applied.new_fills and not applied.history:
                        if order.miss_count or order.lost_at is not None:
                            order.miss_count, order.lost_at = 0, None
                        unchanged.append(order.id)
                    else:
                        record_applied(session, order, applied, now=now, source=source)
                        order.check_count += 1
                        order.last_checked_at = now
                        order.miss_count, order.lost_at = 0, None
                        applied_n += 1
                    if _needs_watch(order):
                        watch.append(order.id)
                    if order.fill_gap:
                        gaps.append(order.id)
                if unchanged:
                    session.execute(
                        update(Order).where(Order.id.in_(unchanged)).values(last_checked_at=now)
                        .execution_options(synchronize_session=False)
                    )  # fmt: skip
            stats.applied += applied_n
            stats.unchanged += len(unchanged)
            stats.watch.extend(watch)
            stats.fill_gaps.update(gaps)
            stats.unfollowed.extend(unfollowed)
            return
        except (StaleDataError, IntegrityError, OperationalError) as error:
            if not raced(error):
                raise
            logger.info("a sweep page raced another writer (attempt %d): %s", attempt, error)
    raise RuntimeError(f"could not apply a page of {len(pairs)} reports")


def _held_while_listed(ctx: WorkerContext, unlisted: Sequence[LocalRef],
                       reports: Sequence[OrderReport]) -> set[str]:  # fmt: skip
    """Exit legs the broker holds (a bracket's stop-loss while its take-profit works) that
    an open listing leaves out, while their parent or a sibling is listed open: nothing
    happens to them before it does, so they are not looked up one by one every run."""
    with ctx.sessions() as session:
        held = session.execute(
            select(Order.id, Order.parent_id).where(
                Order.id.in_([r.id for r in unlisted]), Order.parent_id.is_not(None),
                Order.raw_status == HELD)
        ).all()  # fmt: skip
        if not held:
            return set()
        parents = {parent for _, parent in held}
        group = session.execute(
            select(Order.broker_order_id, Order.id, Order.parent_id).where(
                or_(Order.id.in_(parents), Order.parent_id.in_(parents)))
        ).all()  # fmt: skip
    listed_open = {r.broker_order_id for r in reports if r.status in OPEN_STATUSES}
    working = {parent or own for broker_id, own, parent in group if broker_id in listed_open}
    return {own for own, parent in held if parent in working}


def _look_up(
    ctx: WorkerContext, adapter: BrokerAdapter, account: AccountInfo, refs: list[LocalRef],
    source: ReportSource, stats: SweepStats, latest: dict[str, OrderReport],
) -> None:  # fmt: skip
    """Targeted lookups for orders the listing did not show, bounded per run; a write-ahead
    row whose placement task is gone is taken over (sent again within its deadline, looked
    up and rejected past it)."""
    for ref in refs[: ctx.settings.sweep_max_single_lookups]:
        _keep_alive()
        if ref.broker_order_id is None and ref.status is OrderStatus.PENDING_NEW:
            _take_over(ctx, ref, stats)
            continue
        stats.lookups += 1
        try:
            report = (
                adapter.get_order(ref.broker_order_id)
                if ref.broker_order_id
                else adapter.get_order_by_client_id(ref.client_order_id, symbol=ref.symbol)
            )
        except OrderNotFound:
            _record_miss(ctx, ref, stats)
            continue
        except BrokerError as error:
            stats.yielded = f"lookups stopped: {error}"
            logger.warning("%s lookups for account %s stopped: %s", source.value, account.name,
                           error)  # fmt: skip
            return
        applied = apply_in_new_session(ctx, ref.id, report, source, checked=True)
        if applied is None:
            continue
        latest[ref.id] = report
        stats.applied += 1
        if applied.state.status is OrderStatus.REPLACED and report.replaced_by:
            stats.unfollowed.append((ref.id, report.replaced_by))
        if ref.broker_order_id is None:
            adopt_parked(ctx, account.id, report.broker_order_id)
        _note_watch(stats, ref.id, applied.state)


def _take_over(ctx: WorkerContext, ref: LocalRef, stats: SweepStats) -> None:
    """A placement nobody is attempting any more: one attempt here, as its monitor would."""
    if placement.placement_leased(ctx, ref.id) or is_live(ctx, ref.id):
        return  # its task attempts again soon, or its monitor chain takes it over
    try:
        done = placement.attempt(ctx, ref.id)
    except Exception:  # this order's trouble (credentials, a write conflict): not the sweep's
        logger.exception("taking over the placement of order %s failed", ref.id)
        return
    if done.step is Step.BUSY or done.step is Step.DONE:
        return
    stats.takeovers += 1
    if done.step is Step.REJECTED:
        stats.rejected += 1
    elif done.step is Step.PLACED:
        stats.applied += 1
        stats.watch.append(ref.id)
    else:
        stats.watch.append(ref.id)  # its monitor goes on attempting


def _record_miss(ctx: WorkerContext, ref: LocalRef, stats: SweepStats) -> None:
    """Judge the miss on the row as it is now (another sweep may have counted one meanwhile;
    the version counter makes the loser re-judge), so an order is declared lost once."""
    now = ctx.now()
    stats.misses += 1
    verdict = None
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with ctx.sessions.begin() as session:
                order = session.get(Order, ref.id, populate_existing=True)
                if order is None or order.status.is_terminal:
                    return
                settings = ctx.settings
                verdict = judge_miss(_ref(order), now=now,
                                     lost_after_misses=settings.lost_after_misses,
                                     pending_new_grace_s=settings.pending_new_grace_s)  # fmt: skip
                order.miss_count = verdict.misses
                order.last_checked_at = now
                order.last_error = verdict.reason
                if verdict.action is MissAction.REJECT:
                    applied = local_transition(state_of(order, frozenset()), OrderStatus.REJECTED,
                                               now=now, detail=verdict.reason)  # fmt: skip
                    record_applied(session, order, applied, now=now, source=ReportSource.DEEP)
                elif verdict.action is MissAction.DECLARE_LOST:
                    order.lost_at = now
                    session.add(OrderEvent(
                        order_id=order.id, kind="lost", from_status=order.status,
                        to_status=order.status, filled_quantity=order.filled_quantity,
                        source=ReportSource.SWEEP, detail=verdict.reason, at=now,
                    ))  # fmt: skip
            break
        except StaleDataError as error:
            verdict = None
            logger.info("order %s changed while noting a miss (attempt %d): %s", ref.id,
                        attempt, error)  # fmt: skip
    if verdict is None:
        return
    if verdict.action is MissAction.REJECT:
        stats.rejected += 1
        logger.error("order %s (%s) rejected: %s", ref.id, ref.client_order_id, verdict.reason)
    elif verdict.action is MissAction.DECLARE_LOST:
        stats.declared_lost += 1
        ctx.redis.incr(LOST_KEY)
        logger.error("order %s (%s) declared lost: %s", ref.id, ref.client_order_id,
                     verdict.reason)  # fmt: skip


def _replaced_here(ctx: WorkerContext, account_id: str,
                   reports: Sequence[OrderReport]) -> dict[str, str]:  # fmt: skip
    """Broker id -> our id of the orders these listed ones replaced, however old."""
    replaced = sorted({r.replaces for r in reports if r.replaces})
    if not replaced:
        return {}
    with ctx.sessions() as session:
        rows = session.execute(select(Order.broker_order_id, Order.id).where(
            Order.account_id == account_id, Order.broker_order_id.in_(replaced)))  # fmt: skip
        return {str(broker_id): order_id for broker_id, order_id in rows}


def _register_replacement(
    ctx: WorkerContext, account: AccountInfo, replaced_id: str, report: OrderReport,
    source: ReportSource, stats: SweepStats, latest: dict[str, OrderReport],
) -> None:  # fmt: skip
    """A listed order that replaced one of ours (its ``replaces``), unknown here: followed."""
    registered = replacements.register(ctx, account, replaced_id, report, source)
    if registered is None:
        return
    latest[registered] = report
    stats.replacements += 1
    stats.watch.append(registered)
    stats.unfollowed = [(o, b) for o, b in stats.unfollowed if o != replaced_id]


def _follow_replacements(ctx: WorkerContext, source: ReportSource, stats: SweepStats) -> None:
    """Orders reported replaced whose replacement the listing did not show: looked up (a
    bounded number a run; the rest next time)."""
    pending, stats.unfollowed = stats.unfollowed, []
    for order_id, replaced_by in pending[: ctx.settings.sweep_max_single_lookups]:
        if stats.yielded is not None:
            return
        successor = replacements.follow(ctx, order_id, replaced_by, source)
        _keep_alive()
        if successor is None:
            stats.unfollowed.append((order_id, replaced_by))
            continue
        stats.replacements += 1
        stats.watch.append(successor)


def _adopt(
    ctx: WorkerContext, account: AccountInfo, report: OrderReport, stats: SweepStats,
    latest: dict[str, OrderReport],
) -> None:  # fmt: skip
    """An order at the broker that we never heard of: recorded, marked adopted, never ignored."""
    now = ctx.now()
    with ctx.sessions() as session:
        order = Order(
            id=new_id(), account_id=account.id, broker=account.broker,
            origin=OrderOrigin.ADOPTED,
            client_order_id=report.client_order_id or f"broker-{report.broker_order_id}",
            broker_order_id=report.broker_order_id, symbol=report.symbol, side=report.side,
            order_type=report.order_type, time_in_force=report.time_in_force,
            quantity=report.quantity, notional=report.notional,
            limit_price=report.limit_price, stop_price=report.stop_price,
            status=OrderStatus.PENDING_NEW,
            created_at=report.created_at, updated_at=now,
            submitted_at=report.submitted_at or report.created_at,
            check_count=1, last_checked_at=now,
        )  # fmt: skip
        session.add(order)
        add_order_event(session, order, EventKind.ORDER_PLACED, now=now)
        try:
            session.flush()
            # the report goes in with the row: nobody ever sees an adopted order unapplied
            applied = apply_to_order(session, order, report, now=now, source=ReportSource.DEEP)
            session.commit()
        except IntegrityError:  # registered meanwhile (a placement's answer, a track call)
            session.rollback()
            return
        order_id = order.id
        log_anomalies(order, applied)
    latest[order_id] = report
    adopt_parked(ctx, account.id, report.broker_order_id)
    stats.adopted += 1
    logger.warning("adopted order %s (broker id %s, %s %s %s) placed outside ordersync",
                   order_id, report.broker_order_id, report.side.value, report.quantity,
                   report.symbol)  # fmt: skip
    _note_watch(stats, order_id, applied.state)


def _note_watch(stats: SweepStats, order_id: str, state: OrderState) -> None:
    """An order still open, or with a fill gap, after a single report: watch it."""
    gap = state.broker_filled_quantity > state.filled_quantity
    if state.status.is_open or gap:
        stats.watch.append(order_id)
    if gap:
        stats.fill_gaps.add(order_id)


def _with_fill_gap(ctx: WorkerContext, order_ids: Sequence[str]) -> list[str]:
    """Which of these orders still have a fill gap, a chunk of ids per query (the decimals
    are compared here: SQLite keeps them as text)."""
    found: list[str] = []
    with ctx.sessions() as session:
        for start in range(0, len(order_ids), GAP_CHECK_CHUNK):
            chunk = order_ids[start : start + GAP_CHECK_CHUNK]
            rows = session.execute(
                select(Order.id, Order.filled_quantity, Order.broker_filled_quantity)
                .where(Order.id.in_(chunk))
            )  # fmt: skip
            found.extend(order_id for order_id, filled, broker in rows if broker > filled)
    return found


def _sync_fills(ctx: WorkerContext, account: AccountInfo, stats: SweepStats) -> None:
    try:
        result = sync_now(ctx, account.id, keep_alive=_keep_alive)
    except BrokerError as error:
        stats.yielded = f"fill sync stopped: {error}"
        return
    stats.fill_syncs += result.pages


def _close_fill_gaps(
    ctx: WorkerContext, account: AccountInfo, since: datetime, stats: SweepStats
) -> None:
    """Where the broker reports more filled than we recorded, fetch the account's fills."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(Order.id, Order.filled_quantity, Order.broker_filled_quantity).where(
                Order.account_id == account.id,
                or_(Order.status.in_(OPEN_STATUSES), Order.created_at >= since),
            )
        ).all()
    gaps = [order_id for order_id, filled, broker in rows if broker > filled]
    if not gaps:
        return
    if not ctx.adapter(account).lists_fills:  # _reconcile derived what the reports imply
        stats.fill_gaps.update(_with_fill_gap(ctx, gaps))
        return
    _sync_fills(ctx, account, stats)
    for order_id in _with_fill_gap(ctx, gaps):
        if stats.yielded is not None:
            return
        try:  # the order's own window, a bounded number of times, then one alert
            gap = close_gap(ctx, order_id, keep_alive=_keep_alive)
        except BrokerError as error:
            stats.yielded = f"fill gap re-read stopped: {error}"
            return
        if gap is Gap.GIVEN_UP:
            stats.gaps_given_up += 1
        elif gap is not Gap.CLOSED:
            stats.watch.append(order_id)
            stats.fill_gaps.add(order_id)


def position_mismatches(
    local: dict[str, Decimal], broker: Sequence[PositionReport],
    to_post: Mapping[str, Decimal] | None = None,
) -> tuple[list[str], list[str]]:  # fmt: skip
    """Symbols whose recorded position differs from the broker's, and those the broker
    holds less of by no more than fees still to post (``to_post``: the most, per symbol)."""
    theirs = {p.symbol: p.quantity for p in broker}
    found, pending = [], []
    for symbol in sorted(set(local) | set(theirs)):
        ours, at_broker = local.get(symbol, Decimal(0)), theirs.get(symbol, Decimal(0))
        if ours == at_broker:
            continue
        line = f"{symbol}: our fills say {ours}, the broker holds {at_broker}"
        if 0 < ours - at_broker <= (to_post or {}).get(symbol, Decimal(0)):
            pending.append(f"{line} (fees to post)")
        else:
            found.append(line)
    return found, pending


def _sync_fees(ctx: WorkerContext, account: AccountInfo, since: datetime,
               stats: SweepStats) -> None:  # fmt: skip
    """Fees posted apart from the fills, before positions are compared."""
    try:
        done = sync_fees(ctx, account, since, keep_alive=_keep_alive)
    except BrokerError as error:
        stats.yielded = f"fee sync stopped: {error}"
        return
    stats.pages += done.pages
    stats.malformed += done.malformed
    stats.fees_recorded = done.recorded


def _compare_positions(ctx: WorkerContext, account: AccountInfo, since: datetime,
                       stats: SweepStats) -> None:  # fmt: skip
    """A difference is an alert for an operator, never a silent correction."""
    adapter = ctx.adapter(account)
    with ctx.sessions() as session:  # the positions table, kept with every fill, outlives purge
        rows = session.execute(
            select(Position.symbol, Position.quantity).where(Position.account_id == account.id)
        ).all()
    try:
        broker = adapter.list_positions()
        held_by = {symbol: adapter.holding_of(symbol) for symbol, _ in rows}
        quoted = {q for symbol, _ in rows if (q := adapter.quoted_in(symbol)) is not None}
    except BrokerError as error:
        stats.yielded = f"positions not compared: {error}"
        return
    stats.pages += 1
    local = _holdings(held_by, rows)
    stats.positions_not_compared = sorted(quoted & set(local))
    for name in stats.positions_not_compared:
        del local[name]
    if adapter.positions_by_asset:  # cash, and coins none of our symbols trades, are not ours
        broker = [p for p in broker if p.symbol in local]
    theirs = {p.symbol: p.quantity for p in broker}
    short = {h for h, q in local.items() if q > theirs.get(h, Decimal(0))}
    to_post: dict[str, Decimal] = {}
    if short:  # the allowance is per symbol; a holding gets its symbols' together
        allowed = unposted_allowance(ctx, account, [s for s, h in held_by.items() if h in short],
                                     since)  # fmt: skip
        for symbol, allowance in allowed.items():
            to_post[held_by[symbol]] = to_post.get(held_by[symbol], Decimal(0)) + allowance
    stats.position_mismatches, stats.fees_to_post = position_mismatches(local, broker, to_post)
    if stats.position_mismatches:
        symbols = tuple(line.split(":", 1)[0] for line in stats.position_mismatches)
        send_alert(ctx.redis, ctx.settings, Alert(
            AlertKind.POSITION_MISMATCH, f"positions:{account.name}", len(symbols), symbols,
            ctx.now(), detail="; ".join(stats.position_mismatches)[:1000],
        ))  # fmt: skip


def _holdings(held_by: Mapping[str, str], rows: Sequence[Any]) -> dict[str, Decimal]:
    """Our positions under the names the broker reports them by (summed where symbols share
    a base asset, as BTCUSDT and BTCUSDC share BTC)."""
    held: dict[str, Decimal] = {}
    for symbol, quantity in rows:
        name = held_by[symbol]
        held[name] = held.get(name, Decimal(0)) + quantity
    return held


def catch_up(ctx: WorkerContext, account_id: str, source: ReportSource) -> SweepStats:
    """After a stream's gap (a (re)connect, a stall): the account's new fills, then every
    open order of ours against the broker's open orders, the unlisted ones looked up."""
    stats = SweepStats(account_id)
    began = time.monotonic()
    with counting_queries(ctx.engine) as queries:
        with ctx.sessions() as session:
            account = ctx.account(session, id=account_id)
            rows = session.execute(
                select(*_REF_COLUMNS).where(Order.account_id == account_id,
                                            Order.status.in_(OPEN_STATUSES))
            ).all()  # fmt: skip
        if ctx.adapter(account).lists_fills:
            _sync_fills(ctx, account, stats)
        refs = _refs(rows)
        stats.local_orders = len(refs)
        if refs and stats.yielded is None:
            _reconcile(ctx, account, refs, "open", None, source, stats)
    stats.queries, stats.wall_s = queries[0], round(time.monotonic() - began, 3)
    return stats
