"""The live trade_updates connections, fed by the engine's listener hook: who listens for
which account, what each still has to send, and the stream's figures (the machinery shared
with other venues' streams is ``brokers.paper.streaming``)."""

from __future__ import annotations

import logging
import random
import uuid

from brokers.alpaca.paper.wire import Json, trade_update_json
from brokers.paper.events import OrderEvent
from brokers.paper.faults import Faults
from brokers.paper.streaming import (
    RESET_CODE,
    SLOW_CONSUMER_CODE,
    CloseCause,
    Closing,
    Connection,
    Hub,
    Outgoing,
    StreamStats,
)

__all__ = [
    "RESET_CODE",
    "SLOW_CONSUMER_CODE",
    "TRADE_UPDATES",
    "CloseCause",
    "Closing",
    "Outgoing",
    "StreamHub",
    "StreamStats",
    "TradeUpdatesConnection",
]

logger = logging.getLogger(__name__)
TRADE_UPDATES = "trade_updates"


class TradeUpdatesConnection(Connection):
    """A connection with its codec and the streams it listens to."""

    def __init__(self, number: int, codec: str, epoch: int) -> None:
        super().__init__(number, epoch)
        self.codec = codec
        self.streams: tuple[str, ...] = ()

    @property
    def listening(self) -> bool:
        return self.account is not None and TRADE_UPDATES in self.streams

    def as_json(self) -> Json:
        return {"id": self.number, "account": self.account, "streams": list(self.streams),
                "codec": self.codec, "queued": self.queue.qsize(), "sent": self.sent}  # fmt: skip


class StreamHub(Hub[TradeUpdatesConnection]):
    """Routes each engine event to the connections authenticated as the order's account and
    listening to trade_updates; nothing is kept for clients not connected."""

    def __init__(self, faults: Faults, rng: random.Random) -> None:
        super().__init__(faults)
        self._rng = rng  # execution ids only: fault decisions use the faults' own rng

    def open(self, codec: str) -> TradeUpdatesConnection:
        return self.add(TradeUpdatesConnection(self.next_number(), codec, self.epoch))

    def on_event(self, event: OrderEvent) -> None:
        """The engine's listener: serialize the order now, before it changes again."""
        try:
            account = event.order.account
            targets = [conn for conn in self.live.values()
                       if conn.open and conn.listening and conn.account == account]  # fmt: skip
            if not targets:
                return
            message = trade_update_json(event, self._execution_id())
            for conn in targets:
                self.send_event(conn, message)
        except Exception:  # a stream bug must not break the engine in mid-advance
            logger.exception("paper exchange: streaming order %s failed", event.order.id)

    def _execution_id(self) -> str:
        """A fresh uuid4 per event, unrelated to the FILL activity id."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
