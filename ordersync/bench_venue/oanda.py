"""The benchmark at the paper exchange's OANDA v20 dialect (/v3): the instruments it lists,
units in whole numbers (each instrument's precision), limit prices on its display precision,
an account id with its token per account. Selling what is not held opens a short, as at
OANDA. Each fill is an ORDER_FILL transaction, its id the fill id ordersync records."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import ClassVar

import httpx

from brokers.oanda.paper.instruments import ENGINE_PREFIX, INSTRUMENTS, Instrument
from core.enums import BrokerKind, OrderStatus
from ordersync.bench_faults import EXCHANGE_FAULTS
from ordersync.bench_venue.alpaca import parse_utc
from ordersync.bench_venue.base import (
    BenchVenue,
    Json,
    SymbolTerms,
    TruthFill,
    TruthOrder,
    stream_only,
)

# Orders of about 1,000 to 10,000 US dollars, so the margin of a run stays within the
# account's balance (the sender's quantities: units, whole).
ORDER_USD = (Decimal(1000), Decimal(10_000))
PER_S = 60  # OANDA limits requests per second, the benchmark's option per minute
STATES = {"PENDING": OrderStatus.NEW, "TRIGGERED": OrderStatus.NEW, "FILLED": OrderStatus.FILLED}


class OandaVenue(BenchVenue):
    kind: ClassVar[BrokerKind] = BrokerKind.OANDA
    rate_limit_per_min: ClassVar[int] = 100 * PER_S  # 100 requests a second per token
    streams: ClassVar[bool] = True  # the transaction stream (chunked HTTP)
    # Transactions are listed the moment they happen: no late activities to inject.
    exchange_faults: ClassVar[Json] = {
        key: value for key, value in EXCHANGE_FAULTS.items() if "late_activity" not in key
    }
    routes: ClassVar[str] = "/v3/"
    positions: ClassVar[bool] = True

    def stream_messages(self, stream: Json) -> Json:
        messages: Json = stream["oanda"]["messages"]
        return messages

    def stream_faults(self, faults: Json) -> Json:
        return stream_only(faults)

    def prepare(self, sim: httpx.Client, rate_limit_per_min: int) -> None:
        """The exchange's limit per token a second (its command line has no option for it)."""
        per_s = max(1, rate_limit_per_min // PER_S)
        sim.put("/faults", json={"oanda_requests_per_s": per_s}).raise_for_status()

    def sender_venue(self, sim: httpx.Client) -> Json:
        prices = self.prices(sim)
        return {
            "symbols": {
                name: terms(instrument, Decimal(prices[name])).as_json()
                for name, instrument in INSTRUMENTS.items()
            },
            "buy_fee_rate": "0",  # OANDA's cost is in the spread, in the home currency
        }

    def prices(self, sim: httpx.Client) -> dict[str, str]:
        """The exchange's price of each instrument, or where its market starts (none traded)."""
        found: dict[str, str] = sim.get("/prices").json()
        return {
            name: found.get(ENGINE_PREFIX + name, str(instrument.price))
            for name, instrument in INSTRUMENTS.items()
        }

    def read_truth(self, orders: list[Json], prefix: str) -> list[TruthOrder]:
        return [
            truth_order(order)
            for order in orders
            if "oanda" in order and (order["oanda"]["client_id"] or "").startswith(prefix)
        ]


def usd_per_unit(instrument: Instrument, price: Decimal) -> Decimal:
    """What one unit is worth in US dollars: the price (XXX_USD) or one dollar (USD_XXX)."""
    if instrument.quote == "USD":
        return price
    if instrument.base == "USD":
        return Decimal(1)
    raise ValueError(f"{instrument.name}: no US dollar in it to size its orders by")


def terms(instrument: Instrument, price: Decimal) -> SymbolTerms:
    """Units on the instrument's precision worth ORDER_USD, at least its minimum trade
    size and at most its maximum order units; limit prices on its display precision."""
    step, worth = instrument.lot, usd_per_unit(instrument, price)
    low, high = (max(instrument.minimum_trade_size, usd / worth) for usd in ORDER_USD)
    min_steps = math.ceil(low / step)
    max_steps = int(min(high, instrument.maximum_order_units) / step)
    return SymbolTerms(step=step, min_steps=max(1, min_steps), max_steps=max(min_steps, max_steps),
                       tick=instrument.tick)  # fmt: skip


def truth_order(order: Json) -> TruthOrder:
    """The ``oanda`` part of an order of the truth: its state as ordersync reads it (a
    CANCELLED order with nothing filled was rejected if it was a market order or the
    engine rejected it, else canceled), fills by ORDER_FILL transaction id, the average
    price from the fills (exact)."""
    oanda = order["oanda"]
    fills = tuple(
        TruthFill(fill["id"], abs(Decimal(fill["units"])), Decimal(fill["price"]))
        for fill in oanda["fills"]
    )
    filled = sum((fill.qty for fill in fills), Decimal(0))
    notional = sum((fill.qty * fill.price for fill in fills), Decimal(0))
    state = oanda["state"]
    status = STATES.get(state)
    if state == "CANCELLED":
        refused = not filled and (oanda["type"] == "MARKET" or order["status"] == "rejected")
        status = OrderStatus.REJECTED if refused else OrderStatus.CANCELED
    units = Decimal(oanda["units"])
    return TruthOrder(
        client_order_id=oanda["client_id"],
        broker_order_id=oanda["order_id"],
        raw_status=state,
        status=status,
        filled=filled,
        average_price=notional / filled if filled else None,
        created_at=parse_utc(order["created_at"]),
        fills=fills,
        status_problem=None if status else f"unknown state {state!r}",
        symbol=str(order["symbol"]).removeprefix(ENGINE_PREFIX),
        signed_filled=filled if units > 0 else -filled,
    )
