"""Positions, trades and outcomes move with the fills, through the real repository path, on
SQLite and PostgreSQL: partial fills on both sides, replays, races, mismatched exits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from core.enums import (
    BrokerKind,
    Intent,
    OrderOrigin,
    OrderStatus,
    OrderType,
    ReportSource,
    Side,
    TimeInForce,
)
from core.reports import FillReport
from models.db import make_sessionmaker
from models.ledger import (
    ExitRefused,
    LedgerConflict,
    Position,
    Trade,
    TradeOutcome,
    check_exit,
)
from models.orders import Account, Fill, Order, OrderEvent
from models.outbox import OutboxEvent
from models.repository import apply_to_order
from models.state_machine import Verdict
from models.trades import TradeStatus
from ordersync.positions import order_lifecycles
from tests.models.factories import at, fill, report

D = Decimal
DASH = "\u2013"
S = OrderStatus


def apply(
    session: Session, order: Order, status: OrderStatus, filled: str, *fills: FillReport,
    second: float, source: ReportSource = ReportSource.MONITOR,
) -> Verdict:  # fmt: skip
    """The broker's view of ``order`` with its fills, through the state machine."""
    assert order.broker_order_id is not None
    seen = report(status, filled, quantity=format(order.quantity, "f"), fills=fills,
                  broker_order_id=order.broker_order_id, updated=second)  # fmt: skip
    applied = apply_to_order(session, order, seen, now=at(second), source=source)
    session.flush()
    return applied.verdict


def entry_fill(fill_id: str, quantity: str, price: str, *, fee: str = "0.5",
               second: float = 1) -> FillReport:  # fmt: skip
    return fill(fill_id, quantity, price, fee=fee, broker_order_id="b-entry", seconds=second)


def exit_fill(fill_id: str, quantity: str, price: str, *, fee: str = "0.5", second: float = 60,
              order: str = "b-exit") -> FillReport:  # fmt: skip
    return fill(fill_id, quantity, price, fee=fee, broker_order_id=order, seconds=second)


@pytest.fixture
def entry(make_order: Callable[..., Order]) -> Order:
    return make_order(broker_order_id="b-entry", intent=Intent.ENTRY, decision_id="d-1",
                      quantity=D(100), requested_price=D("10.00"))  # fmt: skip


@pytest.fixture
def exit_order(make_order: Callable[..., Order]) -> Order:
    return make_order(broker_order_id="b-exit", intent=Intent.EXIT, trade_id="d-1",
                      side=Side.SELL, quantity=D(100), requested_price=D(11))  # fmt: skip


def one(session: Session, model: type[Any], *where: Any) -> Any:
    query = select(model).where(*where).execution_options(populate_existing=True)
    rows = session.scalars(query).all()
    assert len(rows) == 1, rows
    return rows[0]


def count(session: Session, model: type[Any], *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def events(session: Session, trade_id: str) -> list[str]:
    query = select(OutboxEvent.kind).where(OutboxEvent.trade_id == trade_id,
                                           OutboxEvent.kind.like("TRADE_%"))  # fmt: skip
    return list(session.scalars(query.order_by(OutboxEvent.id)))


def test_partial_fills_on_entry_and_exit_give_the_outcome_to_the_cent(
    db_session: Session, account: Account, entry: Order, exit_order: Order
) -> None:
    apply(db_session, entry, S.PARTIALLY_FILLED, "60", entry_fill("e1", "60", "10.00"), second=1)
    assert entry.trade_id == "d-1"  # named by its decision id, written back for the exit
    trade = one(db_session, Trade, Trade.id == "d-1")
    assert (trade.status, trade.entry_quantity, trade.entry_order_id) == (
        TradeStatus.OPEN, D(60), entry.id)  # fmt: skip
    assert events(db_session, "d-1") == ["TRADE_OPENED"]
    apply(db_session, entry, S.FILLED, "100", entry_fill("e2", "40", "10.10", second=2), second=2)
    assert (trade.entry_quantity, trade.entry_notional) == (D(100), D(1004))

    apply(db_session, exit_order, S.PARTIALLY_FILLED, "40", exit_fill("x1", "40", "11.00"),
          second=60, source=ReportSource.SWEEP)  # fmt: skip
    assert (trade.status, trade.state().open_quantity) == (TradeStatus.OPEN, D(60))
    position = one(db_session, Position, Position.account_id == account.id)
    assert (position.quantity, position.average_cost) == (D(60), D("10.04"))
    assert order_lifecycles(db_session, [entry, exit_order]) == {
        entry.id: f"Entry filled {DASH} trade OPEN",
        exit_order.id: f"Exit partially filled {DASH} 40 of 100",
    }

    apply(db_session, exit_order, S.FILLED, "100",
          exit_fill("x2", "60", "10.95", second=90.5), second=91)  # fmt: skip
    assert (trade.status, trade.closed_at) == (TradeStatus.CLOSED, at(91))
    outcome = one(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1")
    assert (outcome.quantity, outcome.entry_average_price, outcome.exit_average_price) == (
        D(100), D("10.04"), D("10.97"))  # fmt: skip
    assert (outcome.fees, outcome.realized_pnl) == (D(2), D(91))  # 93 - 4 fills x 0.50
    assert (outcome.entry_slippage, outcome.exit_slippage, outcome.slippage_cost) == (
        D("0.04"), D("0.03"), D(7))  # fmt: skip
    assert (outcome.opened_at, outcome.exited_at, outcome.holding_s) == (at(1), at(90.5),
                                                                         D("89.5"))  # fmt: skip
    assert outcome.deciding_source is ReportSource.MONITOR
    assert events(db_session, "d-1") == ["TRADE_OPENED", "TRADE_CLOSED"]
    position = one(db_session, Position, Position.account_id == account.id)
    assert (position.quantity, position.average_cost, position.realized_pnl) == (0, None, D(91))
    assert order_lifecycles(db_session, [exit_order]) == {
        exit_order.id: f"Exit filled {DASH} trade CLOSED"
    }


def test_the_same_fill_twice_or_by_monitor_and_sweep_changes_things_once(
    db_session: Session, account: Account, entry: Order, exit_order: Order
) -> None:
    apply(db_session, entry, S.FILLED, "100", entry_fill("e1", "100", "10"), second=1)
    apply(db_session, entry, S.FILLED, "100", entry_fill("e1", "100", "10"), second=2,
          source=ReportSource.SWEEP)  # fmt: skip
    trade = one(db_session, Trade, Trade.id == "d-1")
    assert trade.entry_quantity == D(100)
    last = exit_fill("x1", "100", "12")
    assert apply(db_session, exit_order, S.FILLED, "100", last, second=60) is Verdict.APPLIED
    state = one(db_session, Position, Position.account_id == account.id).state()
    # The sweep's report of the same order, and the fill sync's copy of the same fill.
    assert apply(db_session, exit_order, S.FILLED, "100", last, second=60,
                 source=ReportSource.SWEEP) is Verdict.DUPLICATE  # fmt: skip
    apply(db_session, exit_order, S.FILLED, "100", last, second=61, source=ReportSource.SWEEP)
    again = apply_to_order(db_session, exit_order, last, now=at(62), source=ReportSource.DEEP)
    db_session.flush()
    assert again.verdict is Verdict.DUPLICATE
    assert one(db_session, Position, Position.account_id == account.id).state() == state
    assert (state.quantity, state.realized_pnl) == (0, D(199))
    assert count(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1") == 1
    assert count(db_session, Fill, Fill.order_id == exit_order.id) == 1
    assert events(db_session, "d-1") == ["TRADE_OPENED", "TRADE_CLOSED"]


def test_an_entry_canceled_unfilled_opens_no_trade(
    db_session: Session, account: Account, entry: Order
) -> None:
    apply(db_session, entry, S.CANCELED, "0", second=3)
    assert count(db_session, Trade, Trade.account_id == account.id) == 0
    assert count(db_session, Position, Position.account_id == account.id) == 0
    assert entry.trade_id is None
    assert order_lifecycles(db_session, [entry]) == {entry.id: f"Entry canceled {DASH} no trade"}


def test_a_trade_flat_while_its_entry_works_closes_when_the_entry_ends(
    db_session: Session, entry: Order, make_order: Callable[..., Order]
) -> None:
    apply(db_session, entry, S.PARTIALLY_FILLED, "60", entry_fill("e1", "60", "10"), second=1)
    exit_60 = make_order(broker_order_id="b-exit", intent=Intent.EXIT, trade_id="d-1",
                         side=Side.SELL, quantity=D(60))  # fmt: skip
    apply(db_session, exit_60, S.FILLED, "60", exit_fill("x1", "60", "11"), second=60,
          source=ReportSource.STREAM)  # fmt: skip
    trade = one(db_session, Trade, Trade.id == "d-1")
    assert (trade.status, trade.state().open_quantity) == (TradeStatus.OPEN, 0)
    assert count(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1") == 0

    apply(db_session, entry, S.CANCELED, "60", second=70, source=ReportSource.SWEEP)
    assert trade.status is TradeStatus.CLOSED
    outcome = one(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1")
    assert (outcome.quantity, outcome.realized_pnl) == (D(60), D(59))  # 60 - 2 fees of 0.50
    assert outcome.deciding_source is ReportSource.STREAM  # the exit fill decided it
    assert order_lifecycles(db_session, [entry]) == {
        entry.id: f"Entry canceled {DASH} 60 of 100 filled {DASH} trade CLOSED"
    }


def test_an_entry_with_fills_still_to_come_keeps_its_flat_trade_open(
    db_session: Session, entry: Order, make_order: Callable[..., Order]
) -> None:
    """The broker says the entry filled 100; 60 are recorded, 40 are a fill gap."""
    apply(db_session, entry, S.FILLED, "100", entry_fill("e1", "60", "10"), second=1)
    first = make_order(broker_order_id="b-x1", intent=Intent.EXIT, trade_id="d-1",
                       side=Side.SELL, quantity=D(60))  # fmt: skip
    apply(db_session, first, S.FILLED, "60", exit_fill("x1", "60", "11", order="b-x1"), second=9)
    trade = one(db_session, Trade, Trade.id == "d-1")
    assert (trade.status, trade.state().open_quantity) == (TradeStatus.OPEN, 0)
    gap = apply_to_order(db_session, entry, entry_fill("e2", "40", "10"), now=at(20),
                         source=ReportSource.DEEP)  # fmt: skip
    assert gap.new_fills
    second = make_order(broker_order_id="b-x2", intent=Intent.EXIT, trade_id="d-1",
                        side=Side.SELL, quantity=D(40))  # fmt: skip
    apply(db_session, second, S.FILLED, "40", exit_fill("x2", "40", "12", order="b-x2"),
          second=30)  # fmt: skip
    outcome = one(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1")
    assert (outcome.quantity, outcome.exit_average_price) == (D(100), D("11.4"))


def test_a_short_round_trip(db_session: Session, make_order: Callable[..., Order]) -> None:
    short = make_order(broker_order_id="b-entry", intent=Intent.ENTRY, trade_id="t-short",
                       side=Side.SELL, quantity=D(10))  # fmt: skip
    cover = make_order(broker_order_id="b-exit", intent=Intent.EXIT, trade_id="t-short",
                       side=Side.BUY, quantity=D(10))  # fmt: skip
    apply(db_session, short, S.FILLED, "10", entry_fill("e1", "10", "50", fee="0"), second=1)
    apply(db_session, cover, S.FILLED, "10", exit_fill("x1", "10", "45", fee="1"), second=9)
    outcome = one(db_session, TradeOutcome, TradeOutcome.trade_id == "t-short")
    assert (outcome.side, outcome.realized_pnl) == (Side.SELL, D(49))


def test_an_exit_beyond_the_trade_closes_it_and_the_excess_moves_only_the_position(
    db_session: Session, account: Account, entry: Order, make_order: Callable[..., Order]
) -> None:
    """A tracked exit is not refused at placement; its fills are facts all the same."""
    apply(db_session, entry, S.FILLED, "100", entry_fill("e1", "100", "10", fee="0"), second=1)
    big = make_order(broker_order_id="b-exit", intent=Intent.EXIT, trade_id="d-1",
                     side=Side.SELL, quantity=D(120), origin=OrderOrigin.TRACKED)  # fmt: skip
    apply(db_session, big, S.FILLED, "120", exit_fill("x1", "120", "11", fee="0"), second=60)
    outcome = one(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1")
    assert (outcome.quantity, outcome.realized_pnl) == (D(100), D(100))
    position = one(db_session, Position, Position.account_id == account.id)
    assert (position.quantity, position.average_cost) == (D(-20), D(11))
    note = one(db_session, OrderEvent, OrderEvent.order_id == big.id,
               OrderEvent.kind == "trade_mismatch")  # fmt: skip
    assert "exceed the open quantity of trade 'd-1' by 20" in (note.detail or "")


def test_an_exit_for_no_known_trade_moves_only_the_position(
    db_session: Session, account: Account, exit_order: Order
) -> None:
    apply(db_session, exit_order, S.FILLED, "100", exit_fill("x1", "100", "11"), second=60)
    assert count(db_session, Trade, Trade.account_id == account.id) == 0
    position = one(db_session, Position, Position.account_id == account.id)
    assert position.quantity == D(-100)
    note = one(db_session, OrderEvent, OrderEvent.order_id == exit_order.id,
               OrderEvent.kind == "trade_mismatch")  # fmt: skip
    assert "no trade 'd-1'" in (note.detail or "")


def test_orders_without_intent_move_only_positions(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    order = make_order(quantity=D(5))
    apply(db_session, order, S.FILLED, "5", fill("f1", "5", "20", fee="0.1"), second=1)
    position = one(db_session, Position, Position.account_id == account.id)
    assert (position.quantity, position.average_cost, position.realized_pnl) == (
        D(5), D(20), D("-0.1"))  # fmt: skip
    assert count(db_session, Trade, Trade.account_id == account.id) == 0
    assert order.trade_id is None


def test_a_database_without_update_returning_locks_then_reads_the_position(
    db_session: Session, account: Account, make_order: Callable[..., Order],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """SQLite before 3.35 has no UPDATE ... RETURNING: the same lock, then a read."""
    monkeypatch.setattr(db_session.get_bind().dialect, "update_returning", False)
    order = make_order(quantity=D(5))
    apply(db_session, order, S.PARTIALLY_FILLED, "2", fill("f1", "2", "20", fee="0"), second=1)
    apply(db_session, order, S.FILLED, "5", fill("f2", "3", "22", fee="0"), second=2)
    position = one(db_session, Position, Position.account_id == account.id)
    assert (position.quantity, position.cost_basis, position.version) == (D(5), D(106), 2)


def test_the_database_allows_one_outcome_per_trade(
    db_session: Session, entry: Order, exit_order: Order
) -> None:
    apply(db_session, entry, S.FILLED, "100", entry_fill("e1", "100", "10"), second=1)
    apply(db_session, exit_order, S.FILLED, "100", exit_fill("x1", "100", "11"), second=60)
    first = one(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1")
    columns = {c.key: getattr(first, c.key) for c in TradeOutcome.__table__.columns}
    db_session.add(TradeOutcome(**{k: v for k, v in columns.items() if k != "id"}))
    with pytest.raises(IntegrityError):
        db_session.flush()


def test_an_exit_is_judged_against_the_open_quantity_less_working_exits(
    db_session: Session, account: Account, entry: Order, make_order: Callable[..., Order]
) -> None:
    apply(db_session, entry, S.FILLED, "100", entry_fill("e1", "100", "10"), second=1)
    make_order(broker_order_id="b-x1", intent=Intent.EXIT, trade_id="d-1", side=Side.SELL,
               quantity=D(70), filled_quantity=D(30),
               trade_applied_quantity=D(30))  # its trade took its 30  # fmt: skip
    exit_of = dict(account_id=account.id, trade_id="d-1", symbol="AAPL", side=Side.SELL)
    check_exit(db_session, quantity=D(30), **exit_of)  # 100 open - 40 still held by b-x1 = 60
    with pytest.raises(ExitRefused, match=r"61 AAPL exceeds .* 60 available") as refused:
        check_exit(db_session, quantity=D(61), **exit_of)
    assert refused.value.trade_id == "d-1"


def test_a_trade_with_a_second_entry_still_working_stays_open_when_flat(
    db_session: Session, entry: Order, make_order: Callable[..., Order]
) -> None:
    apply(db_session, entry, S.FILLED, "100", entry_fill("e1", "100", "10"), second=1)
    scale_in = make_order(broker_order_id="b-entry-2", intent=Intent.ENTRY, trade_id="d-1",
                          quantity=D(50))  # fmt: skip
    exit_100 = make_order(broker_order_id="b-exit", intent=Intent.EXIT, trade_id="d-1",
                          side=Side.SELL, quantity=D(100))  # fmt: skip
    apply(db_session, exit_100, S.FILLED, "100", exit_fill("x1", "100", "11"), second=60)
    trade = one(db_session, Trade, Trade.id == "d-1")
    assert (trade.status, trade.state().open_quantity) == (TradeStatus.OPEN, 0)  # b-entry-2 works
    apply(db_session, scale_in, S.FILLED, "50",
          fill("e2", "50", "12", broker_order_id="b-entry-2", seconds=70), second=70)  # fmt: skip
    assert (trade.status, trade.state().open_quantity) == (TradeStatus.OPEN, D(50))
    assert count(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1") == 0


@pytest.mark.parametrize("ending", [S.CANCELED, S.EXPIRED, S.REJECTED])
@pytest.mark.parametrize("naming", ["trade_id", "decision_id"])
def test_a_flat_trade_closes_when_its_last_working_entry_ends_unfilled(
    db_session: Session, entry: Order, make_order: Callable[..., Order], ending: OrderStatus,
    naming: str,
) -> None:  # fmt: skip
    """The scale-in names the trade by trade id, or by the decision id it will take."""
    apply(db_session, entry, S.FILLED, "100", entry_fill("e1", "100", "10"), second=1)
    scale_in = make_order(broker_order_id="b-entry-2", intent=Intent.ENTRY, quantity=D(50),
                          **{naming: "d-1"})  # fmt: skip
    exit_100 = make_order(broker_order_id="b-exit", intent=Intent.EXIT, trade_id="d-1",
                          side=Side.SELL, quantity=D(100))  # fmt: skip
    apply(db_session, exit_100, S.FILLED, "100", exit_fill("x1", "100", "11"), second=60)
    trade = one(db_session, Trade, Trade.id == "d-1")
    assert (trade.status, trade.state().open_quantity) == (TradeStatus.OPEN, 0)  # b-entry-2 works

    apply(db_session, scale_in, ending, "0", second=70, source=ReportSource.SWEEP)
    assert (trade.status, trade.closed_at) == (TradeStatus.CLOSED, at(70))
    outcome = one(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1")
    assert (outcome.quantity, outcome.realized_pnl) == (D(100), D(99))  # 100 - 2 fees of 0.50
    assert events(db_session, "d-1") == ["TRADE_OPENED", "TRADE_CLOSED"]
    assert scale_in.trade_id == ("d-1" if naming == "trade_id" else None)  # it took no part
    apply(db_session, scale_in, ending, "0", second=80)  # the same end again: nothing more
    assert count(db_session, TradeOutcome, TradeOutcome.trade_id == "d-1") == 1


def test_a_trade_near_the_columns_limits_is_judged_and_stored_exactly(
    db_session: Session, account: Account, make_order: Callable[..., Order]
) -> None:
    """20 integer digits and 18 places (NUMERIC(38, 18)): beyond Python's default 28-digit
    context, so every sum and difference runs in the ledger's own context."""
    big, tiny = "10000000000000000000", "0.000000000000000001"
    left = D("9999999999999999999.999999999999999999")
    entry = make_order(broker_order_id="b-entry", intent=Intent.ENTRY, trade_id="t-big",
                       quantity=D(big))  # fmt: skip
    apply(db_session, entry, S.FILLED, big, entry_fill("e1", big, "1", fee="0"), second=1)
    exit_tiny = make_order(broker_order_id="b-exit", intent=Intent.EXIT, trade_id="t-big",
                           side=Side.SELL, quantity=D(tiny))  # fmt: skip
    apply(db_session, exit_tiny, S.FILLED, tiny, exit_fill("x1", tiny, "1", fee="0"), second=60)
    exit_of = dict(account_id=account.id, trade_id="t-big", symbol="AAPL", side=Side.SELL)
    check_exit(db_session, quantity=left, **exit_of)  # all that is left
    with pytest.raises(ExitRefused, match=rf"{left} open, {left} available"):
        check_exit(db_session, quantity=D(big), **exit_of)
    stored = db_session.execute(
        text("SELECT CAST(quantity AS VARCHAR(64)), CAST(cost_basis AS VARCHAR(64)) "
             "FROM positions WHERE account_id = :account"), {"account": account.id},
    ).one()  # fmt: skip
    assert (D(stored[0]), D(stored[1])) == (left, left)


def test_an_ended_exit_with_fills_still_to_record_holds_its_quantity(
    db_session: Session, account: Account, entry: Order, make_order: Callable[..., Order]
) -> None:
    apply(db_session, entry, S.FILLED, "100", entry_fill("e1", "100", "10"), second=1)
    make_order(broker_order_id="b-x1", intent=Intent.EXIT, trade_id="d-1", side=Side.SELL,
               quantity=D(70), status=S.FILLED, filled_quantity=D(0),
               broker_filled_quantity=D(70))  # fmt: skip
    exit_of = dict(account_id=account.id, trade_id="d-1", symbol="AAPL", side=Side.SELL)
    check_exit(db_session, quantity=D(30), **exit_of)
    with pytest.raises(ExitRefused, match=r"31 AAPL exceeds .* 30 available"):
        check_exit(db_session, quantity=D(31), **exit_of)


# --- races on PostgreSQL: committed rows, two sessions ---------------------------------------


@dataclass
class Committed:
    """An account of its own on the shared test database, with helpers that commit."""

    engine: Engine
    sessions: sessionmaker[Session]
    account_id: str

    def order(self, broker_order_id: str, **overrides: Any) -> str:
        fields: dict[str, Any] = {
            "account_id": self.account_id, "broker": BrokerKind.ALPACA,
            "client_order_id": f"c-{broker_order_id}", "broker_order_id": broker_order_id,
            "origin": OrderOrigin.PLACED, "symbol": "AAPL", "side": Side.BUY,
            "order_type": OrderType.MARKET, "time_in_force": TimeInForce.DAY,
            "quantity": D(100), "status": S.NEW, "created_at": at(0), "updated_at": at(0),
        }  # fmt: skip
        with self.sessions.begin() as session:
            order = Order(**{**fields, **overrides})
            session.add(order)
            session.flush()
            return order.id

    def apply(self, order_id: str, status: OrderStatus, filled: str, *fills: FillReport,
              second: float = 1) -> None:  # fmt: skip
        with self.sessions.begin() as session:
            order = session.get(Order, order_id, with_for_update=True)
            assert order is not None
            apply(session, order, status, filled, *fills, second=second)

    def pid(self, session: Session) -> int:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def wait_until_blocked(self, pid: int) -> None:
        """Until the backend ``pid`` waits for a lock another session holds."""
        query = text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
        deadline = time.monotonic() + 30
        with self.engine.connect() as connection:
            while connection.execute(query, {"pid": pid}).scalar() != "Lock":
                assert time.monotonic() < deadline, f"backend {pid} never waited for a lock"
                time.sleep(0.01)
                connection.rollback()


@pytest.fixture
def committed(engine: Engine) -> Iterator[Committed]:
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks and concurrent writers: PostgreSQL (SQLite has one writer)")
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        account = Account(name=f"race-{time.monotonic_ns()}", broker=BrokerKind.ALPACA,
                          base_url="http://x", credentials_env="X", created_at=at(0))  # fmt: skip
        session.add(account)
        session.flush()
        account_id = account.id
    yield Committed(engine, sessions, account_id)
    with sessions.begin() as session:
        order_ids = select(Order.id).where(Order.account_id == account_id)
        session.execute(delete(OutboxEvent).where(OutboxEvent.order_id.in_(order_ids)))
        for model in (TradeOutcome, Trade, Position):
            session.execute(delete(model).where(model.account_id == account_id))
        session.execute(delete(Order).where(Order.account_id == account_id))
        session.execute(delete(Account).where(Account.id == account_id))


def in_thread(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # handed to the test thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def retried(sessions: sessionmaker[Session], order_id: str, last: FillReport,
            attempts: list[str]) -> None:  # fmt: skip
    """The sweep's way: no row lock, the version counter catches a concurrent writer, and
    the whole apply is retried on fresh state."""
    for _ in range(5):
        try:
            with sessions.begin() as session:
                order = session.get(Order, order_id, populate_existing=True)
                assert order is not None
                verdict = apply(session, order, S.FILLED, "100", last, second=99,
                                source=ReportSource.SWEEP)  # fmt: skip
                attempts.append(verdict.value)
                return
        except StaleDataError:
            attempts.append("stale")
    raise AssertionError("never applied")


def test_monitor_and_sweep_racing_with_the_last_exit_fill_record_one_outcome(
    committed: Committed,
) -> None:
    entry = committed.order("b-entry", intent=Intent.ENTRY, decision_id="d-race")
    exit_id = committed.order("b-exit", intent=Intent.EXIT, trade_id="d-race", side=Side.SELL)
    committed.apply(entry, S.FILLED, "100", entry_fill("e1", "100", "10"))
    committed.apply(exit_id, S.PARTIALLY_FILLED, "40", exit_fill("x1", "40", "11"), second=40)
    last = exit_fill("x2", "60", "12")

    sweep_session = committed.sessions()
    sweep_pid = committed.pid(sweep_session)
    sweep_order = sweep_session.get(Order, exit_id)  # read before the monitor writes
    assert sweep_order is not None
    attempts: list[str] = []

    def sweep() -> None:
        try:
            apply(sweep_session, sweep_order, S.FILLED, "100", last, second=99,
                  source=ReportSource.SWEEP)  # fmt: skip
            sweep_session.commit()
            attempts.append("applied")
        except StaleDataError:
            sweep_session.rollback()
            attempts.append("stale")
            retried(committed.sessions, exit_id, last, attempts)
        finally:
            sweep_session.close()

    with committed.sessions.begin() as monitor:
        order = monitor.get(Order, exit_id, with_for_update=True)
        assert order is not None
        apply(monitor, order, S.FILLED, "100", last, second=99)
        thread, errors = in_thread(sweep)
        committed.wait_until_blocked(sweep_pid)  # the sweep waits on the order's row
    thread.join(timeout=60)
    assert not errors, errors
    assert attempts == ["stale", "duplicate"]
    with committed.sessions() as session:
        outcome = one(session, TradeOutcome, TradeOutcome.account_id == committed.account_id)
        assert (outcome.quantity, outcome.realized_pnl) == (D(100), D("158.5"))  # 160 - fees
        assert outcome.deciding_source is ReportSource.MONITOR
        position = one(session, Position, Position.account_id == committed.account_id)
        assert (position.quantity, position.realized_pnl) == (0, D("158.5"))
        assert events(session, "d-race") == ["TRADE_OPENED", "TRADE_CLOSED"]


def test_two_exits_racing_for_the_last_quantity_close_the_trade_once(
    committed: Committed,
) -> None:
    entry = committed.order("b-entry", intent=Intent.ENTRY, trade_id="t-two")
    first = committed.order("b-x1", intent=Intent.EXIT, trade_id="t-two", side=Side.SELL,
                            quantity=D(50))  # fmt: skip
    second = committed.order("b-x2", intent=Intent.EXIT, trade_id="t-two", side=Side.SELL,
                             quantity=D(50))  # fmt: skip
    committed.apply(entry, S.FILLED, "100", entry_fill("e1", "100", "10", fee="0"))

    other = committed.sessions()
    other_pid = committed.pid(other)

    def second_exit() -> None:
        with other:  # its transaction began with the pid query
            order = other.get(Order, second, with_for_update=True)
            assert order is not None
            apply(other, order, S.FILLED, "50",
                  exit_fill("y1", "50", "12", fee="0", order="b-x2"), second=50)  # fmt: skip
            other.commit()

    with committed.sessions.begin() as session:
        order = session.get(Order, first, with_for_update=True)
        assert order is not None
        apply(session, order, S.FILLED, "50", exit_fill("z1", "50", "11", fee="0", order="b-x1"),
              second=50)  # fmt: skip
        thread, errors = in_thread(second_exit)
        committed.wait_until_blocked(other_pid)  # on the position, held until we commit
    thread.join(timeout=60)
    assert not errors, errors
    with committed.sessions() as session:
        outcome = one(session, TradeOutcome, TradeOutcome.account_id == committed.account_id)
        assert (outcome.quantity, outcome.exit_average_price, outcome.realized_pnl) == (
            D(100), D("11.5"), D(150))  # fmt: skip
        trade = one(session, Trade, Trade.account_id == committed.account_id)
        assert (trade.status, trade.exit_quantity) == (TradeStatus.CLOSED, D(100))


def test_a_lock_cycle_with_another_writer_is_a_conflict_the_caller_retries(
    committed: Committed,
) -> None:
    """A sweep page holds a position and then needs an order a monitor holds, while the
    monitor waits for that position: PostgreSQL aborts one of them; when it is our lock
    wait, the caller gets a StaleDataError and retries, as for any concurrent writer."""
    seed = committed.order("b-seed", quantity=D(1))  # the AAPL position exists: row locks
    committed.apply(seed, S.FILLED, "1", fill("f0", "1", "10", broker_order_id="b-seed"))
    a = committed.order("b-a", quantity=D(1))
    d = committed.order("b-d", quantity=D(1))
    monitor = committed.sessions()
    monitor_pid = committed.pid(monitor)
    monitor.execute(text("SET deadlock_timeout = '100ms'"))  # the monitor detects the cycle
    sweep = committed.sessions()
    sweep.execute(text("SET deadlock_timeout = '10s'"))
    orders = {o.id: o for o in sweep.scalars(select(Order).where(Order.id.in_([a, d])))}

    def monitor_fill() -> None:
        try:
            order = monitor.get(Order, d, with_for_update=True)
            assert order is not None
            apply(monitor, order, S.FILLED, "1", fill("m1", "1", "10", broker_order_id="b-d"),
                  second=1)  # fmt: skip
            monitor.commit()
        finally:
            monitor.rollback()
            monitor.close()

    apply(sweep, orders[a], S.FILLED, "1", fill("s1", "1", "10", broker_order_id="b-a"),
          second=1)  # the sweep now holds the AAPL position  # fmt: skip
    thread, errors = in_thread(monitor_fill)
    committed.wait_until_blocked(monitor_pid)
    apply(sweep, orders[d], S.FILLED, "1", fill("m1", "1", "10", broker_order_id="b-d"),
          second=1)  # waits for the monitor's order row: a cycle  # fmt: skip
    sweep.commit()
    sweep.close()
    thread.join(timeout=60)
    assert len(errors) == 1
    assert isinstance(errors[0], LedgerConflict)
    assert isinstance(errors[0], StaleDataError)
    with committed.sessions() as session:
        position = one(session, Position, Position.account_id == committed.account_id)
        assert position.quantity == D(3)  # the seed, the sweep's two; nothing twice


def test_an_exit_fill_racing_with_the_entry_fill_it_waits_for_closes_the_trade_once(
    committed: Committed,
) -> None:
    """The exit's fills are recorded first, in a transaction still open when the entry's
    fill comes: the entry waits for the position, then takes the exit's waiting fills."""
    seed = committed.order("b-seed", quantity=D(1))  # the AAPL position exists: row locks
    committed.apply(seed, S.FILLED, "1", fill("f0", "1", "10", broker_order_id="b-seed"))
    entry = committed.order("b-entry", intent=Intent.ENTRY, decision_id="d-lag")
    exit_id = committed.order("b-exit", intent=Intent.EXIT, trade_id="d-lag", side=Side.SELL)
    other = committed.sessions()
    other_pid = committed.pid(other)

    def entry_fills() -> None:
        with other:  # its transaction began with the pid query
            order = other.get(Order, entry, with_for_update=True)
            assert order is not None
            apply(other, order, S.FILLED, "100", entry_fill("e1", "100", "10"), second=5)
            other.commit()

    with committed.sessions.begin() as session:
        order = session.get(Order, exit_id, with_for_update=True)
        assert order is not None
        apply(session, order, S.FILLED, "100", exit_fill("x1", "100", "11"), second=4)
        thread, errors = in_thread(entry_fills)
        committed.wait_until_blocked(other_pid)  # on the position, held until we commit
    thread.join(timeout=60)
    assert not errors, errors
    with committed.sessions() as session:
        outcome = one(session, TradeOutcome, TradeOutcome.account_id == committed.account_id)
        assert (outcome.quantity, outcome.realized_pnl) == (D(100), D(99))
        assert events(session, "d-lag") == ["TRADE_OPENED", "TRADE_CLOSED"]
