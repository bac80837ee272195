"""``ordersync bench``: drive the system as a trading service would (tasks sent by name from
a separate process), wait until every order is complete locally, then compare the database
with the paper exchange's ground truth and write the figures as JSON (design.md, Measuring).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import secrets
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import redis
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from core.enums import OPEN_STATUSES, BrokerKind, OrderStatus
from models.db import make_engine
from models.ledger import Position
from models.orders import Account, Fill, InvalidTaskCall, Order, OrderEvent
from ordersync import bench_faults, bench_sweep
from ordersync.bench_venue import BenchVenue, TruthFill, TruthOrder, VenueRefused, venue_for
from ordersync.settings import AMQP_SCHEMES, get_settings
from ordersync.stack import RATE_LIMIT_PER_MIN, Stack, StackConfig, StackError, log_tail

SENDER = Path(__file__).with_name("bench_sender.py")
POLL_S = 0.05
AVG_PRICE_TOLERANCE = Decimal("1e-9")  # the exchange rounds its average to 1e-9
SHOWN_MISMATCHES = 10
console = Console()


class BenchError(RuntimeError):
    """The benchmark could not run (not: the system failed it)."""


@dataclass(frozen=True, slots=True)
class LocalOrder:
    client_order_id: str
    broker_order_id: str | None
    status: OrderStatus
    filled: Decimal
    broker_filled: Decimal
    average_price: Decimal | None
    place_deadline: datetime | None = None
    last_error: str | None = None

    @property
    def complete(self) -> bool:
        """Terminal, and its recorded fills cover what the broker reported filled."""
        return self.status.is_terminal and self.filled >= self.broker_filled


@dataclass(frozen=True, slots=True)
class LocalFill:
    client_order_id: str
    broker_fill_id: str
    quantity: Decimal
    price: Decimal
    filled_at: datetime
    recorded_at: datetime
    cum_quantity: Decimal | None = None  # the order's filled quantity with it


def load_orders(engine: Engine, prefix: str) -> dict[str, LocalOrder]:
    query = select(
        Order.client_order_id, Order.broker_order_id, Order.status, Order.filled_quantity,
        Order.broker_filled_quantity, Order.average_fill_price, Order.place_deadline,
        Order.last_error,
    ).where(Order.client_order_id.startswith(prefix, autoescape=True))  # fmt: skip
    with engine.connect() as connection:
        return {row[0]: LocalOrder(*row) for row in connection.execute(query)}


def count_open(engine: Engine, prefix: str) -> tuple[int, int]:
    """(orders, of which not terminal) for the run's orders."""
    query = select(func.count(), func.count().filter(Order.status.in_(OPEN_STATUSES))).where(
        Order.client_order_id.startswith(prefix, autoescape=True)
    )
    with engine.connect() as connection:
        total, still_open = connection.execute(query).one()
    return int(total), int(still_open)


def load_fills(engine: Engine, prefix: str) -> list[LocalFill]:
    query = (
        select(
            Order.client_order_id,
            Fill.broker_fill_id,
            Fill.quantity,
            Fill.price,
            Fill.filled_at,
            Fill.recorded_at,
            Fill.cum_quantity,
        )
        .join(Fill.order)
        .where(Order.client_order_id.startswith(prefix, autoescape=True))
    )
    with engine.connect() as connection:
        return [LocalFill(*row) for row in connection.execute(query)]


def recovery(kills: list[float], engine: Engine, prefix: str,
             sent_at: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    """Per worker kill, how long the placements it interrupted took: the longest any
    placement sent before the kill waited past it until the broker's answer (or the
    rejection) was recorded. The restarted worker's start-up is in it, on every transport;
    placements that were never recorded at all are counted as ``dropped``."""
    query = (
        select(Order.client_order_id, func.min(OrderEvent.at))
        .join(OrderEvent.order)
        .where(
            Order.client_order_id.startswith(prefix, autoescape=True),
            OrderEvent.from_status == OrderStatus.PENDING_NEW,
            OrderEvent.to_status != OrderStatus.PENDING_NEW,
        )
        .group_by(Order.client_order_id)
    )
    with engine.connect() as connection:
        resolved = {cid: at.timestamp() for cid, at in connection.execute(query)}
    per_kill = []
    for killed in kills:
        waits = [resolved[cid] - killed for cid, sent in sent_at.items()
                 if sent < killed and resolved.get(cid, 0.0) > killed]  # fmt: skip
        per_kill.append(round(max(waits), 3) if waits else 0.0)
    return {"after_kill_s": per_kill, "max_s": max(per_kill) if per_kill else None}


def refused_calls(engine: Engine, prefix: str) -> dict[str, str]:
    """The run's place_order calls refused as invalid: client order id -> the reason."""
    query = select(InvalidTaskCall.arguments, InvalidTaskCall.error).where(
        InvalidTaskCall.task_name == "ordersync.place_order",
        InvalidTaskCall.arguments.contains(prefix, autoescape=True),
    )
    found: dict[str, str] = {}
    with engine.connect() as connection:
        for arguments, error in connection.execute(query):
            cid = json.loads(arguments).get("kwargs", {}).get("client_order_id")
            if isinstance(cid, str) and cid.startswith(prefix):
                found[cid] = error
    return found


def wait_complete(engine: Engine, prefix: str, n: int, deadline_s: float) -> float | None:
    """Poll until all ``n`` orders are complete (or their call refused); the wall-clock time
    of the poll that saw it, or None at the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        # A cheap count first: loading every order each poll would take CPU from the worker.
        total, still_open = count_open(engine, prefix)
        if still_open == 0 and total + len(refused_calls(engine, prefix)) >= n:
            orders = load_orders(engine, prefix)
            if all(order.complete for order in orders.values()):
                return time.time()
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_S)


def drops(
    truth: list[TruthOrder], orders: dict[str, LocalOrder], refused: dict[str, str],
    sent: list[str],
) -> dict[str, Any]:  # fmt: skip
    """Asked for and never placed, by cause; placed after the deadline; exits refused."""
    at_exchange = {order.client_order_id: order for order in truth}
    causes: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    late = 0
    for cid in sent:
        local, placed = orders.get(cid), at_exchange.get(cid)
        if placed is not None:
            deadline = local.place_deadline if local is not None else None
            late += deadline is not None and placed.created_at > deadline
            continue
        if cid in refused:
            continue  # refused as asked: counted below (exits) or the caller's own fault
        cause = drop_cause(local)
        if cause is None:
            continue
        causes[cause] += 1
        if len(examples[cause]) < 3:
            examples[cause].append(cid)
    exit_refusals = [error for error in refused.values() if "exit refused" in error]
    exits_refused = len(exit_refusals)
    broker_refused = sum(
        1 for cid in sent
        if cid not in at_exchange and cid in orders and drop_cause(orders[cid]) is None
    )  # fmt: skip
    return {
        "broker_refused": broker_refused,
        "dropped": sum(causes.values()),
        "dropped_by_cause": dict(causes),
        "dropped_examples": dict(examples),
        "late": late,
        "exits_refused": exits_refused,
        "exits_refused_examples": exit_refusals[:SHOWN_MISMATCHES],
        "refused_calls": len(refused),
    }


def drop_cause(local: LocalOrder | None) -> str | None:
    """Why an order the exchange never got was not placed; None: the broker refused it as
    asked (buying power, invalid): the caller's own reason, not a drop."""
    if local is None:
        return "no order row: no worker ran the call (still queued, or lost by the transport)"
    error = local.last_error or ""
    if local.status is OrderStatus.REJECTED and "placement deadline" in error:
        return "deadline passed before it could be sent"
    if local.status is OrderStatus.REJECTED and "broker" in error and "never" not in error:
        return None
    if local.status is OrderStatus.REJECTED:
        return f"rejected: {error[:80]}"
    return f"still {local.status.value}: {error[:80]}"


def order_differences(truth: TruthOrder, local: LocalOrder) -> list[str]:
    """What the local record says differently from the exchange about one order."""
    reasons = []
    if truth.status is None:
        reasons.append(f"exchange status {truth.raw_status!r}: {truth.status_problem}")
    elif truth.status is not local.status:
        reasons.append(f"status {local.status} != {truth.status}")
    if local.filled != truth.filled:
        reasons.append(f"filled {local.filled} != {truth.filled}")
    avg = truth.average_price
    if (avg is None) != (local.average_price is None) or (
        avg is not None
        and local.average_price is not None
        and abs(local.average_price - avg) > AVG_PRICE_TOLERANCE
    ):
        reasons.append(f"average price {local.average_price} != {avg}")
    if local.broker_order_id != truth.broker_order_id:
        reasons.append(f"broker order id {local.broker_order_id} != {truth.broker_order_id}")
    return reasons


def compare(
    truth: list[TruthOrder], orders: dict[str, LocalOrder], fills: list[LocalFill], *,
    fills_derived: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Fills matched by broker fill id (the venue's fill id as ordersync records it) or, for
    one recorded from the stream under its execution id, by the order's filled quantity
    with it; at a venue whose fills ordersync derives (``fills_derived``), per order by
    quantity and average; orders by client id."""
    local_fills: dict[str, list[LocalFill]] = defaultdict(list)
    for fill in fills:
        local_fills[fill.client_order_id].append(fill)
    missed = duplicate = mismatched_fills = 0
    mismatches: list[dict[str, Any]] = []
    truth_ids = set()
    match = by_cumulative if fills_derived else by_fill_id
    for order in truth:
        client_order_id = order.client_order_id
        truth_ids.add(client_order_id)
        local = orders.get(client_order_id)
        counts = match(order, local_fills[client_order_id])
        missed, duplicate = missed + counts[0], duplicate + counts[1]
        mismatched_fills += counts[2]
        reasons = ["missing locally"] if local is None else order_differences(order, local)
        if reasons:
            mismatches.append(
                {"client_order_id": client_order_id, "reasons": reasons, **described(local)}
            )
    for client_order_id in sorted(set(orders) - truth_ids):
        duplicate += len(local_fills[client_order_id])
        if orders[client_order_id].status is OrderStatus.REJECTED:
            continue  # never reached the exchange, or refused by it: counted with the drops
        mismatches.append({"client_order_id": client_order_id, "reasons": ["not at exchange"]})
    return {
        "missed_fills": missed,
        "duplicate_fills": duplicate,
        "mismatched_fills": mismatched_fills,
        "mismatched_orders": len(mismatches),
        "mismatches": mismatches[:SHOWN_MISMATCHES],
        **doubled_orders(truth),
        "exchange_orders": len(truth),
        "exchange_fills": sum(len(order.fills) for order in truth),
        "local_fills": len(fills),
    }


def by_fill_id(order: TruthOrder, local: list[LocalFill]) -> tuple[int, int, int]:
    """(missed, duplicate, mismatched) fills of one order, matched by fill id."""
    truth_fills = {fill.id: fill for fill in order.fills}
    by_cum = dict(zip(itertools.accumulate(f.qty for f in order.fills),
                      truth_fills, strict=True))  # fmt: skip
    ids = {id(fill): _truth_id(fill, truth_fills, by_cum) for fill in local}
    seen = Counter(ids.values())
    missed = sum(1 for fill_id in truth_fills if fill_id not in seen)
    duplicate = mismatched = 0
    for fill in local:
        expected = truth_fills.get(ids[id(fill)])
        if expected is None:
            duplicate += 1
        elif fill.quantity != expected.qty or fill.price != expected.price:
            mismatched += 1
    return missed, duplicate + sum(count - 1 for count in seen.values()), mismatched


def by_cumulative(order: TruthOrder, local: list[LocalFill]) -> tuple[int, int, int]:
    """(missed, duplicate, mismatched) fills of one order whose fills ordersync derives:
    each recorded once; short of the exchange's filled quantity a miss, past it a
    duplicate; a step ending at a quantity the exchange's fills never reached, or all of
    them at another average than the exchange's (each step's price is rounded), a mismatch."""
    ids = Counter(fill.broker_fill_id for fill in local)
    unique = sorted({f.broker_fill_id: f for f in local}.values(), key=lambda f: f.recorded_at)
    quantity = sum((fill.quantity for fill in unique), Decimal(0))
    reached = set(itertools.accumulate(fill.qty for fill in order.fills))
    steps = itertools.accumulate(fill.quantity for fill in unique)
    mismatched = sum(1 for step in steps if step not in reached)
    if quantity and order.average_price is not None:
        average = sum((f.quantity * f.price for f in unique), Decimal(0)) / quantity
        mismatched += abs(average - order.average_price) > AVG_PRICE_TOLERANCE * len(unique)
    duplicate = sum(count - 1 for count in ids.values()) + (quantity > order.filled)
    return int(quantity < order.filled), duplicate, mismatched


def load_positions(engine: Engine, accounts: list[str]) -> dict[str, Decimal]:
    """The ledger's position per symbol, summed over these accounts."""
    query = (
        select(Position.symbol, func.sum(Position.quantity))
        .join(Account, Account.id == Position.account_id)
        .where(Account.name.in_(accounts))
        .group_by(Position.symbol)
    )
    with engine.connect() as connection:
        return {symbol: Decimal(qty) for symbol, qty in connection.execute(query)}


def position_differences(truth: list[TruthOrder], before: dict[str, Decimal],
                         after: dict[str, Decimal]) -> dict[str, Any]:  # fmt: skip
    """Per symbol, what the ledger's positions moved by during the run against what the
    exchange's fills of the run's orders moved them by."""
    moved: dict[str, Decimal] = defaultdict(Decimal)
    for order in truth:
        moved[order.symbol] += order.signed_filled
    differences = [
        {"symbol": symbol, "local": str(after.get(symbol, 0) - before.get(symbol, 0)),
         "exchange": str(moved[symbol])}
        for symbol in sorted(set(moved) | set(after) | set(before))
        if after.get(symbol, 0) - before.get(symbol, 0) != moved[symbol]
    ]  # fmt: skip
    return {"position_mismatches": len(differences),
            "position_mismatch_examples": differences[:SHOWN_MISMATCHES]}  # fmt: skip


def doubled_orders(truth: list[TruthOrder]) -> dict[str, Any]:
    """Orders the exchange holds more than once under one client order id (a venue that
    takes a client id again once its first order is closed): each extra one is an order
    nobody asked for."""
    counts = Counter(order.client_order_id for order in truth)
    doubled = sorted(cid for cid, count in counts.items() if count > 1)
    return {
        "duplicate_orders": sum(counts[cid] - 1 for cid in doubled),
        "duplicate_order_examples": [
            {"client_order_id": cid, "broker_order_ids": [
                order.broker_order_id for order in truth if order.client_order_id == cid]}
            for cid in doubled[:SHOWN_MISMATCHES]
        ],
    }  # fmt: skip


def _truth_id(fill: LocalFill, truth_fills: dict[str, TruthFill],
              by_cum: dict[Decimal, str]) -> str:  # fmt: skip
    """The exchange's id of a local fill: its own, or the one of its cumulative quantity."""
    if fill.broker_fill_id in truth_fills or fill.cum_quantity is None:
        return fill.broker_fill_id
    return by_cum.get(fill.cum_quantity, fill.broker_fill_id)


def described(order: LocalOrder | None) -> dict[str, str]:
    """The local state worth seeing next to a mismatch or an incomplete order."""
    if order is None:
        return {}
    return {
        "local_status": order.status.value,
        "local_filled": str(order.filled),
        "local_broker_filled": str(order.broker_filled),
    }


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return round(sorted_values[rank - 1], 6)


def latencies(fills: list[LocalFill]) -> dict[str, float | None]:
    """Broker fill time -> fill committed locally, per fill."""
    values = sorted((f.recorded_at - f.filled_at).total_seconds() for f in fills)
    return {
        "latency_p50_s": percentile(values, 50),
        "latency_p95_s": percentile(values, 95),
        "latency_p99_s": percentile(values, 99),
        "latency_max_s": round(values[-1], 6) if values else None,
    }


def run_sender(stack: Stack, *, accounts: list[str], n: int, prefix: str, mix: str,
               rate: float, prices: dict[str, str], venue: dict[str, Any], timeout_s: float,
               exit_after_s: float) -> dict[str, Any]:  # fmt: skip
    """The orders go out from a process that imports nothing of ordersync."""
    argv = [
        sys.executable, "-I", str(SENDER), "--accounts", ",".join(accounts), "--orders",
        str(n), "--prefix", prefix, "--mix", mix, "--rate", str(rate), "--prices",
        json.dumps(prices), "--venue", json.dumps(venue), "--exit-after-s", str(exit_after_s),
    ]  # fmt: skip
    result = subprocess.run(  # noqa: S603 - our interpreter and script
        argv, env=stack.child_env(), capture_output=True, text=True, timeout=timeout_s,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise BenchError(f"the sender failed ({result.returncode}): {result.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def versions(stack: Stack, engine: Engine) -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("ordersync", "celery", "kombu", "sqlalchemy", "redis", "httpx"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    client = redis.Redis.from_url(stack.redis_url, socket_timeout=2)
    try:
        found["redis_server"] = str(client.info("server").get("redis_version"))
    finally:
        client.close()
    with engine.connect() as connection:
        info = connection.dialect.server_version_info
    found["database_server"] = ".".join(map(str, info)) if info else None
    return found


def print_table(result: dict[str, Any], phase: str | None = None) -> None:
    mode = f", {phase}" if phase else ""
    settings = result["settings"]
    title = f"ordersync bench: {result['orders']} orders ({settings['mix']}{mode})"
    if settings.get("broker", "alpaca") != "alpaca":
        title = f"ordersync bench --broker {settings['broker']}: {title.partition(': ')[2]}"
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "missed_fills", "duplicate_fills", "duplicate_orders", "mismatched_orders",
        "mismatched_fills", "position_mismatches", "incomplete_orders", "dropped", "late",
        "exits_refused", "broker_refused", "rate_limited_requests",
        "latency_p50_s", "latency_p95_s", "latency_p99_s", "latency_max_s",
        "broker_requests_per_order", "broker_weight_per_order", "orders_per_s", "sent_per_s",
        "drain_s", "wall_s",
    ):  # fmt: skip
        if key in ("broker_weight_per_order", "position_mismatches") and key not in result:
            continue  # a venue that does not weigh its requests, or compare positions
        value = result.get(key)
        table.add_row(key, "-" if value is None else str(value))
    console.print(table)
    for cause, count in result.get("dropped_by_cause", {}).items():
        console.print(f"  dropped {count}: {cause}")
    for moved in result.get("position_mismatch_examples", []):
        console.print(f"  {moved['symbol']}: position moved {moved['local']} here, "
                      f"{moved['exchange']} at the exchange")  # fmt: skip
    for doubled in result.get("duplicate_order_examples", []):
        ids = ", ".join(doubled["broker_order_ids"])
        console.print(f"  {doubled['client_order_id']}: placed more than once ({ids})")
    for mismatch in result["mismatches"]:
        local = f" (local: {mismatch['local_status']})" if "local_status" in mismatch else ""
        console.print(f"  {mismatch['client_order_id']}: {'; '.join(mismatch['reasons'])}{local}")
    if result["deadline_passed"]:
        console.print(f"[red]deadline passed: {result['incomplete_orders']} incomplete[/red]")


class Transport(StrEnum):
    REDIS = "redis"
    RABBITMQ = "rabbitmq"


DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def transport_url(transport: Transport | None, broker_url: str | None) -> str | None:
    """The amqp:// URL the run's tasks travel over, or None for Redis."""
    settings = get_settings()
    configured = settings.celery_broker_url
    amqp = configured.get_secret_value() if configured and settings.transport_is_amqp() else None
    if transport is None:
        transport = Transport.RABBITMQ if (broker_url or amqp) else Transport.REDIS
    if transport is Transport.REDIS:
        if broker_url:
            raise typer.BadParameter("--broker-url is for --transport rabbitmq")
        return None
    url = broker_url or amqp or DEFAULT_AMQP_URL
    if urlsplit(url).scheme not in AMQP_SCHEMES:
        raise typer.BadParameter("--broker-url must be an amqp:// URL")
    return url


class BenchBroker(StrEnum):
    """The venues ``--broker`` offers (``ordersync.bench_venue.VENUES``)."""

    ALPACA = "alpaca"
    BINANCE = "binance"
    COINBASE = "coinbase"
    TRADIER = "tradier"
    OANDA = "oanda"


def bench_venue(kind: BrokerKind, *, stream: bool, sweep_orders: int) -> BenchVenue:
    """The venue, refusing what the benchmark cannot do there yet."""
    try:
        venue = venue_for(kind)
    except VenueRefused as exc:
        raise typer.BadParameter(str(exc), param_hint="--broker") from exc
    if stream and not venue.streams:
        raise typer.BadParameter(
            f"--stream: the benchmark cannot stream {venue.name} orders yet; run without --stream",
            param_hint="--broker",
        )
    if sweep_orders and not venue.sweeps:
        raise typer.BadParameter(
            f"--sweep-orders: the sweep benchmark seeds Alpaca orders only, not {venue.name}",
            param_hint="--broker",
        )
    return venue


class Mix(StrEnum):
    MARKET = "market"
    MIXED = "mixed"
    ROUNDTRIP = "roundtrip"


@dataclass(frozen=True, slots=True)
class BenchOptions:
    orders: int
    mix: Mix
    rate: float
    workers: int
    deadline_s: float
    account: str
    accounts: int
    rate_limit_per_min: int
    exit_after_s: float
    faults: bool
    redis_url: str | None
    broker_url: str | None  # RabbitMQ's (amqp://), or None: tasks over Redis
    database_url: str | None
    exchange_url: str | None
    key_id: str | None
    secret_key: str | None
    sim_args: tuple[str, ...]
    sweep: bench_sweep.SweepOptions
    venue: BenchVenue
    # The orders twice, polling first, then with ``ordersync stream`` (``stream_faults``:
    # its messages dropped, duplicated, reordered and its connections cut meanwhile).
    stream: bool = False
    stream_faults: bool = False


# What --stream-faults does to the stream phase's messages and connections, and the rare
# statuses its orders pass through meanwhile.
STREAM_FAULTS = {"stream_p_drop": 0.05, "stream_p_duplicate": 0.05, "stream_p_reorder": 0.05,
                 "stream_p_disconnect": 0.002, "p_pending_new": 0.02, "p_stopped": 0.02,
                 "p_suspended": 0.02, "p_calculated": 0.05}  # fmt: skip


def fresh_sqlite(var_dir: Path) -> str:
    """The bench's own database, emptied per run so its figures see only this run."""
    var_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (var_dir / f"bench.db{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{var_dir / 'bench.db'}"


def open_orders(engine: Engine) -> int:
    """Open orders already in the database: leftovers of earlier runs compete with this one."""
    query = select(func.count()).select_from(Order).where(Order.status.in_(OPEN_STATUSES))
    with engine.connect() as connection:
        return int(connection.scalar(query) or 0)


def require_account(engine: Engine, name: str) -> None:
    with engine.connect() as connection:
        if connection.scalar(select(Account.id).where(Account.name == name)) is None:
            raise BenchError(f"account {name!r} does not exist (--workers 0 uses it as it is)")


def send_and_compare(
    stack: Stack, sim: httpx.Client, engine: Engine, options: BenchOptions, prefix: str
) -> dict[str, Any]:
    """The order benchmark: send N orders by task name, wait until they are complete, compare."""
    n, venue = options.orders, options.venue
    before = sim.get("/requests").json()
    positions_before = load_positions(engine, stack.accounts) if venue.positions else {}
    sending_s = n / options.rate if options.rate else 0.0
    chaos = (bench_faults.Chaos(stack, sim, sending_s, venue.exchange_faults)
             if options.faults else None)  # fmt: skip
    if chaos is not None:
        chaos.start()
    try:
        sent = run_sender(
            stack, accounts=stack.accounts, n=n, prefix=prefix, mix=options.mix.value,
            rate=options.rate, prices=venue.prices(sim), venue=venue.sender_venue(sim),
            timeout_s=sending_s + options.deadline_s + 60, exit_after_s=options.exit_after_s,
        )  # fmt: skip
    finally:
        if chaos is not None:
            chaos.stop()
    done_at = wait_complete(engine, prefix, n, options.deadline_s)
    if chaos is not None:
        sim.delete("/faults").raise_for_status()  # the comparison reads without faults
    after = sim.get("/requests").json()
    truth = venue.read_truth(sim.get("/truth").json()["orders"], prefix)
    orders, fills = load_orders(engine, prefix), load_fills(engine, prefix)
    refused = refused_calls(engine, prefix)
    worker_log = (
        "\n".join(log_tail(stack.logs / f"{name}.log") for name in stack.worker_names)
        if done_at is None
        else ""
    )
    kills = chaos.kill_times() if chaos is not None else []
    recovered = recovery(kills, engine, prefix, sent.pop("sent_at", {}))
    first, last = float(sent["first_send"]), float(sent["last_send"])
    positions = (
        position_differences(truth, positions_before, load_positions(engine, stack.accounts))
        if venue.positions
        else {}
    )
    return {
        **compare(truth, orders, fills, fills_derived=venue.fills_derived),
        **positions,
        **drops(truth, orders, refused, [f"{prefix}{i}" for i in range(n)]),
        **latencies(fills),
        **({"faults": chaos.report()} if chaos is not None else {}),
        **({"recovery": recovered} if chaos is not None else {}),
        **requests_per_order(venue, before, after, n),
        "rate_limited_requests": after["rate_limited"] - before["rate_limited"],
        "orders_per_s": round(n / (done_at - first), 2) if done_at else None,
        "sent_per_s": round(n / (last - first), 1) if last > first else None,
        "drain_s": round(done_at - last, 3) if done_at else None,
        "incomplete_orders": n - sum(order.complete for order in orders.values()),
        "incomplete_examples": [
            {"client_order_id": order.client_order_id, **described(order)}
            for order in orders.values()
            if not order.complete
        ][:SHOWN_MISMATCHES],
        "deadline_passed": done_at is None,
        "worker_log_tail": worker_log or None,
    }


def requests_per_order(venue: BenchVenue, before: dict[str, Any], after: dict[str, Any],
                       n: int) -> dict[str, Any]:  # fmt: skip
    """The venue's requests the exchange answered during the run, per order sent (and their
    request weight, where the venue weighs them), and how many of each route."""
    made = venue.requests(after) - venue.requests(before)
    earlier = venue.by_route(before)
    found: dict[str, Any] = {
        "broker_requests_per_order": round(made / n, 3),
        "broker_requests_by_route": {
            route: count - earlier.get(route, 0)
            for route, count in sorted(venue.by_route(after).items())
            if count > earlier.get(route, 0)
        },
    }
    weight_after = venue.weight(after)
    if weight_after is not None:
        weight = weight_after - (venue.weight(before) or 0)
        found["broker_weight_per_order"] = round(weight / n, 3)
    return found


def polling_and_stream(stack: Stack, sim: httpx.Client, engine: Engine, options: BenchOptions,
                       prefix: str) -> dict[str, Any]:  # fmt: skip
    """The same orders twice on one system: polled, then with the broker stream."""
    polling = send_and_compare(stack, sim, engine, options, f"{prefix}poll-")
    stack.start_stream()()
    faults = options.venue.stream_faults(STREAM_FAULTS)
    if options.stream_faults:
        sim.put("/faults", json=faults).raise_for_status()
    try:
        streamed = send_and_compare(stack, sim, engine, options, f"{prefix}stream-")
    finally:
        if options.stream_faults:
            sim.put("/faults", json={k: 0 for k in faults}).raise_for_status()
    streamed["stream"] = options.venue.stream_messages(sim.get("/stream").json())
    return {"polling": polling, "stream": streamed}


def run(options: BenchOptions) -> dict[str, Any]:
    """Start (or reach) the system, send, wait, compare, then the sweep benchmark when asked;
    the figures as a dict."""
    began = time.monotonic()
    var_dir = get_settings().var_dir / "bench"
    database_url = options.database_url or fresh_sqlite(var_dir)
    prefix = f"bench-{secrets.token_hex(4)}-"
    n, venue = options.orders, options.venue
    # No beat while the sweep is measured: its own sweeps would run into the measured ones.
    config = StackConfig(
        var_dir=var_dir, database_url=database_url, redis_url=options.redis_url,
        broker_url=options.broker_url, purge_queues=options.workers > 0, redis_persist=False,
        exchange_url=options.exchange_url,
        exchange_key_id=options.key_id, exchange_secret_key=options.secret_key, sim_port=0,
        sim_args=(*options.sim_args, *venue.sim_args()), flower=False, api=False,
        accounts=options.accounts, broker=venue.kind,
        rate_limit_per_min=venue.account_limit(options.rate_limit_per_min, options.accounts),
        beat=options.workers > 0 and not options.sweep.orders, account=options.account,
        ensure_account=options.workers > 0,
        # Under --faults two worker processes share the pool processes: one is killed at a
        # time while the other works on, as in any deployment with more than one worker.
        worker_concurrency=(max(1, options.workers // 2) if options.faults else options.workers)
        if n else 0,
        worker_processes=2 if options.faults else 1,
    )  # fmt: skip
    engine = make_engine(database_url)
    result: dict[str, Any] = {"orders": n}
    try:
        with (
            Stack(config) as stack,
            httpx.Client(
                base_url=f"{stack.exchange_url}/_sim",
                timeout=60,
                limits=httpx.Limits(max_keepalive_connections=0),
            ) as sim,  # fmt: skip
        ):
            if options.workers == 0:
                require_account(engine, options.account)
            if stack.owns_exchange:
                sim.post("/reset").raise_for_status()
                venue.prepare(sim, options.rate_limit_per_min)
            open_before = open_orders(engine)
            if open_before and stack.owns_exchange:
                console.print(
                    f"[yellow]warning: the database already holds {open_before} open orders of "
                    "another exchange; their monitors load this run (use a fresh database)[/yellow]"
                )
            startup_s = time.monotonic() - began
            if n and options.stream:
                result.update(polling_and_stream(stack, sim, engine, options, prefix))
            elif n:
                result.update(send_and_compare(stack, sim, engine, options, prefix))
            if options.sweep.orders:
                sweep_prefix = f"bench-sweep-{secrets.token_hex(4)}-"
                result["sweep"] = bench_sweep.run(stack, engine, sim, options.sweep, sweep_prefix)
            faults = sim.get("/faults").json()
            found_versions = versions(stack, engine)
    finally:
        engine.dispose()
    return {
        **result,
        "wall_s": round(time.monotonic() - began, 3),
        "startup_s": round(startup_s, 3),
        "client_order_id_prefix": prefix,
        "preexisting_open_orders": open_before,
        "settings": {
            "orders": n,
            "broker": venue.name,
            "sweep_orders": options.sweep.orders,
            "mix": options.mix.value,
            "rate_per_s": options.rate or None,
            "accounts": options.accounts,
            "rate_limit_per_min": options.rate_limit_per_min,
            "account_rate_limit_per_min": venue.account_limit(
                options.rate_limit_per_min, options.accounts
            ),
            "exchange_faults": bool(options.faults),
            "stream": options.stream,
            "stream_faults": STREAM_FAULTS if options.stream_faults else None,
            "monitor_shared_checks": get_settings().monitor_shared_checks,
            "worker_concurrency": (options.workers or None) if n else None,
            "worker_processes": 2 if options.faults else 1,
            "task_events": get_settings().task_events,
            "database": make_url(database_url).get_backend_name(),
            "redis": "external" if options.redis_url else "embedded",
            "transport": "rabbitmq" if options.broker_url else "redis",
            "exchange": "started" if options.exchange_url is None else "external",
            "exchange_fill_delay_ms": faults.get("fill_delay_ms"),
            "exchange_partial_fill_probability": faults.get("partial_fill_probability"),
            "exchange_latency_ms": faults.get("latency_ms"),
            "deadline_s": options.deadline_s,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "versions": found_versions,
        },
    }


def failed(result: dict[str, Any]) -> bool:
    """A fill missed or doubled, an order unlike the exchange's, one placed late, or one
    dropped silently (drops with a named cause, e.g. a passed deadline, are reported)."""
    silent = [cause for cause in result.get("dropped_by_cause", {}) if "still" in cause]
    if silent:
        return True
    counts = ("missed_fills", "duplicate_fills", "duplicate_orders", "mismatched_orders",
              "mismatched_fills", "position_mismatches", "late")  # fmt: skip
    if "sweep" in result and bench_sweep.failed(result["sweep"]):
        return True
    if "polling" in result:
        return failed(result["polling"]) or failed(result["stream"])
    return bool(result.get("deadline_passed")) or any(result.get(key) for key in counts)


def bench_command(
    orders: Annotated[int, typer.Option(min=0, help="Orders to send (0: none).")] = 200,
    json_path: Annotated[Path, typer.Option("--json", help="Where to write the figures.")] = Path(
        "bench.json"
    ),
    mix: Annotated[Mix, typer.Option(help="market, or mixed (limits and cancels too).")] = (
        Mix.MARKET
    ),
    rate: Annotated[
        float, typer.Option(min=0, help="Orders per second; 0: as fast as possible.")
    ] = 0,
    workers: Annotated[
        int, typer.Option(min=0, help="Worker concurrency; 0 uses workers already running.")
    ] = 4,
    deadline_s: Annotated[
        float, typer.Option(min=1, help="Seconds after the last send for orders to complete.")
    ] = 120,
    account: Annotated[
        str | None,
        typer.Option(
            help="Account the orders are placed for (default: bench; bench-<broker> for "
            "another broker than alpaca, so one database can hold both).",
            show_default=False,
        ),
    ] = None,
    accounts: Annotated[
        int, typer.Option(min=1, help="Spread the orders over N accounts (<account>-1..N).")
    ] = 1,
    rate_limit_per_min: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Each account's limit, at the exchange and here (default: the venue's, "
            f"{RATE_LIMIT_PER_MIN} at Alpaca); binance: the request weight of the bench's "
            "address, which its accounts share (6000, as Binance's); coinbase: each key's, "
            "enforced a second (1800: 30 a second, as Coinbase's); tradier: each token's "
            "read bucket (120, as Tradier's in production; orders have their own, 60); "
            "oanda: each token's, enforced a second (6000: 100 a second, as OANDA's).",
            show_default=False,
        ),
    ] = None,
    exit_after_s: Annotated[
        float, typer.Option(min=0, help="--mix roundtrip: an entry's exit follows this late.")
    ] = 1.0,
    faults: Annotated[
        bool,
        typer.Option(
            "--faults",
            help="Exchange faults, and workers, beat and Redis "
            "killed and restarted while the orders go out.",
        ),
    ] = False,
    redis_url: Annotated[str | None, typer.Option(help="Use this Redis.")] = None,
    transport: Annotated[
        Transport | None,
        typer.Option(
            help="Celery's transport (default: rabbitmq when "
            "ORDERSYNC_CELERY_BROKER_URL is set, else redis)."
        ),
    ] = None,
    broker_url: Annotated[
        str | None,
        typer.Option(
            help="--transport rabbitmq: its amqp:// URL (default "
            f"ORDERSYNC_CELERY_BROKER_URL, else {DEFAULT_AMQP_URL}). The bench empties "
            "ordersync's queues there: give it a vhost of its own.",
            show_default=False,
        ),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Use this database (default: a fresh SQLite file).")
    ] = None,
    exchange_url: Annotated[str | None, typer.Option(help="Use this paper exchange.")] = None,
    key_id: Annotated[
        str | None, typer.Option(envvar="ORDERSYNC_SIM_KEY_ID", help="Its key id.")
    ] = None,
    secret_key: Annotated[
        str | None,
        typer.Option(envvar="ORDERSYNC_SIM_SECRET_KEY", help="Its secret.", show_default=False),
    ] = None,
    fill_delay_ms: Annotated[
        str, typer.Option(help="MIN-MAX ms to fill, for an exchange the bench starts.")
    ] = "0-300",
    partial_fill_probability: Annotated[
        float, typer.Option(min=0, max=1, help="For an exchange the bench starts.")
    ] = 0.3,
    sweep_orders: Annotated[
        int, typer.Option(min=0, help="Resting limit orders to measure the sweep over (0: skip).")
    ] = 0,
    sweep_runs: Annotated[int, typer.Option(min=1, help="Sweeps to run over them.")] = 3,
    sweep_page_size: Annotated[
        int | None,
        typer.Option(min=1, max=500, help="Listing page size (default ORDERSYNC_SWEEP_PAGE_SIZE)."),
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="The orders twice: polled, then with the stream.")
    ] = False,
    broker: Annotated[
        BenchBroker, typer.Option(help="The venue at the paper exchange the orders go to.")
    ] = BenchBroker.ALPACA,
    stream_faults: Annotated[
        bool,
        typer.Option(
            "--stream-faults",
            help="--stream: drop, duplicate and reorder 5 % "
            "of the stream's messages and cut its connections meanwhile; 2 % of the orders "
            "pending_new, stopped or suspended for a while, 5 % calculated after filling.",
        ),
    ] = False,
) -> None:
    """Send N orders by task name, wait until all are complete, compare with the exchange;
    then, with --sweep-orders, measure the reconciliation sweep over resting orders."""
    if orders == 0 and sweep_orders == 0:
        raise typer.BadParameter("nothing to measure: give --orders or --sweep-orders")
    if workers == 0 and None in (redis_url, database_url, exchange_url):
        raise typer.BadParameter(
            "--workers 0 uses running workers: give their --redis-url, --database-url and "
            "--exchange-url"
        )
    venue = bench_venue(BrokerKind(broker.value), stream=stream, sweep_orders=sweep_orders)
    if account is None:
        account = "bench" if broker is BenchBroker.ALPACA else f"bench-{broker.value}"
    options = BenchOptions(
        orders=orders, mix=mix, rate=rate, workers=workers, deadline_s=deadline_s,
        account=account, accounts=accounts,
        rate_limit_per_min=rate_limit_per_min or venue.rate_limit_per_min,
        exit_after_s=exit_after_s, faults=faults, redis_url=redis_url,
        broker_url=transport_url(transport, broker_url), database_url=database_url,
        exchange_url=exchange_url, key_id=key_id, secret_key=secret_key,
        sim_args=("--fill-delay-ms", fill_delay_ms,
                  "--partial-fill-probability", str(partial_fill_probability)),
        sweep=bench_sweep.SweepOptions(orders=sweep_orders, runs=sweep_runs,
                                       page_size=sweep_page_size, account=account),
        venue=venue, stream=stream, stream_faults=stream_faults,
    )  # fmt: skip
    if stream_faults and not stream:
        raise typer.BadParameter("--stream-faults needs --stream")
    try:
        result = run(options)
    except (BenchError, StackError, httpx.HTTPError) as exc:
        Console(stderr=True).print(f"ordersync bench: {exc}", style="red", markup=False)
        raise typer.Exit(2) from exc
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    if orders and stream:
        print_table({**result["polling"], "orders": orders, "settings": result["settings"]},
                    "polling")  # fmt: skip
        print_table({**result["stream"], "orders": orders, "settings": result["settings"]},
                    "stream")  # fmt: skip
    elif orders:
        print_table(result)
    if "sweep" in result:
        bench_sweep.print_table(result["sweep"])
    console.print(f"figures written to {json_path}")
    if failed(result):
        raise typer.Exit(1)
