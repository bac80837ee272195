"""Comparing the database with the paper exchange's ground truth."""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from brokers.alpaca_parse import order_status
from models.enums import ReportSource
from models.state_machine import AVERAGE_PRICE_QUANTUM
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
            problems.append(f"{cid}: truth={true is not None} local={ours is not None}")
            continue
        qty, true_filled = Decimal(true["qty"]), Decimal(true["filled_qty"])
        expected_status = order_status(true["status"], qty, true_filled)
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


def settled(system: TrackingSystem, client_order_ids: list[str], timeout_s: float) -> None:
    """Wait until these orders equal the exchange's truth; fail naming a few differences."""
    try:
        wait_for(lambda: not mismatches(system, client_order_ids), timeout_s,
                 "orders equal to the truth")  # fmt: skip
    except AssertionError:
        problems = mismatches(system, client_order_ids)
        raise AssertionError(f"{len(problems)} mismatches, e.g. {problems[:5]}") from None
