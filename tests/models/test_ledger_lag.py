"""Our own lag behind the broker: an exit placed, or filled, before its entry's fills are
recorded (the trading service saw them at the broker first), and an order adopted before its
``track_order`` named its intent. SQLite and PostgreSQL, through the real repository path."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import Intent, OrderOrigin, OrderStatus, ReportSource, Side
from models.ledger import ExitRefused, Position, Trade, TradeOutcome, annotate_intent, check_exit
from models.orders import Account, Order, OrderEvent
from models.repository import apply_to_order
from models.trades import TradeStatus
from tests.models.factories import at
from tests.models.test_ledger import apply, count, entry_fill, events, exit_fill, one

D = Decimal
S = OrderStatus
EXIT_OF: dict[str, Any] = {"trade_id": "d-1", "symbol": "AAPL", "side": Side.SELL}


def entry_order(make_order: Callable[..., Order], **extra: Any) -> Order:
    """An entry whose trade will be named by its decision id; nothing recorded yet."""
    fields: dict[str, Any] = {"broker_order_id": "b-entry", "intent": Intent.ENTRY,
                              "decision_id": "d-1", "quantity": D(100),
                              "requested_price": D("10.00")}  # fmt: skip
    return make_order(**{**fields, **extra})


def exit_order(make_order: Callable[..., Order], **extra: Any) -> Order:
    fields: dict[str, Any] = {"broker_order_id": "b-exit", "intent": Intent.EXIT,
                              "trade_id": "d-1", "side": Side.SELL, "quantity": D(100),
                              "requested_price": D(11)}  # fmt: skip
    return make_order(**{**fields, **extra})


def kinds(session: Session, order: Order) -> list[str]:
    query = select(OrderEvent.kind).where(OrderEvent.order_id == order.id)
    return list(session.scalars(query.order_by(OrderEvent.id)))


def mismatches(session: Session) -> list[str | None]:
    query = select(OrderEvent.detail).where(OrderEvent.kind == "trade_mismatch")
    return list(session.scalars(query))


# --- placement: an exit is judged against what its entries can fill ------------------------


def test_an_exit_placed_before_its_entry_fills_are_recorded_is_judged_against_the_entry(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    entry = entry_order(make_order)
    check_exit(db_session, account_id=account.id, quantity=D(100), **EXIT_OF)
    working = exit_order(make_order, quantity=D(60))
    with pytest.raises(ExitRefused) as refused:
        check_exit(db_session, account_id=account.id, quantity=D(41), **EXIT_OF)
    assert str(refused.value) == (
        "exit refused: 41 AAPL exceeds what trade 'd-1' has open: 100 open (100 of it still "
        f"to fill by entries ['{entry.id}']), 60 held by working exits ['{working.id}'], "
        "40 available"
    )
    assert refused.value.trade_id == "d-1"
    check_exit(db_session, account_id=account.id, quantity=D(40), **EXIT_OF)


def test_an_ended_entry_counts_what_the_broker_says_it_filled(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    """Canceled after filling 70, none of it recorded yet."""
    entry_order(make_order, status=S.CANCELED, broker_filled_quantity=D(70))
    check_exit(db_session, account_id=account.id, quantity=D(70), **EXIT_OF)
    with pytest.raises(ExitRefused, match=r"71 AAPL exceeds .*: 70 open .* 70 available"):
        check_exit(db_session, account_id=account.id, quantity=D(71), **EXIT_OF)


def test_an_open_trade_and_its_working_scale_in_add_up(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    first = entry_order(make_order, trade_id="d-1", quantity=D(10))
    apply(db_session, first, S.FILLED, "10", entry_fill("e1", "10", "10"), second=1)
    scale_in = entry_order(make_order, broker_order_id="b-entry-2", trade_id="d-1",
                           decision_id=None, quantity=D(5))  # fmt: skip
    check_exit(db_session, account_id=account.id, quantity=D(15), **EXIT_OF)
    with pytest.raises(ExitRefused, match=(
        rf"16 AAPL exceeds what trade 'd-1' has open: 15 open \(5 of it still to fill by "
        rf"entries \['{scale_in.id}'\]\), 15 available"
    )):  # fmt: skip
        check_exit(db_session, account_id=account.id, quantity=D(16), **EXIT_OF)


@pytest.mark.parametrize("status", [S.REJECTED, S.CANCELED, S.EXPIRED])
def test_an_entry_that_ended_unfilled_gives_no_trade_to_exit(
    db_session: Session, account: Account, make_order: Callable[..., Order], status: OrderStatus
) -> None:
    entry_order(make_order, status=status)
    with pytest.raises(ExitRefused, match="exit refused: no trade 'd-1' in this account"):
        check_exit(db_session, account_id=account.id, quantity=D(1), **EXIT_OF)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"symbol": "MSFT"}, "trade 'd-1' is in AAPL, not MSFT"),
        ({"side": Side.BUY}, "trade 'd-1' is long AAPL: its exit must sell, not buy"),
    ],
)
def test_an_exit_that_does_not_match_its_working_entry_is_refused(
    db_session: Session, account: Account, make_order: Callable[..., Order],
    change: dict[str, Any], reason: str,
) -> None:  # fmt: skip
    entry_order(make_order)
    with pytest.raises(ExitRefused, match=f"exit refused: {reason}"):
        check_exit(db_session, account_id=account.id, quantity=D(1), **{**EXIT_OF, **change})


# --- fills: an exit's fills recorded first reach the trade with the entry's ---------------


def test_exit_fills_recorded_before_the_entry_fills_reach_the_trade_when_they_come(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    entry, exit_ = entry_order(make_order), exit_order(make_order)
    apply(db_session, exit_, S.PARTIALLY_FILLED, "40", exit_fill("x1", "40", "11.00"),
          second=60, source=ReportSource.SWEEP)  # fmt: skip
    apply(db_session, exit_, S.FILLED, "100", exit_fill("x2", "60", "10.95", second=90.5),
          second=91)  # fmt: skip
    assert count(db_session, Trade, Trade.account_id == account.id) == 0
    assert "trade_pending" in kinds(db_session, exit_)
    assert one(db_session, Position, Position.account_id == account.id).quantity == D(-100)

    # The entry filled at the broker at 1 s and 2 s; we record it only now.
    apply(db_session, entry, S.PARTIALLY_FILLED, "60", entry_fill("e1", "60", "10.00"),
          second=95)  # fmt: skip
    trade = one(db_session, Trade, Trade.id == "d-1")
    assert (trade.status, trade.entry_quantity, trade.exit_quantity) == (
        TradeStatus.OPEN, D(60), D(60))  # flat while the entry works  # fmt: skip
    apply(db_session, entry, S.FILLED, "100", entry_fill("e2", "40", "10.10", second=2),
          second=96)  # fmt: skip
    assert (trade.status, trade.closed_at) == (TradeStatus.CLOSED, at(96))
    outcome = one(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1")
    # The same outcome as when the fills are recorded in the order they happened.
    assert (outcome.quantity, outcome.entry_average_price, outcome.exit_average_price) == (
        D(100), D("10.04"), D("10.97"))  # fmt: skip
    assert (outcome.fees, outcome.realized_pnl) == (D(2), D(91))
    assert (outcome.entry_slippage, outcome.exit_slippage, outcome.slippage_cost) == (
        D("0.04"), D("0.03"), D(7))  # fmt: skip
    assert (outcome.opened_at, outcome.exited_at, outcome.holding_s) == (at(1), at(90.5),
                                                                         D("89.5"))  # fmt: skip
    assert outcome.deciding_source is ReportSource.MONITOR  # how the last exit fill came
    assert events(db_session, "d-1") == ["TRADE_OPENED", "TRADE_CLOSED"]
    position = one(db_session, Position, Position.account_id == account.id)
    assert (position.quantity, position.realized_pnl) == (0, D(91))
    assert exit_.trade_applied_quantity == D(100)
    assert mismatches(db_session) == []


def test_exit_fills_beyond_the_recorded_entry_wait_for_the_entry_fills_still_to_come(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    """The broker says the entry filled 100; 60 are recorded, 40 are a fill gap."""
    entry, exit_ = entry_order(make_order), exit_order(make_order)
    apply(db_session, entry, S.FILLED, "100", entry_fill("e1", "60", "10"), second=1)
    apply(db_session, exit_, S.FILLED, "100", exit_fill("x1", "100", "11"), second=60)
    trade = one(db_session, Trade, Trade.id == "d-1")
    assert (trade.status, trade.exit_quantity) == (TradeStatus.OPEN, D(60))
    assert exit_.trade_applied_quantity == D(60)
    gap = apply_to_order(db_session, entry, entry_fill("e2", "40", "10", second=2), now=at(70),
                         source=ReportSource.DEEP)  # fmt: skip
    db_session.flush()
    assert gap.new_fills
    outcome = one(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1")
    assert (outcome.quantity, outcome.exit_average_price) == (D(100), D(11))
    assert (outcome.fees, outcome.realized_pnl) == (D("1.5"), D("98.5"))  # the exit's fee once
    assert events(db_session, "d-1") == ["TRADE_OPENED", "TRADE_CLOSED"]
    assert mismatches(db_session) == []


def test_an_exit_waiting_for_an_entry_that_ends_unfilled_is_a_mismatch_then(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    entry, exit_ = entry_order(make_order), exit_order(make_order)
    apply(db_session, exit_, S.FILLED, "100", exit_fill("x1", "100", "11"), second=60)
    assert mismatches(db_session) == []
    apply(db_session, entry, S.CANCELED, "0", second=70)
    note = one(db_session, OrderEvent, OrderEvent.order_id == exit_.id,
               OrderEvent.kind == "trade_mismatch")  # fmt: skip
    assert "no trade 'd-1' in this account" in (note.detail or "")
    assert count(db_session, Trade, Trade.account_id == account.id) == 0
    assert exit_.trade_applied_quantity == D(100)  # settled: never counted again


def test_an_exit_on_the_wrong_side_of_its_working_entry_is_a_mismatch_at_once(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    entry_order(make_order)
    wrong = exit_order(make_order, side=Side.BUY)
    apply(db_session, wrong, S.FILLED, "100", exit_fill("x1", "100", "11"), second=60)
    assert mismatches(db_session) == [
        "trade 'd-1' is long AAPL: its exit must sell, not buy: the fills move the position only"
    ]
    assert "trade_pending" not in kinds(db_session, wrong)


# --- an order adopted before its track_order: annotating it replays its fills -------------


def test_annotating_an_adopted_entry_replays_its_fills_into_a_trade_once(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    adopted = make_order(broker_order_id="b-entry", origin=OrderOrigin.ADOPTED, quantity=D(100))
    apply(db_session, adopted, S.PARTIALLY_FILLED, "60", entry_fill("e1", "60", "10"), second=1,
          source=ReportSource.DEEP)  # fmt: skip
    apply(db_session, adopted, S.FILLED, "100", entry_fill("e2", "40", "11", second=2),
          second=2, source=ReportSource.DEEP)  # fmt: skip
    position = one(db_session, Position, Position.account_id == account.id).state()
    assert count(db_session, Trade, Trade.account_id == account.id) == 0

    adopted.requested_price = D(10)
    annotate_intent(db_session, adopted, intent=Intent.ENTRY, decision_id="d-1", trade_id=None,
                    now=at(30))  # fmt: skip
    db_session.flush()
    trade = one(db_session, Trade, Trade.id == "d-1")
    assert (trade.status, trade.entry_quantity, trade.entry_notional) == (
        TradeStatus.OPEN, D(100), D(1040))  # fmt: skip
    assert (trade.entry_order_id, trade.opened_at, trade.decision_id) == (adopted.id, at(1), "d-1")
    assert trade.entry_slippage_cost == D(40)  # 40 bought at 11 against the requested 10
    assert (adopted.intent, adopted.trade_id) == (Intent.ENTRY, "d-1")
    assert one(db_session, Position, Position.account_id == account.id).state() == position
    assert events(db_session, "d-1") == ["TRADE_OPENED"]

    annotate_intent(db_session, adopted, intent=Intent.ENTRY, decision_id="d-1", trade_id=None,
                    now=at(31))  # a repeated track_order  # fmt: skip
    db_session.flush()
    assert one(db_session, Trade, Trade.id == "d-1").entry_quantity == D(100)
    assert events(db_session, "d-1") == ["TRADE_OPENED"]


def test_annotating_an_adopted_exit_reduces_its_trade_and_closes_it(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    entry = entry_order(make_order)
    apply(db_session, entry, S.FILLED, "100", entry_fill("e1", "100", "10"), second=1)
    adopted = make_order(broker_order_id="b-exit", origin=OrderOrigin.ADOPTED, side=Side.SELL,
                         quantity=D(100))  # fmt: skip
    apply(db_session, adopted, S.FILLED, "100", exit_fill("x1", "100", "11"), second=60,
          source=ReportSource.DEEP)  # fmt: skip
    position = one(db_session, Position, Position.account_id == account.id).state()
    assert position.quantity == 0
    assert one(db_session, Trade, Trade.id == "d-1").status is TradeStatus.OPEN

    annotate_intent(db_session, adopted, intent=Intent.EXIT, decision_id=None, trade_id="d-1",
                    now=at(70))  # fmt: skip
    db_session.flush()
    outcome = one(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1")
    assert (outcome.quantity, outcome.realized_pnl, outcome.closed_at) == (D(100), D(99), at(70))
    assert outcome.deciding_source is ReportSource.DEEP  # how the exit fill was recorded
    assert events(db_session, "d-1") == ["TRADE_OPENED", "TRADE_CLOSED"]
    assert one(db_session, Position, Position.account_id == account.id).state() == position


def test_annotating_replays_nothing_for_an_order_that_already_had_its_intent(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    entry = entry_order(make_order)
    apply(db_session, entry, S.FILLED, "100", entry_fill("e1", "100", "10"), second=1)
    annotate_intent(db_session, entry, intent=Intent.ENTRY, decision_id="d-2", trade_id="t-2",
                    now=at(5))  # fmt: skip
    db_session.flush()
    assert (entry.decision_id, entry.trade_id) == ("d-1", "d-1")  # never overwritten
    assert one(db_session, Trade, Trade.id == "d-1").entry_quantity == D(100)
    assert count(db_session, Trade, Trade.account_id == account.id) == 1
