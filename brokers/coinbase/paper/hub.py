"""The ``user`` channel's connections, fed by the engine's listener hook: each change to a
Coinbase order becomes an ``update`` carrying the order as it stands, for every connection
subscribed to its key, through the stream faults (``brokers.paper.streaming``).

Every message a connection gets is numbered by one ``sequence_num`` counter of its own,
across channels, taken when the message is queued: a message the faults drop leaves a gap
the client sees, as a message Coinbase lost would. The hub listens after the venue
(``CoinbaseVenue.on_event``), so an order's fills and fees are current when serialized.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from itertools import count

from brokers.coinbase.paper.venue import PREFIX, CoinbaseOrder, CoinbaseVenue
from brokers.coinbase.paper.wire import Json, nanos, user_order_json
from brokers.paper.events import OrderEvent, TradeEvent
from brokers.paper.faults import Faults
from brokers.paper.streaming import Connection, Hub, Outgoing

logger = logging.getLogger(__name__)
SNAPSHOT_BATCH = 50  # open orders per snapshot message (Coinbase's docs)
# The engine's events that change what the channel shows of an order; the others (pending
# cancels and replaces, refused cancels) leave it as it was.
UPDATES = frozenset(
    {
        TradeEvent.NEW,
        TradeEvent.PARTIAL_FILL,
        TradeEvent.FILL,
        TradeEvent.CANCELED,
        TradeEvent.EXPIRED,
        TradeEvent.DONE_FOR_DAY,
        TradeEvent.REJECTED,
    }
)


class UserConnection(Connection):
    """One connection to the user channel endpoint: its channels, the key its ``user``
    subscription authenticated (``account``) and the products it asked for (None: all)."""

    def __init__(self, number: int, epoch: int) -> None:
        super().__init__(number, epoch)
        self.user = False
        self.heartbeats = False
        self.products: frozenset[str] | None = None
        self.sequence = count()
        self.beats = count(1)

    def subscriptions(self) -> dict[str, list[str]]:
        """What the ``subscriptions`` message lists: every channel subscribed now [U: the
        list Coinbase gives ``user`` is not documented; here, the products asked for]."""
        found: dict[str, list[str]] = {}
        if self.user:
            found["user"] = sorted(self.products or ())
        if self.heartbeats:
            found["heartbeats"] = ["heartbeats"]
        return found

    def as_json(self) -> Json:
        return {**super().as_json(), "channels": sorted(self.subscriptions())}


class UserHub(Hub[UserConnection]):
    def __init__(self, faults: Faults, venue: CoinbaseVenue) -> None:
        super().__init__(faults)
        self.venue = venue

    def open(self) -> UserConnection:
        return self.add(UserConnection(self.next_number(), self.epoch))

    @staticmethod
    def envelope(conn: UserConnection, channel: str, at_us: int, events: list[Json]) -> Json:
        """A message as Coinbase frames it, numbered now [production sends no ``client_id``:
        Coinbase's AsyncAPI spec, checked against the live feed]."""
        return {"channel": channel, "timestamp": nanos(at_us),
                "sequence_num": next(conn.sequence), "events": events}  # fmt: skip

    def heartbeat(self, conn: UserConnection, now: datetime, at_us: int) -> Json:
        """The heartbeats channel's message: the time as Coinbase's Go server prints it and
        a counter per connection."""
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f000 +0000 UTC")
        beat = {"current_time": stamp, "heartbeat_counter": next(conn.beats)}
        return self.envelope(conn, "heartbeats", at_us, [beat])

    def snapshot(self, conn: UserConnection, at_us: int) -> Iterator[Json]:
        """The key's open orders (those of the products asked for) in batches of 50; one
        empty snapshot when there are none."""
        assert conn.account is not None
        account = self.venue.account(conn.account)
        open_orders = [p for p in account.known() if p.order.is_open and self._wanted(conn, p)]
        for start in range(0, max(1, len(open_orders)), SNAPSHOT_BATCH):
            batch = open_orders[start : start + SNAPSHOT_BATCH]
            orders = [self._order_json(placed) for placed in batch]
            positions: Json = {"perpetual_futures_positions": [],
                               "expiring_futures_positions": []}  # fmt: skip
            event: Json = {"type": "snapshot", "orders": orders, "positions": positions}
            yield self.envelope(conn, "user", at_us, [event])

    def on_event(self, event: OrderEvent) -> None:
        """The engine's listener: serialize the order now, before it changes again."""
        try:
            placed = self.venue.by_order_id.get(event.order.id)
            if placed is None or event.event not in UPDATES:
                return  # not a Coinbase order, or nothing the channel shows
            targets = list(self._subscribers(placed))
            if not targets:
                return
            order = self._order_json(placed)
            for conn in targets:
                message = self.envelope(conn, "user", event.at_us,
                                        [{"type": "update", "orders": [order]}])  # fmt: skip
                self.send_event(conn, message)
        except Exception:  # a stream bug must not break the engine in mid-advance
            logger.exception("paper exchange: streaming Coinbase order %s failed", event.order.id)

    def queue(self, conn: UserConnection, message: Json) -> None:
        """A message outside the stream faults (acknowledgements, snapshots, heartbeats)."""
        self.send(conn, Outgoing(message))

    def _order_json(self, placed: CoinbaseOrder) -> Json:
        key_name = placed.order.account.removeprefix(PREFIX)
        return user_order_json(placed, key_name, self.venue.hold_of(placed))

    @staticmethod
    def _wanted(conn: UserConnection, placed: CoinbaseOrder) -> bool:
        return conn.products is None or placed.product.product_id in conn.products

    def _subscribers(self, placed: CoinbaseOrder) -> Iterator[UserConnection]:
        key_name = placed.order.account.removeprefix(PREFIX)
        for conn in self.live.values():
            if conn.open and conn.user and conn.account == key_name and self._wanted(conn, placed):
                yield conn
