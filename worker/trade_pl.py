"""The deep run's trade P&L check: trades whose outcome was recorded in the lookback,
against the broker's own trades (where the adapter ``reports_trades``). A difference is an
alert for an operator; a trade the broker matched with other fills is listed, not alerted.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import select

from brokers.errors import BrokerError
from core.enums import Intent
from models.ledger import TradeOutcome
from models.orders import Fill, Order
from models.trade_pl import ClosedTrade, PnlCheck, PnlVerdict, compare_pnl
from worker.alerts import Alert, AlertKind, send_alert
from worker.context import AccountInfo, WorkerContext

logger = logging.getLogger(__name__)
CHUNK = 500  # trade ids per query


class PnlStats(Protocol):
    """What the check writes into the run's stats."""

    pages: int
    malformed: int
    yielded: str | None
    pnl_compared: int
    pnl_mismatches: list[str]
    pnl_not_compared: list[str]


def compare_trade_pnl(ctx: WorkerContext, account: AccountInfo, since: datetime,
                      stats: PnlStats) -> None:  # fmt: skip
    adapter = ctx.adapter(account)
    if not adapter.reports_trades:
        return
    ours = _closed_trades(ctx, account.id, since)
    if not ours:
        return
    try:
        page = adapter.get_trades(sorted({i for t in ours for i in t.entry_fill_ids}))
    except BrokerError as error:
        stats.yielded = f"trade P&L not compared: {error}"
        return
    stats.pages += 1
    unreadable = set()
    for item in page.malformed:
        stats.malformed += 1
        logger.error("unreadable trade in the broker's answer: %s", item.reason)
        if isinstance(item.raw, dict) and isinstance(item.raw.get("id"), str):
            unreadable.add(item.raw["id"])
    theirs = {t.trade_id: t for t in page.items}
    verdicts = [compare_pnl(trade, theirs, unreadable) for trade in ours]
    _report(ctx, account, verdicts, stats)


def _report(ctx: WorkerContext, account: AccountInfo, verdicts: Sequence[PnlVerdict],
            stats: PnlStats) -> None:  # fmt: skip
    compared = [v for v in verdicts if v.check in (PnlCheck.MATCH, PnlCheck.MISMATCH)]
    mismatched = [v for v in compared if v.check is PnlCheck.MISMATCH]
    stats.pnl_compared = len(compared)
    stats.pnl_mismatches = [v.line() for v in mismatched]
    stats.pnl_not_compared = [v.line() for v in verdicts if v not in compared]
    for line in stats.pnl_not_compared:
        logger.info("account %s: P&L not compared, %s", account.name, line)
    if mismatched:
        send_alert(ctx.redis, ctx.settings, Alert(
            AlertKind.PNL_MISMATCH, f"pnl:{account.name}", len(mismatched),
            tuple(v.trade_id for v in mismatched), ctx.now(),
            detail="; ".join(stats.pnl_mismatches)[:1000],
        ))  # fmt: skip


def _closed_trades(ctx: WorkerContext, account_id: str, since: datetime) -> list[ClosedTrade]:
    """Trades whose outcome was recorded since ``since``, with their orders' fill ids."""
    with ctx.sessions() as session:
        outcomes = session.execute(
            select(TradeOutcome.trade_id, TradeOutcome.symbol, TradeOutcome.side,
                   TradeOutcome.quantity, TradeOutcome.entry_notional,
                   TradeOutcome.exit_notional)
            .where(TradeOutcome.account_id == account_id, TradeOutcome.closed_at >= since)
            .order_by(TradeOutcome.closed_at, TradeOutcome.trade_id)
        ).all()  # fmt: skip
        fills: dict[tuple[str | None, Intent | None], list[str]] = defaultdict(list)
        ids = [row[0] for row in outcomes]
        for start in range(0, len(ids), CHUNK):
            rows = session.execute(
                select(Order.trade_id, Order.intent, Fill.broker_fill_id)
                .join(Fill, Fill.order_id == Order.id)
                .where(Order.account_id == account_id, Order.trade_id.in_(ids[start:start + CHUNK]),
                       Order.intent.in_((Intent.ENTRY, Intent.EXIT)))
                .order_by(Fill.filled_at, Fill.id)
            )  # fmt: skip
            for trade_id, intent, fill_id in rows:
                fills[(trade_id, intent)].append(fill_id)
    return [
        ClosedTrade(trade_id, symbol, side, quantity, entry, exit_,
                    tuple(fills[(trade_id, Intent.ENTRY)]),
                    frozenset(fills[(trade_id, Intent.EXIT)]))
        for trade_id, symbol, side, quantity, entry, exit_ in outcomes
    ]  # fmt: skip
