"""Fees posted apart from the fills, on SQLite and PostgreSQL: a coin fee moves the position
and comes out of the open long trades of its symbol, oldest first, closing one it leaves
flat with its outcome exact; a cash fee is kept per account; each fee is recorded once."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal, localcontext

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.enums import Intent, OrderStatus, Side
from core.reports import FeeReport
from models.fees import FeePosting, record_fee, recorded_ids
from models.ledger import Position, Trade, TradeOutcome
from models.orders import Account, Order
from models.state_machine import NOTIONAL_QUANTUM
from models.trades import TradeStatus
from tests.models.factories import at, fill
from tests.models.test_ledger import apply, count, events, one

D = Decimal
S = OrderStatus
COIN_FEE = "Coin Pair Transaction Fee (Non USD)"


def coin_fee(fee_id: str, quantity: str, price: str, second: float = 30) -> FeeReport:
    return FeeReport(broker_fee_id=fee_id, symbol="AAPL", quantity=D(quantity),
                     price=D(price), amount=D(quantity) * D(price), currency="USD",
                     posted_at=at(second), description=COIN_FEE)  # fmt: skip


def entry_of(make_order: Callable[..., Order], name: str, quantity: str) -> Order:
    return make_order(broker_order_id=f"b-{name}", client_order_id=f"c-{name}",
                      intent=Intent.ENTRY, decision_id=name, quantity=D(quantity))  # fmt: skip


def filled(session: Session, order: Order, quantity: str, price: str, second: float) -> None:
    assert order.broker_order_id is not None
    apply(session, order, S.FILLED, quantity,
          fill(f"f-{order.broker_order_id}-{second}", quantity, price,
               broker_order_id=order.broker_order_id, seconds=second), second=second)  # fmt: skip


def test_a_coin_fee_moves_the_position_and_the_oldest_open_trades(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    first, second = entry_of(make_order, "t-1", "0.01"), entry_of(make_order, "t-2", "0.02")
    filled(db_session, first, "0.01", "100", 1)
    filled(db_session, second, "0.02", "100", 2)

    posting = record_fee(db_session, account.id, coin_fee("cfee-1", "0.012", "100"), now=at(30))
    db_session.flush()

    held = one(db_session, Position, Position.account_id == account.id)
    assert held.quantity == D("0.018")
    assert held.cost_basis == D("1.8")  # 3.00 less the 0.012 given up at its cost
    assert (held.realized_pnl, held.fees) == (D("-1.2"), D("1.2"))
    old = one(db_session, Trade, Trade.id == "t-1")
    new = one(db_session, Trade, Trade.id == "t-2")
    assert (old.entry_fee_quantity, old.asset_fees) == (D("0.01"), D(1))
    assert (new.entry_fee_quantity, new.asset_fees) == (D("0.002"), D("0.2"))
    assert json.loads(posting.trades) == [["t-1", "0.01"], ["t-2", "0.002"]]
    # The first trade has nothing left but no exit either: open, no outcome.
    assert old.status is TradeStatus.OPEN
    assert count(db_session, TradeOutcome) == 0


def test_a_trade_left_flat_by_its_fee_closes_with_the_fee_in_its_outcome(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    entry = entry_of(make_order, "t-1", "0.01")
    filled(db_session, entry, "0.01", "60000", 1)
    exit_ = make_order(broker_order_id="b-exit", client_order_id="c-exit", intent=Intent.EXIT,
                       trade_id="t-1", side=Side.SELL, quantity=D("0.009975"))  # fmt: skip
    filled(db_session, exit_, "0.009975", "61000", 5)
    assert one(db_session, Trade, Trade.id == "t-1").status is TradeStatus.OPEN

    record_fee(db_session, account.id, coin_fee("cfee-1", "0.000025", "60000"), now=at(30))
    db_session.flush()

    trade = one(db_session, Trade, Trade.id == "t-1")
    outcome = one(db_session, TradeOutcome, TradeOutcome.trade_id == "t-1")
    assert trade.status is TradeStatus.CLOSED
    assert (outcome.quantity, outcome.fees) == (D("0.009975"), D("1.5"))
    assert outcome.realized_pnl == D("8.475")  # sold 608.475, paid 600
    assert events(db_session, "t-1") == ["TRADE_OPENED", "TRADE_CLOSED"]
    held = one(db_session, Position, Position.account_id == account.id)
    assert held.quantity == 0
    assert held.realized_pnl == outcome.realized_pnl  # position and trade agree


def test_a_cash_fee_is_kept_for_the_account_and_moves_nothing(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    filled(db_session, entry_of(make_order, "t-1", "1"), "1", "100", 1)
    cash = FeeReport(broker_fee_id="cfee-usd", symbol=None, quantity=None, price=None,
                     amount=D("0.25"), currency="USD", posted_at=at(40))  # fmt: skip
    record_fee(db_session, account.id, cash, now=at(41))
    db_session.flush()
    stored = one(db_session, FeePosting, FeePosting.broker_fee_id == "cfee-usd")
    assert (stored.symbol, stored.amount, stored.trades) == (None, D("0.25"), "[]")
    held = one(db_session, Position, Position.account_id == account.id)
    assert (held.quantity, held.fees) == (D(1), D(0))
    assert recorded_ids(db_session, account.id, at(40)) == {"cfee-usd"}
    assert recorded_ids(db_session, account.id, at(41)) == set()


def test_a_fee_is_recorded_once(db_session: Session, account: Account) -> None:
    record_fee(db_session, account.id, coin_fee("cfee-1", "0.1", "10"), now=at(30))
    db_session.flush()
    with pytest.raises(IntegrityError), db_session.begin_nested():  # noqa: PT012
        record_fee(db_session, account.id, coin_fee("cfee-1", "0.1", "10"), now=at(31))
        db_session.flush()
    assert count(db_session, FeePosting) == 1
    assert one(db_session, Position, Position.account_id == account.id).quantity == D("-0.1")


def test_a_fee_taken_from_the_fills_quantity_moves_its_own_trade_first(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    """Binance keeps a buy's commission out of the asset bought: the fill's fee_quantity is
    posted once with the fill, from that order's trade (not the oldest open one)."""
    older = entry_of(make_order, "t-old", "1")
    filled(db_session, older, "1", "100", 1)
    entry = entry_of(make_order, "t-new", "2")
    assert entry.broker_order_id is not None
    report = replace(fill("f-new", "2", "100", broker_order_id=entry.broker_order_id,
                          seconds=2), fee_quantity=D("0.002"))  # fmt: skip
    apply(db_session, entry, S.FILLED, "2", report, second=2)
    apply(db_session, entry, S.FILLED, "2", report, second=3)  # the same fill again
    db_session.flush()

    posting = one(db_session, FeePosting, FeePosting.broker_fee_id == "f-new:fee")
    assert (posting.symbol, posting.quantity, posting.amount) == ("AAPL", D("0.002"), D("0.2"))
    assert json.loads(posting.trades) == [["t-new", "0.002"]]
    assert count(db_session, FeePosting) == 1
    held = one(db_session, Position, Position.account_id == account.id)
    assert held.quantity == D("2.998")
    new = one(db_session, Trade, Trade.id == "t-new")
    assert (new.entry_fee_quantity, new.asset_fees) == (D("0.002"), D("0.2"))
    assert one(db_session, Trade, Trade.id == "t-old").entry_fee_quantity == 0


def test_a_fee_in_a_third_asset_is_kept_for_the_account_and_is_not_money(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    entry = entry_of(make_order, "t-1", "1")
    assert entry.broker_order_id is not None
    report = replace(fill("f-bnb", "1", "100", broker_order_id=entry.broker_order_id),
                     fee_asset="BNB", fee_asset_amount=D("0.00025"))  # fmt: skip
    apply(db_session, entry, S.FILLED, "1", report, second=1)
    db_session.flush()

    posting = one(db_session, FeePosting, FeePosting.broker_fee_id == "f-bnb:fee:BNB")
    assert (posting.symbol, posting.amount, posting.currency) == (None, D("0.00025"), "BNB")
    held = one(db_session, Position, Position.account_id == account.id)
    assert (held.quantity, held.fees) == (D(1), D(0))


def test_a_coin_fee_is_exact_whatever_the_callers_decimal_context(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    """The share of a fee the second trade gives up keeps every digit, even when the
    thread's context would round it to a few."""
    first, second = entry_of(make_order, "t-1", "0.01"), entry_of(make_order, "t-2", "0.02")
    filled(db_session, first, "0.01", "98765.4321", 1)
    filled(db_session, second, "0.02", "98765.4321", 2)
    fee = coin_fee("cfee-x", "0.0123456789", "98765.4321")
    with localcontext() as careless:
        careless.prec = 6
        record_fee(db_session, account.id, fee, now=at(30))
    db_session.flush()
    with localcontext() as wide:
        wide.prec = 60
        share = (fee.amount * D("0.0023456789") / D("0.0123456789")).quantize(NOTIONAL_QUANTUM)
    assert one(db_session, Trade, Trade.id == "t-2").asset_fees == share
