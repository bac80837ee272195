"""The benchmark's view of one venue (``BenchVenue``) and the broker-neutral truth it reads
the exchange's ground truth into."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import httpx

from core.enums import BrokerKind, OrderStatus

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TruthFill:
    id: str  # as ordersync records it (the broker fill id)
    qty: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class TruthOrder:
    """One order as the exchange holds it, in ordersync's terms."""

    client_order_id: str
    broker_order_id: str
    raw_status: str
    status: OrderStatus | None  # None: a status the broker's parser cannot read
    filled: Decimal
    average_price: Decimal | None
    created_at: datetime
    fills: tuple[TruthFill, ...]
    status_problem: str | None = None  # why ``status`` is None
    # Where the venue's positions are compared (``BenchVenue.positions``): its symbol as
    # ordersync records it, and what its fills moved the position by (sells negative).
    symbol: str = ""
    signed_filled: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class SymbolTerms:
    """What the sender may trade in one symbol: quantities ``step * k`` for k in
    ``min_steps..max_steps``, limit prices on ``tick``."""

    step: Decimal
    min_steps: int
    max_steps: int
    tick: Decimal

    def as_json(self) -> Json:
        return {"step": str(self.step), "min_steps": self.min_steps,
                "max_steps": self.max_steps, "tick": str(self.tick)}  # fmt: skip


# The sections ``/_sim/truth`` adds to an order placed through a dialect other than Alpaca's.
DIALECTS = ("binance", "coinbase", "tradier", "oanda")


class VenueRefused(ValueError):
    """The benchmark cannot do this at this venue (yet); the message says what."""


class BenchVenue(ABC):
    kind: ClassVar[BrokerKind]
    # The venue's documented request limit per minute (in request weight where it weighs).
    rate_limit_per_min: ClassVar[int]
    streams: ClassVar[bool] = False  # ordersync has a stream for it (``--stream``)
    sweeps: ClassVar[bool] = False  # the sweep benchmark can seed its orders
    # The venue lists no executions: ordersync derives fills from an order's cumulative
    # figures, so they are compared per order (quantity, average), not by fill id.
    fills_derived: ClassVar[bool] = False
    # The run's positions are compared: what ordersync's ledger moved by, per symbol, with
    # what the exchange's fills of the run's orders moved them by (``TruthOrder.symbol``).
    positions: ClassVar[bool] = False
    # ``--faults``: what the exchange does to this venue's routes (PUT /_sim/faults).
    exchange_faults: ClassVar[Json]
    routes: ClassVar[str]  # what the paths of the venue's routes start with ("/api/v3/")

    @property
    def name(self) -> str:
        return self.kind.value

    def sim_args(self) -> tuple[str, ...]:
        """Extra ``ordersync sim`` arguments (funding) for an exchange the bench starts."""
        return ()

    def prepare(self, sim: httpx.Client, rate_limit_per_min: int) -> None:  # noqa: B027
        """After the exchange's reset: set what the run needs that its command line cannot."""

    def account_limit(self, rate_limit_per_min: int, accounts: int) -> int:
        """Each ordersync account's budget per minute when the run's limit is this."""
        return rate_limit_per_min

    @abstractmethod
    def sender_venue(self, sim: httpx.Client) -> Json:
        """The sender's ``--venue``: ``{"symbols": {name: SymbolTerms}, "buy_fee_rate": r}``
        (``buy_fee_rate``: the part of a buy the venue keeps in the asset bought)."""

    @abstractmethod
    def prices(self, sim: httpx.Client) -> dict[str, str]:
        """The sender's reference prices by its symbol names."""

    @abstractmethod
    def read_truth(self, orders: list[Json], prefix: str) -> list[TruthOrder]:
        """The run's orders (client order id starting with ``prefix``) of ``GET /_sim/truth``
        that were placed through this venue's routes."""

    def by_route(self, stats: Json) -> dict[str, int]:
        """``GET /_sim/requests``'s counts of this venue's routes ("METHOD /path")."""
        counts: dict[str, int] = stats["by_route"]
        return {route: n for route, n in counts.items()
                if self.owns(route.partition(" ")[2])}  # fmt: skip

    def owns(self, path: str) -> bool:
        """Whether a request to ``path`` went to this venue's routes."""
        return path.startswith(self.routes)

    def requests(self, stats: Json) -> int:
        """This venue's requests in ``GET /_sim/requests``'s counts."""
        return sum(self.by_route(stats).values())

    def weight(self, stats: Json) -> int | None:
        """The request weight of those requests, where the venue weighs them."""
        return None

    def stream_messages(self, stream: Json) -> Json:
        """This venue's figures in ``GET /_sim/stream``: messages sent, dropped, ..."""
        messages: Json = stream["messages"]
        return messages

    def stream_faults(self, faults: Json) -> Json:
        """Of ``--stream-faults``, what this venue's stream takes (its wire's own statuses)."""
        return faults


def stream_only(faults: Json) -> Json:
    """The stream's own faults: Alpaca's rare statuses have no form on another venue's wire."""
    return {key: value for key, value in faults.items() if key.startswith("stream_")}
