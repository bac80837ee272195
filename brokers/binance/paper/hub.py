"""The WebSocket API connections and their user data stream subscriptions, fed by the
engine's listener hook: each change to a Binance order becomes an ``executionReport`` (and
the ``outboundAccountPosition`` of the balances it moved) for every subscription to its
account, through the stream faults (``brokers.paper.streaming``).

The hub listens after the venue (``BinanceVenue.on_event``), so the order's ids, trades and
wallet are current when an event is serialized.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from itertools import count

from brokers.binance.paper.venue import PREFIX, BinanceOrder, BinanceVenue, Trade
from brokers.binance.paper.wire import Json, account_position_json, execution_report_json
from brokers.paper.events import OrderEvent, TradeEvent
from brokers.paper.faults import Faults
from brokers.paper.streaming import Connection, Hub

logger = logging.getLogger(__name__)
# The engine's events Binance reports, as execution types; the others (Alpaca's rare
# statuses, pending cancels and replaces) have no executionReport. A cancel reads
# CANCELED or EXPIRED as the order's status says (an IOC remainder expires).
EXECUTIONS = {
    TradeEvent.NEW: "NEW",
    TradeEvent.PARTIAL_FILL: "TRADE",
    TradeEvent.FILL: "TRADE",
    TradeEvent.CANCELED: "CANCELED",
    TradeEvent.EXPIRED: "EXPIRED",
    TradeEvent.REJECTED: "REJECTED",
}


class ApiConnection(Connection):
    """A WebSocket API connection and its subscriptions (subscriptionId -> engine account);
    ids count up from 0 over the connection's life."""

    def __init__(self, number: int, epoch: int) -> None:
        super().__init__(number, epoch)
        self.subscriptions: dict[int, str] = {}
        self.subscription_ids = count()

    def subscribe(self, account: str) -> int:
        sid = next(self.subscription_ids)
        self.subscriptions[sid] = account
        return sid

    def as_json(self) -> Json:
        return {**super().as_json(),
                "subscriptions": {str(sid): key.removeprefix(PREFIX)
                                  for sid, key in self.subscriptions.items()}}  # fmt: skip


class UserDataHub(Hub[ApiConnection]):
    def __init__(self, faults: Faults, venue: BinanceVenue) -> None:
        super().__init__(faults)
        self.venue = venue
        self._execution_ids: defaultdict[str, count[int]] = defaultdict(lambda: count(1))

    def open(self) -> ApiConnection:
        return self.add(ApiConnection(self.next_number(), self.epoch))

    def reset(self) -> None:
        super().reset()
        self._execution_ids.clear()

    def on_event(self, event: OrderEvent) -> None:
        """The engine's listener: serialize the order now, before it changes again."""
        try:
            placed = self.venue.by_engine_id.get(event.order.id)
            execution = EXECUTIONS.get(event.event)
            if placed is None or execution is None:
                return  # not a Binance order, or nothing Binance reports
            if execution == "CANCELED":
                execution = placed.status  # CANCELED, or EXPIRED (not the client's doing)
            execution_id = next(self._execution_ids[placed.pair.symbol])
            targets = list(self._subscribers(event.order.account))
            if not targets:
                return
            report = execution_report_json(placed, execution, event.at_us, execution_id,
                                           self._trade(placed, event))  # fmt: skip
            position = None if execution == "REJECTED" else self._position(placed, event)
            for conn, sid in targets:
                self.send_event(conn, {"subscriptionId": sid, "event": report})
                if position is not None:
                    self.send_event(conn, {"subscriptionId": sid, "event": position})
        except Exception:  # a stream bug must not break the engine in mid-advance
            logger.exception("paper exchange: streaming Binance order %s failed", event.order.id)

    def terminated(self, conn: ApiConnection, sid: int, now_ms: int) -> Json:
        """``eventStreamTerminated``: the subscription is gone (unsubscribed)."""
        del conn.subscriptions[sid]
        return {"subscriptionId": sid, "event": {"e": "eventStreamTerminated", "E": now_ms}}

    def _subscribers(self, account: str) -> Iterator[tuple[ApiConnection, int]]:
        for conn in self.live.values():
            if conn.open:
                yield from ((conn, sid) for sid, key in conn.subscriptions.items()
                            if key == account)  # fmt: skip

    @staticmethod
    def _trade(placed: BinanceOrder, event: OrderEvent) -> Trade | None:
        """The venue's trade of the event's fill (the venue heard of it first)."""
        if event.fill is None:
            return None
        found = next((t for t in reversed(placed.trades) if t.fill is event.fill), None)
        if found is None:
            raise LookupError(f"order {placed.pair.symbol}:{placed.order_id}: no trade for "
                              f"fill {event.fill.id}")  # fmt: skip
        return found

    def _position(self, placed: BinanceOrder, event: OrderEvent) -> Json:
        account = self.venue.account(placed.order.account.removeprefix(PREFIX))
        assets = (placed.pair.base, placed.pair.quote)
        locked = account.locked(self.venue.price_of)
        return account_position_json(account, assets, locked, event.at_us)
