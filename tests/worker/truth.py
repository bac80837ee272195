"""Comparing the database with the paper exchange's ground truth."""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from brokers.alpaca_parse import order_status
from models.state_machine import AVERAGE_PRICE_QUANTUM
from tests.worker.conftest import TrackingSystem


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
        local_fills = [(f.broker_fill_id, (f.quantity, f.price)) for f in fills[ours.id]]
        if ours.broker_order_id != true["id"]:
            problems.append(f"{cid}: broker id {ours.broker_order_id} != {true['id']}")
        if ours.status is not expected_status:
            problems.append(f"{cid}: status {ours.status} != {expected_status}")
        if ours.filled_quantity != true_filled:
            problems.append(f"{cid}: filled {ours.filled_quantity} != {true_filled}")
        if sorted(local_fills) != sorted(true_fills.items()):
            problems.append(f"{cid}: fills {len(local_fills)} local vs {len(true_fills)} true")
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
