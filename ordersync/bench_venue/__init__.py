"""What ``ordersync bench`` knows of one venue of the paper exchange: the symbols and
quantities its sender may use, how the exchange is funded for it, how its ground truth reads
and which requests are its own. One module per broker, named here: a new broker is a module
and a line in ``VENUES``, not tests scattered through the benchmark.
"""

from __future__ import annotations

from core.enums import BrokerKind
from ordersync.bench_venue.alpaca import AlpacaVenue
from ordersync.bench_venue.base import BenchVenue, TruthFill, TruthOrder, VenueRefused
from ordersync.bench_venue.binance import BinanceVenue
from ordersync.bench_venue.coinbase import CoinbaseVenue
from ordersync.bench_venue.oanda import OandaVenue
from ordersync.bench_venue.tradier import TradierVenue

__all__ = ["VENUES", "BenchVenue", "TruthFill", "TruthOrder", "VenueRefused", "venue_for"]

VENUES: dict[BrokerKind, type[BenchVenue]] = {
    BrokerKind.ALPACA: AlpacaVenue,
    BrokerKind.BINANCE: BinanceVenue,
    BrokerKind.COINBASE: CoinbaseVenue,
    BrokerKind.TRADIER: TradierVenue,
    BrokerKind.OANDA: OandaVenue,
}


def venue_for(kind: BrokerKind) -> BenchVenue:
    found = VENUES.get(kind)
    if found is None:
        known = ", ".join(sorted(k.value for k in VENUES))
        raise VenueRefused(f"the benchmark has no venue for {kind.value!r} yet (it has {known})")
    return found()
