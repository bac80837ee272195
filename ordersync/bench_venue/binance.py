"""The benchmark at the paper exchange's Binance Spot dialect (/api/v3): the pairs it lists,
quantities and limit prices that pass their filters, accounts funded in every asset."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

import httpx

from brokers.binance.paper.queries import weight_of
from brokers.binance.paper.symbols import PAIRS, Pair
from brokers.binance.parse import STATUS_MAP, broker_id
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
from ordersync.bench_venue.coinbase import CoinbaseVenue

ENGINE_PREFIX = "binance:"  # the engine's name of a pair: ``binance:BTCUSDT``
# The smallest order is worth this many minimum notionals at the market: a resting buy at
# half the market (and the market's drift) still passes the NOTIONAL filter.
NOTIONAL_MARGIN = 4
SIZES = 10  # the largest order is this many times the smallest
FUNDING_USDT = Decimal(1_000_000)  # each asset, worth about this much at the start
BPS = Decimal(10_000)


class BinanceVenue(BenchVenue):
    kind: ClassVar[BrokerKind] = BrokerKind.BINANCE
    rate_limit_per_min: ClassVar[int] = 6000  # request weight per address, as Binance's
    # Trades are listed the moment they happen at /api/v3: no late activities to inject.
    exchange_faults: ClassVar[Json] = {
        key: value for key, value in EXCHANGE_FAULTS.items() if "late_activity" not in key
    }
    routes: ClassVar[str] = "/api/v3/"
    streams: ClassVar[bool] = True  # the user data stream at /ws-api/v3

    def sim_args(self) -> tuple[str, ...]:
        return ("--binance-balances", balances())

    def owns(self, path: str) -> bool:
        """/api/v3, less Coinbase's /api/v3/brokerage beneath it."""
        return path.startswith(self.routes) and not path.startswith(CoinbaseVenue.routes)

    def stream_messages(self, stream: Json) -> Json:
        messages: Json = stream["binance"]["messages"]
        return messages

    def stream_faults(self, faults: Json) -> Json:
        return stream_only(faults)

    def prepare(self, sim: httpx.Client, rate_limit_per_min: int) -> None:
        """The exchange's weight limit (it has no option for it on its command line)."""
        sim.put("/faults", json={"binance_weight_per_min": rate_limit_per_min}).raise_for_status()

    def account_limit(self, rate_limit_per_min: int, accounts: int) -> int:
        """Binance counts weight per address, and the bench's accounts share one."""
        return max(1, rate_limit_per_min // accounts)

    def sender_venue(self, sim: httpx.Client) -> Json:
        prices = self.prices(sim)
        fee_bps = Decimal(str(sim.get("/faults").json()["binance_fee_bps"]))
        return {
            "symbols": {
                symbol: terms(pair, Decimal(prices[symbol])).as_json()
                for symbol, pair in PAIRS.items()
            },
            "buy_fee_rate": str(fee_bps / BPS),
        }

    def prices(self, sim: httpx.Client) -> dict[str, str]:
        """The exchange's price of each pair, or where its market starts (none traded yet)."""
        found: dict[str, str] = sim.get("/prices").json()
        return {
            symbol: found.get(ENGINE_PREFIX + symbol, str(pair.price))
            for symbol, pair in PAIRS.items()
        }

    def read_truth(self, orders: list[Json], prefix: str) -> list[TruthOrder]:
        return [
            truth_order(order["binance"])
            for order in orders
            if "binance" in order and order["binance"]["clientOrderId"].startswith(prefix)
        ]

    def weight(self, stats: Json) -> int:
        """As ordersync's adapter sends them: openOrders with its symbol (6), myTrades
        without an orderId (20)."""
        total = 0
        for route, n in self.by_route(stats).items():
            method, _, path = route.partition(" ")
            total += n * weight_of(method, path, {"symbol": "-"})
        return total


def terms(pair: Pair, price: Decimal) -> SymbolTerms:
    """Quantities on the LOT_SIZE step worth NOTIONAL_MARGIN minimum notionals and up, within
    MARKET_LOT_SIZE; limit prices on the PRICE_FILTER tick."""
    smallest = max(pair.min_qty, NOTIONAL_MARGIN * pair.min_notional / price)
    min_steps = math.ceil(smallest / pair.step)
    max_steps = min(SIZES * min_steps, int(pair.market_max_qty / pair.step))
    return SymbolTerms(step=pair.step, min_steps=min_steps, max_steps=max_steps, tick=pair.tick)


def balances() -> str:
    """``--binance-balances``: every asset of every pair, worth about FUNDING_USDT each (so
    sells have the base asset to sell and buys the quote asset to pay)."""
    assets = sorted(
        {pair.base for pair in PAIRS.values()} | {pair.quote for pair in PAIRS.values()}
    )
    return ",".join(f"{asset}:{(FUNDING_USDT / usdt_price(asset)):.0f}" for asset in assets)


def usdt_price(asset: str) -> Decimal:
    if asset == "USDT":
        return Decimal(1)
    pair = PAIRS.get(f"{asset}USDT")
    if pair is None:
        raise ValueError(f"no {asset}USDT pair to value {asset} by")
    return pair.price


def truth_order(order: Json) -> TruthOrder:
    """The ``binance`` part of an order of the truth: Binance's status as ordersync's parser
    maps it, ids as ``SYMBOL:id``, the average price from the trades (exact)."""
    symbol = order["symbol"]
    fills = tuple(
        TruthFill(broker_id(symbol, trade["id"]), Decimal(trade["qty"]), Decimal(trade["price"]))
        for trade in order["trades"]
    )
    filled = Decimal(order["executedQty"])
    traded = sum((fill.qty for fill in fills), Decimal(0))
    notional = sum((fill.qty * fill.price for fill in fills), Decimal(0))
    status = STATUS_MAP.get(order["status"])
    return TruthOrder(
        client_order_id=order["clientOrderId"],
        broker_order_id=broker_id(symbol, order["orderId"]),
        raw_status=order["status"],
        status=status,
        filled=filled,
        average_price=notional / traded if traded else None,
        created_at=datetime.fromtimestamp(order["time"] / 1000, tz=UTC),
        fills=fills,
        status_problem=None if status else f"unknown status {order['status']!r}",
    )
