"""The benchmark at the paper exchange's Tradier dialect (/v1/accounts): US stocks, whole
shares, an account number with its access token per account. Tradier sells only shares
held (a short sale is another side ordersync does not send), so the sender only buys outside
round trips. Tradier lists no executions: ordersync derives each fill from an order's
cumulative figures, so the truth is compared per order (quantity, average), not by fill id."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

import httpx

from brokers.tradier.parse import order_status
from brokers.tradier.tags import client_order_id_of
from brokers.values import ParseError
from core.enums import BrokerKind
from ordersync.bench_faults import EXCHANGE_FAULTS
from ordersync.bench_venue.alpaca import SYMBOLS, parse_utc
from ordersync.bench_venue.base import (
    BenchVenue,
    Json,
    SymbolTerms,
    TruthFill,
    TruthOrder,
    stream_only,
)

# Up to 10 shares: the sender buys on (no sells outside round trips) within the account's cash.
SHARES = SymbolTerms(step=Decimal(1), min_steps=1, max_steps=10, tick=Decimal("0.01"))
SENDER_VENUE: Json = {"symbols": {symbol: SHARES.as_json() for symbol in SYMBOLS},
                      "buy_fee_rate": "0", "long_only": True}  # fmt: skip


class TradierVenue(BenchVenue):
    kind: ClassVar[BrokerKind] = BrokerKind.TRADIER
    rate_limit_per_min: ClassVar[int] = 120  # the "standard" (read) bucket in production
    streams: ClassVar[bool] = True  # the account events at /v1/accounts/events
    # Orders are read by their status: no activities are listed late at /v1.
    exchange_faults: ClassVar[Json] = {
        key: value for key, value in EXCHANGE_FAULTS.items() if "late_activity" not in key
    }
    routes: ClassVar[str] = "/v1/"
    fills_derived: ClassVar[bool] = True
    positions: ClassVar[bool] = True

    def stream_messages(self, stream: Json) -> Json:
        messages: Json = stream["tradier"]["messages"]
        return messages

    def stream_faults(self, faults: Json) -> Json:
        return stream_only(faults)

    def prepare(self, sim: httpx.Client, rate_limit_per_min: int) -> None:
        """The exchange's read bucket per token (its command line has no option for it)."""
        sim.put("/faults", json={"tradier_reads_per_min": rate_limit_per_min}).raise_for_status()

    def sender_venue(self, sim: httpx.Client) -> Json:
        return SENDER_VENUE

    def prices(self, sim: httpx.Client) -> dict[str, str]:
        """The exchange's prices of the symbols traded so far (one market with /v2's)."""
        found: dict[str, str] = sim.get("/prices").json()
        return {symbol: price for symbol, price in found.items() if symbol in SYMBOLS}

    def read_truth(self, orders: list[Json], prefix: str) -> list[TruthOrder]:
        found = []
        for order in orders:
            if "tradier" not in order:
                continue
            client_order_id = client_order_id_of(order["tradier"].get("tag"))
            if client_order_id is not None and client_order_id.startswith(prefix):
                found.append(truth_order(order, client_order_id))
        return found


def truth_order(order: Json, client_order_id: str) -> TruthOrder:
    """An order placed through /v1: its Tradier part read as ordersync's parser reads it
    (the client id from its tag, the id Tradier's), its fills the engine's."""
    tradier = order["tradier"]
    filled = Decimal(tradier["exec_quantity"])
    problem = None
    try:
        status = order_status(tradier["status"], Decimal(tradier["quantity"]), filled)
    except ParseError as exc:
        status, problem = None, str(exc)
    return TruthOrder(
        client_order_id=client_order_id,
        broker_order_id=str(tradier["id"]),
        raw_status=tradier["status"],
        status=status,
        filled=filled,
        average_price=Decimal(tradier["avg_fill_price"]) if filled else None,
        created_at=parse_utc(tradier["create_date"]),
        fills=tuple(
            TruthFill(fill["id"], Decimal(fill["qty"]), Decimal(fill["price"]))
            for fill in order["fills"]
        ),
        status_problem=problem,
        symbol=tradier["symbol"],
        signed_filled=filled if order["side"] == "buy" else -filled,
    )
