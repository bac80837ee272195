"""Fees a broker posts apart from the fills (Alpaca's crypto CFEE), synced by deep
reconciliation: the window is listed again every run and only ids not recorded yet are
written, since a fee posted late may sort before a page token already passed.

The broker takes such a fee at the fill but posts it later (Alpaca: at the end of the day),
so until then its position in the coin is smaller than ours by at most the fee rate of what
we bought: such a difference is "fees to post", not a mismatch, while the fills that explain
it are inside the lookback window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from brokers.registry import fees_in_asset
from core.enums import Side
from core.reports import FeeReport
from models.fees import record_fee, recorded_ids
from models.orders import Fill, Order
from worker.context import AccountInfo, WorkerContext

logger = logging.getLogger(__name__)
ATTEMPTS = 5
BPS = Decimal(10_000)
# A coin fee is rounded up to this (Alpaca: 1e-9): one such step per fill on top of the rate.
FEE_ROUNDING = Decimal("1e-9")
# Fees listed again from this far before the window, so one dated by its day is seen.
_DATED_SLACK = timedelta(days=1)


@dataclass
class FeeSync:
    """What one sync did."""

    pages: int = 0
    listed: int = 0
    recorded: int = 0
    malformed: int = 0
    problems: list[str] = field(default_factory=list)


def sync_fees(
    ctx: WorkerContext, account: AccountInfo, since: datetime, *,
    keep_alive: Callable[[], None],
) -> FeeSync:  # fmt: skip
    """Record the fees posted since ``since`` that are not recorded yet; a broker error
    propagates (the caller yields the run), a malformed item is logged and skipped."""
    adapter = ctx.adapter(account)
    done = FeeSync()
    if not adapter.lists_fees:
        return done
    with ctx.sessions() as session:
        known = recorded_ids(session, account.id, since - _DATED_SLACK)
    token: str | None = None
    while True:
        page = adapter.list_fees(after=since if token is None else None, page_token=token)
        done.pages += 1
        keep_alive()
        for item in page.malformed:
            done.malformed += 1
            logger.error("account %s: unreadable fee in the broker's listing: %s",
                         account.name, item.reason)  # fmt: skip
        done.listed += len(page.items)
        for fee in page.items:
            if fee.broker_fee_id not in known and _record(ctx, account, fee, done):
                known.add(fee.broker_fee_id)
                done.recorded += 1
        token = page.next_token
        if token is None:
            return done


def _record(ctx: WorkerContext, account: AccountInfo, fee: FeeReport, done: FeeSync) -> bool:
    """One fee in its own transaction, retried on a concurrent writer; False when it was
    recorded meanwhile or cannot be."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with ctx.sessions() as session, session.begin():
                record_fee(session, account.id, fee, now=ctx.now())
            logger.info("account %s: fee %s recorded (%s %s of %s)", account.name,
                        fee.broker_fee_id, fee.quantity or fee.amount,
                        "in" if fee.symbol else fee.currency, fee.symbol or "cash")  # fmt: skip
            return True
        except IntegrityError:
            with ctx.sessions() as session:
                if fee.broker_fee_id in recorded_ids(session, account.id, fee.posted_at):
                    return False
            problem = f"fee {fee.broker_fee_id} could not be recorded: a constraint refused it"
            break
        except (StaleDataError, OperationalError) as error:
            problem = f"fee {fee.broker_fee_id} not recorded after {attempt} attempts: {error}"
    logger.error("account %s: %s", account.name, problem)
    done.problems.append(problem)
    return False


def unposted_allowance(
    ctx: WorkerContext, account: AccountInfo, symbols: Collection[str], since: datetime
) -> dict[str, Decimal]:
    """Per symbol, how much smaller than ours the broker's position may be from fees taken
    at our buys since ``since`` and not posted yet: the highest fee rate of their quantity,
    plus one rounding step a fill."""
    wanted = [s for s in symbols if fees_in_asset(account.broker, s)]
    if not wanted or not ctx.adapter(account).lists_fees:
        return {}
    rate = Decimal(ctx.settings.asset_fee_max_bps) / BPS
    with ctx.sessions() as session:
        rows = session.execute(
            select(Order.symbol, func.sum(Fill.quantity), func.count(Fill.id))
            .join(Fill, Fill.order_id == Order.id)
            .where(Order.account_id == account.id, Order.symbol.in_(wanted),
                   Order.side == Side.BUY, Fill.filled_at >= since)
            .group_by(Order.symbol)
        ).all()  # fmt: skip
    return {symbol: Decimal(bought) * rate + FEE_ROUNDING * count
            for symbol, bought, count in rows}  # fmt: skip
