"""The transaction stream's connections, fed by each account's transactions as they are made
(``OandaVenue.listeners``), through the stream faults (``brokers.paper.streaming``).

A transaction is serialized when it is made, in the time format its connection asked for.
One the faults drop is never sent: the client sees the jump in transaction ids (and the
heartbeat's ``lastTransactionID`` ahead of what it read) that a line lost on the way would
leave. Heartbeats go outside the faults, behind whatever is queued before them.
"""

from __future__ import annotations

import logging

from brokers.oanda.paper.venue import Json, OandaAccount, Transaction
from brokers.oanda.paper.wire import Stamp, transaction_json
from brokers.paper.streaming import Connection, Hub, Outgoing

logger = logging.getLogger(__name__)


class TransactionConnection(Connection):
    """One ``/transactions/stream`` response: its account and its time format."""

    def __init__(self, number: int, epoch: int, account: str, stamp: Stamp) -> None:
        super().__init__(number, epoch)
        self.account = account
        self.stamp = stamp


class TransactionHub(Hub[TransactionConnection]):
    def open(self, account: str, stamp: Stamp) -> TransactionConnection:
        self.stats.authorized += 1
        return self.add(TransactionConnection(self.next_number(), self.epoch, account, stamp))

    def on_transaction(self, account: OandaAccount, made: Transaction) -> None:
        """The venue's listener: the transaction to every connection of its account."""
        try:
            for conn in list(self.live.values()):
                if conn.open and conn.account == account.id:
                    self.send_event(conn, transaction_json(made, conn.stamp))
        except Exception:  # a stream bug must not break the venue in mid-transaction
            logger.exception("paper exchange: streaming OANDA transaction %d failed", made.id)

    def heartbeat(self, conn: TransactionConnection, account: OandaAccount, now_us: int) -> None:
        message: Json = {"type": "HEARTBEAT", "lastTransactionID": str(account.last_id),
                         "time": conn.stamp(now_us)}  # fmt: skip
        self.send(conn, Outgoing(message))
