"""Comparing the database with the paper exchange's ground truth."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from sqlalchemy import select
from sqlalchemy.orm import Session

from brokers.alpaca.parse import order_status
from brokers.binance.parse import STATUS_MAP as BINANCE_STATUS
from core.enums import ReportSource
from models.ledger import Position, Trade
from models.state_machine import AVERAGE_PRICE_QUANTUM
from models.trades import TradeStatus
from tests.worker.conftest import TrackingSystem, wait_for


def mismatches(system: TrackingSystem, client_order_ids: list[str]) -> list[str]:
    """Every difference between our record and the exchange's truth, for these orders."""
    truth = {t["client_order_id"]: t for t in system.exchange.truth()}
    orders = {o.client_order_id: o for o in system.orders()}
    fills = defaultdict(list)
    for fill in system.fills():
        fills[fill.order_id].append(fill)
    problems = []
    for cid in client_order_ids:
        true, ours = truth.get(cid), orders.get(cid)
        if true is None or ours is None:
            seen = "" if ours is None else f" ({ours.status}: {ours.last_error})"
            problems.append(f"{cid}: truth={true is not None} local={ours is not None}{seen}")
            continue
        # A notional order names its dollars, "qty": null: the fills decide its quantity.
        qty = None if true.get("notional") is not None else Decimal(true["qty"])
        true_filled = Decimal(true["filled_qty"])
        expected_status = order_status(true["status"], qty, true_filled)
        notional = None if qty is not None else Decimal(true["notional"])
        if (ours.quantity, ours.notional) != (qty, notional):
            problems.append(f"{cid}: for {ours.quantity} / ${ours.notional}, "
                            f"the exchange's {qty} / ${notional}")  # fmt: skip
        true_fills = {f["id"]: (Decimal(f["qty"]), Decimal(f["price"])) for f in true["fills"]}
        # A fill first seen on the stream keeps its execution id, which the listing's
        # activity id does not share: fills are compared on what they are, and every id
        # not from the stream must be the exchange's.
        local = fills[ours.id]
        foreign = sorted(f.broker_fill_id for f in local if f.broker_fill_id not in true_fills
                         and f.source != ReportSource.STREAM)  # fmt: skip
        if ours.broker_order_id != true["id"]:
            problems.append(f"{cid}: broker id {ours.broker_order_id} != {true['id']}")
        if ours.status is not expected_status:
            problems.append(f"{cid}: status {ours.status} != {expected_status}")
        if ours.filled_quantity != true_filled:
            problems.append(f"{cid}: filled {ours.filled_quantity} != {true_filled}")
        if foreign:
            problems.append(f"{cid}: fills {foreign} are not the exchange's")
        if sorted((f.quantity, f.price) for f in local) != sorted(true_fills.values()):
            problems.append(f"{cid}: fills {len(local)} local vs {len(true_fills)} true")
        if true_fills:
            with localcontext() as ctx:
                ctx.prec = 60
                notional = sum(q * p for q, p in true_fills.values())
                expected_avg = (notional / true_filled).quantize(
                    AVERAGE_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN
                )
            if ours.average_fill_price != expected_avg:
                problems.append(f"{cid}: avg {ours.average_fill_price} != {expected_avg}")
    return problems


Compare = Callable[[TrackingSystem, list[str]], list[str]]


def settled(system: TrackingSystem, client_order_ids: list[str], timeout_s: float,
            compare: Compare | None = None) -> None:  # fmt: skip
    """Wait until these orders equal the exchange's truth (as ``compare`` reads it: by
    default Alpaca's view); fail naming a few differences."""
    differences = compare or mismatches
    try:
        wait_for(lambda: not differences(system, client_order_ids), timeout_s,
                 "orders equal to the truth")  # fmt: skip
    except AssertionError:
        problems = differences(system, client_order_ids)
        raise AssertionError(f"{len(problems)} mismatches, e.g. {problems[:5]}") from None


def binance_mismatches(system: TrackingSystem, client_order_ids: list[str]) -> list[str]:
    """Every difference between our record and the Binance dialect's truth for these orders
    (USDT pairs): ids, status, filled quantity, and each trade once (its id, quantity,
    price, and its commission where it was money)."""
    truth = {t["binance"]["clientOrderId"]: t["binance"] for t in system.exchange.truth()
             if "binance" in t}  # fmt: skip
    orders = {o.client_order_id: o for o in system.orders()}
    fills = defaultdict(list)
    for fill in system.fills():
        fills[fill.order_id].append(fill)
    problems = []
    for cid in client_order_ids:
        true, ours = truth.get(cid), orders.get(cid)
        if true is None or ours is None:
            seen = "" if ours is None else f" ({ours.status}: {ours.last_error})"
            problems.append(f"{cid}: truth={true is not None} local={ours is not None}{seen}")
            continue
        symbol = true["symbol"]
        if ours.broker_order_id != f"{symbol}:{true['orderId']}":
            problems.append(f"{cid}: broker id {ours.broker_order_id} != {true['orderId']}")
        if ours.status is not BINANCE_STATUS[true["status"]]:
            problems.append(f"{cid}: status {ours.status} != {true['status']}")
        if ours.filled_quantity != Decimal(true["executedQty"]):
            problems.append(f"{cid}: filled {ours.filled_quantity} != {true['executedQty']}")
        assert symbol.endswith("USDT"), f"{symbol}: the tests trade USDT pairs"
        true_fills = sorted(
            (f"{symbol}:{t['id']}", Decimal(t["qty"]), Decimal(t["price"]),
             Decimal(t["commission"]) if t["commissionAsset"] == "USDT" else Decimal(0))
            for t in true["trades"]
        )  # fmt: skip
        local = sorted((f.broker_fill_id, f.quantity, f.price, f.fee) for f in fills[ours.id])
        if local != true_fills:
            problems.append(f"{cid}: fills {local} != the venue's {true_fills}")
    return problems


def binance_settled(system: TrackingSystem, client_order_ids: list[str], timeout_s: float) -> None:
    """Wait until these orders equal the Binance dialect's truth."""
    settled(system, client_order_ids, timeout_s, binance_mismatches)


def held(system: TrackingSystem, symbol: str) -> Decimal:
    """Our position in ``symbol`` (0 when none is recorded)."""
    with Session(system.engine) as session:
        quantity = session.scalar(select(Position.quantity).where(Position.symbol == symbol))
    return Decimal(0) if quantity is None else quantity


def trade_status(system: TrackingSystem, trade_id: str) -> TradeStatus | None:
    with Session(system.engine) as session:
        return session.scalar(select(Trade.status).where(Trade.id == trade_id))
