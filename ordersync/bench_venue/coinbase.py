"""The benchmark at the paper exchange's Coinbase Advanced Trade dialect (/api/v3/brokerage):
the products it lists, sizes on their base increment and limit prices on their price and
quote increments, keys funded in every currency. Coinbase's commission is money in the quote
currency, so a round trip's exit sells all its entry bought."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import ClassVar

import httpx

from brokers.coinbase.paper.products import ENGINE_PREFIX, PRODUCTS, Product, currencies
from brokers.coinbase.parse import order_status
from brokers.coinbase.values import ParseError, when
from core.enums import BrokerKind
from ordersync.bench_faults import EXCHANGE_FAULTS
from ordersync.bench_venue.base import (
    BenchVenue,
    Json,
    SymbolTerms,
    TruthFill,
    TruthOrder,
    stream_only,
)

# The smallest order is worth this many quote_min_size at the market: a resting buy at half
# the market (and the market's drift) is still above the minimum.
NOTIONAL_MARGIN = 4
SIZES = 10  # the largest order is this many times the smallest
FUNDING_USD = Decimal(1_000_000)  # each currency, worth about this much at the start
FUNDING_QUANTUM = Decimal("1e-8")
PER_S = 60  # Coinbase limits requests per second, the benchmark's option per minute


class CoinbaseVenue(BenchVenue):
    kind: ClassVar[BrokerKind] = BrokerKind.COINBASE
    rate_limit_per_min: ClassVar[int] = 30 * PER_S  # 30 requests a second per key
    # Fills are listed the moment they happen: no late activities to inject.
    exchange_faults: ClassVar[Json] = {
        key: value for key, value in EXCHANGE_FAULTS.items() if "late_activity" not in key
    }
    routes: ClassVar[str] = "/api/v3/brokerage/"
    streams: ClassVar[bool] = True  # the user channel at /ws/user

    def sim_args(self) -> tuple[str, ...]:
        return ("--coinbase-balances", balances())

    def stream_messages(self, stream: Json) -> Json:
        messages: Json = stream["coinbase"]["messages"]
        return messages

    def stream_faults(self, faults: Json) -> Json:
        return stream_only(faults)

    def prepare(self, sim: httpx.Client, rate_limit_per_min: int) -> None:
        """The exchange's limit per key a second (it has no option for it on its command
        line)."""
        per_s = max(1, rate_limit_per_min // PER_S)
        sim.put("/faults", json={"coinbase_requests_per_s": per_s}).raise_for_status()

    def sender_venue(self, sim: httpx.Client) -> Json:
        prices = self.prices(sim)
        return {
            "symbols": {
                product_id: terms(product, Decimal(prices[product_id])).as_json()
                for product_id, product in PRODUCTS.items()
            },
            "buy_fee_rate": "0",  # the commission is paid in the quote currency
        }

    def prices(self, sim: httpx.Client) -> dict[str, str]:
        """The exchange's price of each product, or where its market starts (none traded)."""
        found: dict[str, str] = sim.get("/prices").json()
        return {
            product_id: found.get(ENGINE_PREFIX + product_id, str(product.price))
            for product_id, product in PRODUCTS.items()
        }

    def read_truth(self, orders: list[Json], prefix: str) -> list[TruthOrder]:
        return [
            truth_order(order["coinbase"])
            for order in orders
            if "coinbase" in order and order["coinbase"]["client_order_id"].startswith(prefix)
        ]


def price_tick(product: Product) -> Decimal:
    """A limit price step that is on both the product's price_increment and its
    quote_increment (the coarser one, which the finer one divides)."""
    coarse = max(product.price_increment, product.quote_increment)
    fine = min(product.price_increment, product.quote_increment)
    if coarse % fine:
        raise ValueError(f"{product.product_id}: no price step on both of its increments")
    return coarse


def terms(product: Product, price: Decimal) -> SymbolTerms:
    """Sizes on the base increment worth NOTIONAL_MARGIN quote_min_size and up, at least
    base_min_size and at most base_max_size; limit prices on ``price_tick``."""
    step = product.base_increment
    smallest = max(product.base_min_size, NOTIONAL_MARGIN * product.quote_min_size / price)
    min_steps = math.ceil(smallest / step)
    max_steps = min(SIZES * min_steps, int(product.base_max_size / step))
    return SymbolTerms(
        step=step, min_steps=min_steps, max_steps=max_steps, tick=price_tick(product)
    )


def balances() -> str:
    """``--coinbase-balances``: every currency of every product, worth about FUNDING_USD
    each (so sells have the base to sell and buys the quote to pay, commission included)."""
    return ",".join(
        f"{currency}:{(FUNDING_USD / usd_price(currency)).quantize(FUNDING_QUANTUM)}"
        for currency in currencies()
    )


def usd_price(currency: str) -> Decimal:
    if currency == "USD":
        return Decimal(1)
    product = PRODUCTS.get(f"{currency}-USD")
    if product is None:
        raise ValueError(f"no {currency}-USD product to value {currency} by")
    return product.price


def truth_order(order: Json) -> TruthOrder:
    """The ``coinbase`` part of an order of the truth: its status as ordersync's parser reads
    it (no partial status: OPEN with a filled size), fills by ``entry_id``, the average
    price from the fills (exact)."""
    fills = tuple(
        TruthFill(fill["entry_id"], Decimal(fill["size"]), Decimal(fill["price"]))
        for fill in order["fills"]
    )
    filled = Decimal(order["filled_size"])
    traded = sum((fill.qty for fill in fills), Decimal(0))
    notional = sum((fill.qty * fill.price for fill in fills), Decimal(0))
    problem = None
    try:
        status = order_status(order["status"], filled, order.get("pending_cancel") is True)
    except ParseError as exc:
        status, problem = None, str(exc)
    return TruthOrder(
        client_order_id=order["client_order_id"],
        broker_order_id=order["order_id"],
        raw_status=order["status"],
        status=status,
        filled=filled,
        average_price=notional / traded if traded else None,
        created_at=when(order, "created_time"),
        fills=fills,
        status_problem=problem,
    )
