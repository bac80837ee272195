"""The benchmark at the paper exchange's Alpaca dialect (/v2): US stocks, whole shares."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar

import httpx

from brokers.alpaca.parse import ParseError, order_status
from core.enums import BrokerKind
from ordersync.bench_faults import EXCHANGE_FAULTS
from ordersync.bench_venue.base import (
    DIALECTS,
    BenchVenue,
    Json,
    SymbolTerms,
    TruthFill,
    TruthOrder,
)

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "SPY", "QQQ", "META")
SHARES = SymbolTerms(step=Decimal(1), min_steps=1, max_steps=100, tick=Decimal("0.01"))
# The sender's --venue: whole shares of US stocks, no fee kept in shares.
SENDER_VENUE: Json = {"symbols": {symbol: SHARES.as_json() for symbol in SYMBOLS},
                      "buy_fee_rate": "0"}  # fmt: skip


class AlpacaVenue(BenchVenue):
    kind: ClassVar[BrokerKind] = BrokerKind.ALPACA
    rate_limit_per_min: ClassVar[int] = 200  # per key, as Alpaca documents it
    streams: ClassVar[bool] = True
    sweeps: ClassVar[bool] = True
    exchange_faults: ClassVar[Json] = EXCHANGE_FAULTS
    routes: ClassVar[str] = "/v2/"

    def sender_venue(self, sim: httpx.Client) -> Json:
        return SENDER_VENUE

    def prices(self, sim: httpx.Client) -> dict[str, str]:
        """The exchange's prices of the symbols traded so far; the sender knows the others'
        opening prices."""
        found: dict[str, str] = sim.get("/prices").json()
        return found

    def read_truth(self, orders: list[Json], prefix: str) -> list[TruthOrder]:
        return [
            truth_order(order)
            for order in orders
            if not any(dialect in order for dialect in DIALECTS)
            and order["client_order_id"].startswith(prefix)
        ]

    def requests(self, stats: Json) -> int:
        """Every request the exchange counted (its /v2 routes, and any unknown path)."""
        total: int = stats["total"]
        return total


def truth_order(order: Json) -> TruthOrder:
    """An order of the truth as Alpaca's parser reads its status."""
    filled = Decimal(order["filled_qty"])
    problem = None
    try:
        qty = None if order["qty"] is None else Decimal(order["qty"])  # None: a notional order
        status = order_status(order["status"], qty, filled)
    except ParseError as exc:
        status, problem = None, str(exc)
    average = order["filled_avg_price"]
    return TruthOrder(
        client_order_id=order["client_order_id"],
        broker_order_id=order["id"],
        raw_status=order["status"],
        status=status,
        filled=filled,
        average_price=None if average is None else Decimal(average),
        created_at=parse_utc(order["created_at"]),
        fills=tuple(
            TruthFill(fill["id"], Decimal(fill["qty"]), Decimal(fill["price"]))
            for fill in order["fills"]
        ),
        status_problem=problem,
    )


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
