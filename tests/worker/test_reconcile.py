"""The sweeps' logic against a stub broker (fakeredis, SQLite): listings applied a page per
transaction, lookups only for what a listing cannot tell, the miss policy, adoption,
positions. The real worker, beat and paper exchange are in test_reconcile_system.py."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from sqlalchemy import select, update

from brokers.errors import OrderNotFound
from core.enums import (
    BrokerKind,
    OrderOrigin,
    OrderStatus,
    OrderType,
    ReportSource,
    Side,
    TimeInForce,
)
from core.reports import FeeReport, FillReport, OrderReport, Page, PlaceOrderRequest, PositionReport
from models import migrate
from models.accounts import ensure_account
from models.db import make_engine, make_sessionmaker
from models.fees import FeePosting
from models.ledger import Position
from models.orders import Fill, Order, OrderEvent
from models.outbox import OutboxEvent
from models.repository import load_state, record_applied
from models.state_machine import local_transition
from ordersync.settings import Settings
from tests.worker.conftest import UnitWorker
from worker import reconcile
from worker.chains import start_chain
from worker.context import WorkerContext

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def report(n: int, status: OrderStatus = OrderStatus.NEW, filled: str = "0") -> OrderReport:
    return OrderReport(
        broker_order_id=f"b{n}", client_order_id=f"c{n}", symbol="AAPL", side=Side.BUY,
        order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, quantity=Decimal(5),
        status=status, raw_status=status.value.lower(), filled_quantity=Decimal(filled),
        average_fill_price=Decimal("10") if filled != "0" else None,
        created_at=T0 - timedelta(hours=1), updated_at=T0 - timedelta(minutes=30),
        limit_price=Decimal("10"),
    )  # fmt: skip


class StubBroker:
    """Lists ``open``/``all`` orders two per page; counts every request."""

    refuses_reused_client_ids = True  # as Alpaca: a second send is refused

    lists_fills = True
    lists_by_symbol = False
    lists_fees = False
    positions_by_asset = False
    reports_trades = False  # keeps no trades: the P&L check is skipped

    def holding_of(self, symbol: str) -> str:
        return symbol

    def quoted_in(self, symbol: str) -> str | None:
        return None

    def __init__(self) -> None:
        self.orders: dict[str, OrderReport] = {}
        self.positions: list[PositionReport] = []
        self.requests: list[str] = []

    def list_orders(self, *, status: str = "all", page_token: str | None = None,
                    **_: Any) -> Page[OrderReport]:  # fmt: skip
        self.requests.append(f"list {status}")
        items = [
            o
            for o in self.orders.values()  # held legs: under "all" only, as Alpaca
            if status == "all" or (o.status.is_open and o.raw_status != "held")
        ]
        start = int(page_token or 0)
        more = start + 2 < len(items)
        return Page(tuple(items[start : start + 2]), next_token=str(start + 2) if more else None)

    def get_order(self, broker_order_id: str) -> OrderReport:
        self.requests.append(f"get {broker_order_id}")
        if broker_order_id not in self.orders:
            raise OrderNotFound("gone", broker="stub", broker_order_id=broker_order_id)
        return self.orders[broker_order_id]

    def get_order_by_client_id(self, client_order_id: str, **_: Any) -> OrderReport:
        self.requests.append(f"get-by-client {client_order_id}")
        for order in self.orders.values():
            if order.client_order_id == client_order_id:
                return order
        raise OrderNotFound("gone", broker="stub", client_order_id=client_order_id)

    def list_positions(self) -> list[PositionReport]:
        self.requests.append("positions")
        return self.positions

    def place(self, request: PlaceOrderRequest) -> OrderReport:
        self.requests.append(f"place {request.client_order_id}")
        n = int(request.client_order_id.removeprefix("c"))
        self.orders[f"b{n}"] = report(n)
        return self.orders[f"b{n}"]

    def list_fills(self, **_: Any) -> Page[Any]:
        self.requests.append("fills")
        return Page(())


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[WorkerContext, StubBroker, str, list[datetime]]]:
    yield from _system(tmp_path, StubBroker())


def _system(tmp_path: Path, stub: StubBroker
            ) -> Iterator[tuple[WorkerContext, StubBroker, str, list[datetime]]]:  # fmt: skip
    url = f"sqlite:///{tmp_path / 'o.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        account = ensure_account(session, name="a", broker=BrokerKind.ALPACA, base_url="x",
                                 credentials_env="X", rate_limit_per_min=200, now=T0)  # fmt: skip
        session.commit()
        account_id = account.id
    clock = [T0]
    settings = Settings(_env_file=None, lost_after_misses=3, pending_new_grace_s=120)  # type: ignore[call-arg]
    ctx = WorkerContext(settings, engine, sessions, fakeredis.FakeRedis(decode_responses=True),
                        None, now=lambda: clock[0])  # type: ignore[arg-type]  # fmt: skip
    ctx.adapter = lambda account: stub  # type: ignore[assignment, method-assign, return-value]
    yield ctx, stub, account_id, clock
    engine.dispose()


def add_order(ctx: WorkerContext, account_id: str, n: int, *, broker_id: bool = True,
              status: OrderStatus = OrderStatus.NEW, age_s: float = 3600,
              checked_s_ago: float | None = None) -> str:  # fmt: skip
    now = ctx.now()
    with ctx.sessions() as session:
        order = Order(
            account_id=account_id, broker=BrokerKind.ALPACA, client_order_id=f"c{n}",
            broker_order_id=f"b{n}" if broker_id else None, origin=OrderOrigin.PLACED,
            symbol="AAPL", side=Side.BUY, order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC, quantity=Decimal(5), limit_price=Decimal("10"),
            status=status, created_at=now - timedelta(seconds=age_s), updated_at=now,
            last_checked_at=None if checked_s_ago is None
            else now - timedelta(seconds=checked_s_ago),
        )  # fmt: skip
        session.add(order)
        session.commit()
        return order.id


def load(ctx: WorkerContext, order_id: str) -> Order:
    with ctx.sessions() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order


def test_the_sweep_lists_open_orders_in_pages_and_skips_fresh_ones(system: Any) -> None:
    ctx, stub, account_id, clock = system
    ids = [add_order(ctx, account_id, n) for n in range(5)]
    for n in range(6):
        stub.orders[f"b{n}"] = report(n)
    first = reconcile.sweep_open_orders(ctx, account_id)
    assert first.applied == 5  # the broker's times and raw status are news the first time
    clock[0] += timedelta(minutes=1)
    fresh = add_order(ctx, account_id, 5, checked_s_ago=1, age_s=3600)
    stub.orders["b2"] = replace(report(2, OrderStatus.PARTIALLY_FILLED, filled="2"),
                                updated_at=T0 - timedelta(minutes=1))  # fmt: skip

    stats = reconcile.sweep_open_orders(ctx, account_id)

    assert stats.local_orders == 5  # the fresh one is left to its monitor
    assert stats.pages == 3  # 6 open at the broker, 2 a page
    assert stats.lookups == 0
    assert stats.applied == 1
    assert stats.unchanged == 4
    assert load(ctx, ids[2]).status is OrderStatus.PARTIALLY_FILLED
    assert load(ctx, ids[2]).broker_filled_quantity == Decimal(2)
    assert all(load(ctx, i).last_checked_at == ctx.now() for i in ids)
    assert load(ctx, fresh).last_checked_at != ctx.now()
    assert ids[2] in stats.watch  # more filled at the broker than recorded: watch it


def add_as_listed(ctx: WorkerContext, stub: StubBroker, account_id: str, n: int,
                  status: OrderStatus, filled: str = "0") -> str:  # fmt: skip
    """An order the broker lists as ``status``, ``filled``; the row already says so, with no
    fill recorded (a fill gap when ``filled`` is above 0)."""
    stub.orders[f"b{n}"] = report(n, status, filled=filled)
    order_id = add_order(ctx, account_id, n, status=status)
    with ctx.sessions.begin() as session:
        order = session.get(Order, order_id)
        assert order is not None
        order.raw_status, order.broker_filled_quantity = status.value.lower(), Decimal(filled)
        order.broker_updated_at = stub.orders[f"b{n}"].updated_at
    return order_id


@pytest.mark.parametrize("watched", [1, 6])
def test_watched_orders_cost_no_query_each_and_a_fill_gap_starts_one_fill_sync(
    system: Any, watched: int
) -> None:
    ctx, stub, account_id, _ = system
    canceling = {add_as_listed(ctx, stub, account_id, n, OrderStatus.PENDING_CANCEL)
                 for n in range(watched)}  # fmt: skip
    gapped = add_as_listed(ctx, stub, account_id, 99, OrderStatus.PARTIALLY_FILLED, filled="2")

    stats = reconcile.sweep_open_orders(ctx, account_id)

    assert stats.unchanged == watched + 1
    assert (set(stats.watch), stats.fill_gaps) == (canceling | {gapped}, {gapped})
    assert stub.requests.count("fills") == 1
    # the account, open orders, ended orders with a gap, the page's orders, their check
    # time, the fill cursor: alike for 1 or 6 watched
    assert stats.queries == 6


def test_watched_orders_without_a_fill_gap_start_no_fill_sync(system: Any) -> None:
    ctx, stub, account_id, _ = system
    add_as_listed(ctx, stub, account_id, 1, OrderStatus.PENDING_CANCEL)
    stats = reconcile.sweep_open_orders(ctx, account_id)
    assert (len(stats.watch), stats.fill_gaps, stats.fill_syncs) == (1, set(), 0)
    assert "fills" not in stub.requests


def test_nothing_stale_costs_no_request(system: Any) -> None:
    ctx, stub, account_id, _ = system
    add_order(ctx, account_id, 1, checked_s_ago=1)
    assert reconcile.sweep_open_orders(ctx, account_id).requests == 0
    assert stub.requests == []


def test_an_order_the_open_listing_lacks_is_looked_up_and_its_close_applied(system: Any) -> None:
    ctx, stub, account_id, _ = system
    order_id = add_order(ctx, account_id, 1)
    stub.orders["b1"] = report(1, OrderStatus.CANCELED)  # closed: not in the open listing

    stats = reconcile.sweep_open_orders(ctx, account_id)

    assert stub.requests == ["list open", "get b1"]
    assert stats.lookups == 1
    assert load(ctx, order_id).status is OrderStatus.CANCELED


def test_lookups_are_bounded_per_sweep(system: Any) -> None:
    ctx, stub, account_id, _ = system
    ctx.settings = ctx.settings.model_copy(update={"sweep_max_single_lookups": 2})
    for n in range(5):
        add_order(ctx, account_id, n)
        stub.orders[f"b{n}"] = report(n, OrderStatus.CANCELED)
    assert reconcile.sweep_open_orders(ctx, account_id).lookups == 2


def test_an_order_is_declared_lost_only_after_three_misses_and_found_again_clears_it(
    system: Any,
) -> None:
    ctx, stub, account_id, clock = system
    order_id = add_order(ctx, account_id, 1)
    for sweep in range(1, 4):
        clock[0] += timedelta(minutes=1)
        stats = reconcile.sweep_open_orders(ctx, account_id)
        order = load(ctx, order_id)
        assert order.miss_count == sweep
        assert (order.lost_at is not None) == (sweep == 3)
        assert order.status is OrderStatus.NEW  # never forced terminal
    assert stats.declared_lost == 1
    with ctx.sessions() as session:
        kinds = session.scalars(select(OrderEvent.kind).where(OrderEvent.order_id == order_id))
        assert list(kinds).count("lost") == 1

    stub.orders["b1"] = report(1, OrderStatus.FILLED, filled="5")  # the broker's truth wins
    clock[0] += timedelta(minutes=1)
    reconcile.sweep_open_orders(ctx, account_id)
    order = load(ctx, order_id)
    assert order.status is OrderStatus.FILLED
    assert order.lost_at is None
    assert order.miss_count == 0


def set_sent(ctx: WorkerContext, order_id: str, sent: bool) -> None:
    with ctx.sessions.begin() as session:
        order = session.get(Order, order_id)
        assert order is not None
        order.sent_at = ctx.now() if sent else None


@pytest.mark.parametrize("sweep", [reconcile.sweep_open_orders, reconcile.deep_reconcile])
def test_a_write_ahead_row_whose_placement_died_is_taken_over(system: Any, sweep: Any) -> None:
    """Within its deadline it is sent again; past it, nothing is sent: a row that may have
    reached the broker is looked up and rejected on a not-found, one that never sent
    anything is rejected at once."""
    ctx, stub, account_id, _ = system
    fresh = add_order(ctx, account_id, 1, broker_id=False, status=OrderStatus.PENDING_NEW,
                      age_s=60)  # fmt: skip  # a GTC limit: 300 s to place it
    unclear = add_order(ctx, account_id, 2, broker_id=False, status=OrderStatus.PENDING_NEW,
                        age_s=400)  # fmt: skip
    never = add_order(ctx, account_id, 3, broker_id=False, status=OrderStatus.PENDING_NEW,
                      age_s=400)  # fmt: skip
    set_sent(ctx, unclear, True)
    set_sent(ctx, never, False)

    stats = sweep(ctx, account_id)

    assert load(ctx, fresh).broker_order_id == "b1"
    for order_id in (unclear, never):
        order = load(ctx, order_id)
        assert order.status is OrderStatus.REJECTED
        assert "never reached the broker" in (order.last_error or "")
    assert stub.requests.count("place c1") == 1
    assert [r for r in stub.requests if r.startswith("place")] == ["place c1"]
    assert [r for r in stub.requests if r.startswith("get-by-client")] == ["get-by-client c2"]
    assert (stats.takeovers, stats.rejected) == (3, 2)


def test_a_write_ahead_row_found_by_client_id_is_tracked(system: Any) -> None:
    ctx, stub, account_id, _ = system
    order_id = add_order(ctx, account_id, 1, broker_id=False, status=OrderStatus.PENDING_NEW,
                         age_s=3600)  # fmt: skip
    stub.orders["b1"] = report(1)
    reconcile.deep_reconcile(ctx, account_id)
    order = load(ctx, order_id)
    assert order.broker_order_id == "b1"
    assert order.status is OrderStatus.NEW


def test_deep_reconciliation_adopts_orders_placed_elsewhere(system: Any) -> None:
    ctx, stub, account_id, _ = system
    stub.orders["b7"] = report(7, OrderStatus.NEW)
    stub.orders["b8"] = replace(report(8, OrderStatus.CANCELED), client_order_id=None)

    stats = reconcile.deep_reconcile(ctx, account_id)
    again = reconcile.deep_reconcile(ctx, account_id)

    assert stats.adopted == 2
    assert again.adopted == 0
    with ctx.sessions() as session:
        adopted = {o.broker_order_id: o for o in session.scalars(select(Order))}
    assert set(adopted) == {"b7", "b8"}
    assert all(o.origin is OrderOrigin.ADOPTED for o in adopted.values())
    assert adopted["b7"].status is OrderStatus.NEW
    assert adopted["b8"].status is OrderStatus.CANCELED
    assert adopted["b8"].client_order_id == "broker-b8"


def test_positions_that_differ_from_the_fills_are_reported_not_corrected(
    system: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ctx, stub, account_id, _ = system
    stub.positions = [PositionReport("MSFT", Decimal(3), Decimal("100"))]
    with caplog.at_level("WARNING", logger="ordersync.alerts"):
        stats = reconcile.deep_reconcile(ctx, account_id)
    assert stats.position_mismatches == ["MSFT: our fills say 0, the broker holds 3"]
    assert "position_mismatch" in caplog.text
    assert "MSFT" in caplog.text


def test_positions_are_compared_from_the_positions_table(system: Any) -> None:
    ctx, stub, account_id, _ = system
    with ctx.sessions.begin() as session:
        for symbol, quantity in (("AAPL", "5"), ("MSFT", "-2")):
            session.add(Position(account_id=account_id, symbol=symbol, quantity=Decimal(quantity),
                                 cost_basis=Decimal(0), realized_pnl=Decimal(0), fees=Decimal(0),
                                 updated_at=T0))  # fmt: skip
    stub.positions = [PositionReport("AAPL", Decimal(5), None),
                      PositionReport("MSFT", Decimal(-3), None)]  # fmt: skip
    stats = reconcile.deep_reconcile(ctx, account_id)
    assert stats.position_mismatches == ["MSFT: our fills say -2, the broker holds -3"]


class AssetBroker(StubBroker):
    """Positions are asset balances, cash included (Binance, Coinbase)."""

    positions_by_asset = True

    def holding_of(self, symbol: str) -> str:
        return PAIRS[symbol][0]

    def quoted_in(self, symbol: str) -> str | None:
        return PAIRS[symbol][1]


PAIRS = {"BTCUSDT": ("BTC", "USDT"), "BTCUSDC": ("BTC", "USDC"), "ETHUSDT": ("ETH", "USDT"),
         "ETHBTC": ("ETH", "BTC")}  # fmt: skip


def _positions(ctx: WorkerContext, account_id: str, held: dict[str, str]) -> None:
    with ctx.sessions.begin() as session:
        for symbol, quantity in held.items():
            session.add(Position(account_id=account_id, symbol=symbol,
                                 quantity=Decimal(quantity), cost_basis=Decimal(0),
                                 realized_pnl=Decimal(0), fees=Decimal(0),
                                 updated_at=T0))  # fmt: skip


def test_asset_balances_are_compared_with_our_positions_in_their_base_asset(
    tmp_path: Path,
) -> None:
    """BTCUSDT and BTCUSDC both hold BTC; cash (USDT) and a coin we never traded (BNB)
    are not ours to compare; a base asset held in another amount is a mismatch."""
    stub = AssetBroker()
    for ctx, _, account_id, _ in _system(tmp_path, stub):
        _positions(ctx, account_id, {"BTCUSDT": "0.5", "BTCUSDC": "0.25", "ETHUSDT": "2"})
        balances = (("BTC", "0.75"), ("ETH", "1.9"), ("USDT", "9000"), ("BNB", "3"))
        stub.positions = [PositionReport(asset, Decimal(q), None) for asset, q in balances]

        stats = reconcile.deep_reconcile(ctx, account_id)

        assert stats.position_mismatches == ["ETH: our fills say 2, the broker holds 1.9"]


def test_a_holding_another_of_our_symbols_pays_with_is_not_compared(tmp_path: Path) -> None:
    """ETHBTC pays with BTC: its trades move the BTC balance, which our BTCUSDT position does
    not follow, so BTC is named as not compared instead of raising a false mismatch."""
    stub = AssetBroker()
    for ctx, _, account_id, _ in _system(tmp_path, stub):
        _positions(ctx, account_id, {"BTCUSDT": "0.5", "ETHBTC": "2", "ETHUSDT": "1"})
        balances = (("BTC", "0.47"), ("ETH", "2.5"), ("USDT", "9000"))
        stub.positions = [PositionReport(asset, Decimal(q), None) for asset, q in balances]

        stats = reconcile.deep_reconcile(ctx, account_id)

        assert stats.positions_not_compared == ["BTC"]
        assert stats.position_mismatches == ["ETH: our fills say 3, the broker holds 2.5"]


def test_a_held_leg_is_not_looked_up_while_its_sibling_is_listed_open(system: Any) -> None:
    """A bracket's stop-loss waits ("held") while its take-profit works, and the open
    listing leaves it out: a lookup per sweep would find it unchanged. Once the sibling is
    no longer listed open, the held leg is looked up."""
    ctx, stub, account_id, _ = system
    parent = add_order(ctx, account_id, 1, status=OrderStatus.FILLED)
    take_profit, stop_loss = add_order(ctx, account_id, 2), add_order(ctx, account_id, 3)
    with ctx.sessions.begin() as session:
        for leg, raw in ((take_profit, "new"), (stop_loss, "held")):
            session.execute(update(Order).where(Order.id == leg)
                            .values(parent_id=parent, raw_status=raw))  # fmt: skip
    stub.orders["b2"] = report(2)
    stub.orders["b3"] = replace(report(3), raw_status="held")  # by id only, as Alpaca

    stats = reconcile.sweep_open_orders(ctx, account_id)

    assert (stats.held_legs, stats.lookups) == (1, 0)
    assert "get b3" not in stub.requests
    stub.orders["b2"] = replace(report(2, OrderStatus.FILLED, filled="5"), raw_status="filled")
    stub.requests.clear()
    stats = reconcile.sweep_open_orders(ctx, account_id)
    assert stats.held_legs == 0
    assert "get b3" in stub.requests


class FeeBroker(StubBroker):
    """Posts crypto fees apart from the fills, one page of them."""

    lists_fees = True

    def __init__(self) -> None:
        super().__init__()
        self.fees: list[FeeReport] = []

    def list_fees(self, **_: Any) -> Page[FeeReport]:
        self.requests.append("fees")
        return Page(tuple(self.fees))


def _bought(ctx: WorkerContext, account_id: str, symbol: str, quantity: str) -> None:
    """A filled buy of ours, as its fill moved the position."""
    with ctx.sessions.begin() as session:
        order = Order(account_id=account_id, broker=BrokerKind.ALPACA, client_order_id="c-btc",
                      broker_order_id="b-btc", origin=OrderOrigin.PLACED, symbol=symbol,
                      side=Side.BUY, order_type=OrderType.MARKET, time_in_force=TimeInForce.GTC,
                      quantity=Decimal(quantity), status=OrderStatus.FILLED,
                      filled_quantity=Decimal(quantity), broker_filled_quantity=Decimal(quantity),
                      created_at=T0, updated_at=T0)  # fmt: skip
        session.add(order)
        session.flush()
        session.add(Fill(order_id=order.id, broker_fill_id="f-btc", quantity=Decimal(quantity),
                         price=Decimal(60000), filled_at=T0, recorded_at=T0,
                         source=ReportSource.DEEP))  # fmt: skip
        session.add(Position(account_id=account_id, symbol=symbol, quantity=Decimal(quantity),
                             cost_basis=Decimal(quantity) * 60000, realized_pnl=Decimal(0),
                             fees=Decimal(0), updated_at=T0))  # fmt: skip


def test_a_crypto_position_short_by_fees_still_to_post_is_no_mismatch_until_they_post(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stub = FeeBroker()
    for ctx, _, account_id, _ in _system(tmp_path, stub):
        _bought(ctx, account_id, "BTC/USD", "0.01")
        stub.positions = [PositionReport("BTC/USD", Decimal("0.009975"), None)]
        with caplog.at_level("WARNING", logger="ordersync.alerts"):
            stats = reconcile.deep_reconcile(ctx, account_id)
        assert stats.position_mismatches == []
        assert stats.fees_to_post == [
            "BTC/USD: our fills say 0.01, the broker holds 0.009975 (fees to post)"
        ]
        assert "position_mismatch" not in caplog.text

        stub.fees = [FeeReport("20261121000000000::a", "BTC/USD", Decimal("0.000025"),
                               Decimal(60000), Decimal("1.5"), "USD", T0)]  # fmt: skip
        for _ in range(2):  # the same listing again records nothing twice
            stats = reconcile.deep_reconcile(ctx, account_id)
            assert (stats.position_mismatches, stats.fees_to_post) == ([], [])
        with ctx.sessions() as session:
            assert session.scalars(select(FeePosting.broker_fee_id)).all() == [
                "20261121000000000::a"
            ]
            held = session.get(Position, (account_id, "BTC/USD"))
            assert held is not None
            assert held.quantity == Decimal("0.009975")

        stub.positions = [PositionReport("BTC/USD", Decimal("0.0099"), None)]
        stats = reconcile.deep_reconcile(ctx, account_id)  # more than any fee: a mismatch
        assert stats.position_mismatches == [
            "BTC/USD: our fills say 0.009975, the broker holds 0.0099"
        ]


class RenamingFeeBroker(FeeBroker):
    """Names positions apart from the symbols its orders trade (BTC/USD held as BTCUSD)."""

    def holding_of(self, symbol: str) -> str:
        return symbol.replace("/", "")


def test_fees_to_post_are_allowed_for_a_holding_named_apart_from_its_symbol(
    tmp_path: Path,
) -> None:
    stub = RenamingFeeBroker()
    for ctx, _, account_id, _ in _system(tmp_path, stub):
        _bought(ctx, account_id, "BTC/USD", "0.01")
        stub.positions = [PositionReport("BTCUSD", Decimal("0.009975"), None)]
        stats = reconcile.deep_reconcile(ctx, account_id)
        assert stats.position_mismatches == []
        assert stats.fees_to_post == [
            "BTCUSD: our fills say 0.01, the broker holds 0.009975 (fees to post)"
        ]


def test_a_fee_short_of_an_equity_position_is_a_mismatch(tmp_path: Path) -> None:
    stub = FeeBroker()
    for ctx, _, account_id, _ in _system(tmp_path, stub):
        _bought(ctx, account_id, "AAPL", "100")
        stub.positions = [PositionReport("AAPL", Decimal("99.99"), None)]
        stats = reconcile.deep_reconcile(ctx, account_id)
        assert stats.position_mismatches == ["AAPL: our fills say 100, the broker holds 99.99"]
        assert stats.fees_to_post == []


class FillessBroker(StubBroker):
    """A broker with no executions endpoint: its fills are derived from its order figures."""

    lists_fills = False

    def list_fills(self, **_: Any) -> Page[Any]:
        raise AssertionError("this broker lists no fills")


@pytest.mark.parametrize("run", ["sweep", "deep"])
def test_fills_of_a_broker_without_a_fill_listing_are_derived_once(system: Any, run: str) -> None:
    ctx, _, account_id, clock = system
    broker = FillessBroker()
    ctx.adapter = lambda account: broker
    sweep = reconcile.sweep_open_orders if run == "sweep" else reconcile.deep_reconcile
    order_id = add_order(ctx, account_id, 1)
    broker.orders["b1"] = replace(report(1, OrderStatus.PARTIALLY_FILLED, filled="2"),
                                  average_fill_price=Decimal("10"))  # fmt: skip

    first = sweep(ctx, account_id)
    clock[0] += timedelta(minutes=1)
    again = sweep(ctx, account_id)  # the same figures: nothing more
    broker.orders["b1"] = replace(report(1, OrderStatus.FILLED, filled="5"),
                                  average_fill_price=Decimal("10.6"))  # fmt: skip
    clock[0] += timedelta(minutes=1)
    last = sweep(ctx, account_id)

    assert (first.fills_derived, again.fills_derived, last.fills_derived) == (1, 0, 1)
    with ctx.sessions() as session:
        fills = session.scalars(select(Fill).where(Fill.order_id == order_id)
                                .order_by(Fill.quantity)).all()  # fmt: skip
        assert [(f.broker_fill_id, f.quantity, f.price) for f in fills] == [
            ("derived-b1-2", Decimal(2), Decimal(10)), ("derived-b1-5", Decimal(3), Decimal(11)),
        ]  # fmt: skip
    order = load(ctx, order_id)
    assert (order.status, order.filled_quantity, order.fill_gap) == (
        OrderStatus.FILLED,
        Decimal(5),
        Decimal(0),
    )
    assert order.average_fill_price == Decimal("10.6")


class FillListingBroker(StubBroker):
    """A stub that also lists its fills, after a cursor (the last fill's id)."""

    def __init__(self) -> None:
        super().__init__()
        self.fills: list[FillReport] = []

    def list_fills(self, *, page_token: str | None = None, **_: Any) -> Page[FillReport]:
        self.requests.append("fills")
        ids = [f.broker_fill_id for f in self.fills]
        start = ids.index(page_token) + 1 if page_token in ids else 0
        return Page(tuple(self.fills[start:]))

    def fill_cursor(self, fill: FillReport) -> str:
        return fill.broker_fill_id


def reject_as_never_placed(unit: UnitWorker, order_id: str, reason: str) -> None:
    """What placement and the miss policy do to a write-ahead row: our own REJECTED."""
    now = unit.clock[0]
    with unit.ctx.sessions.begin() as session:
        order = session.get(Order, order_id)
        assert order is not None
        order.last_error = reason
        applied = local_transition(load_state(session, order), OrderStatus.REJECTED, now=now,
                                   detail=reason)  # fmt: skip
        record_applied(session, order, applied, now=now, source=ReportSource.DEEP)


@pytest.mark.parametrize("fills_from", ["the report", "the fill listing"])
def test_a_row_we_rejected_takes_the_brokers_status_and_fills_when_it_lists_the_order(
    unit: UnitWorker, fills_from: str
) -> None:
    order_id = unit.add_order("c1")  # PENDING_NEW, no broker id: paired by client id
    reject_as_never_placed(unit, order_id, "never reached the broker: not found in 3 lookups")
    assert unit.order(order_id).status is OrderStatus.REJECTED
    broker = FillListingBroker()
    unit.adapter = broker
    executions = (
        FillReport("f1", "b1", "AAPL", Side.BUY, Decimal(2), Decimal("10"), T0),
        FillReport("f2", "b1", "AAPL", Side.BUY, Decimal(3), Decimal("10.5"), T0),
    )
    listed = replace(report(1, OrderStatus.FILLED, filled="5"), average_fill_price=Decimal("10.3"))
    if fills_from == "the report":
        listed = replace(listed, fills=executions)
    else:
        broker.fills = list(executions)
    broker.orders["b1"] = listed
    broker.positions = [PositionReport("AAPL", Decimal(5), None)]
    unit.clock[0] += timedelta(minutes=10)

    stats = reconcile.deep_reconcile(unit.ctx, unit.account_id)

    order = unit.order(order_id)
    assert (order.status, order.broker_order_id, order.raw_status) == (
        OrderStatus.FILLED, "b1", "filled",
    )  # fmt: skip
    assert (order.filled_quantity, order.fill_gap, order.average_fill_price) == (
        Decimal(5), Decimal(0), Decimal("10.3"),
    )  # fmt: skip
    assert (order.anomaly_count, order.last_error) == (0, None)
    assert stats.adopted == 0
    assert stats.position_mismatches == []  # the fills moved the position, as the broker's
    with unit.ctx.sessions() as session:
        fills = session.scalars(select(Fill.broker_fill_id).where(Fill.order_id == order_id))
        assert sorted(fills) == ["f1", "f2"]
        position = session.get(Position, (unit.account_id, "AAPL"))
        assert position is not None
        assert position.quantity == Decimal(5)
        details = session.scalars(
            select(OrderEvent.detail)
            .where(OrderEvent.order_id == order_id, OrderEvent.from_status == OrderStatus.REJECTED)
        ).all()  # fmt: skip
        assert len(details) == 1
        assert "local conclusion overturned" in (details[0] or "")
        events = session.scalars(
            select(OutboxEvent.kind).where(OutboxEvent.order_id == order_id)
            .order_by(OutboxEvent.id)
        ).all()  # fmt: skip
    assert events[:2] == ["ORDER_REJECTED", "ORDER_ACCEPTED"]
    assert events[-1] == "ORDER_FILLED"
    assert "ORDER_ERROR" not in events


def test_a_young_write_ahead_row_without_a_task_or_chain_is_taken_over_by_the_sweep(
    system: Any,
) -> None:
    """A Redis restart loses both the placement's lease and its monitor chain: the sweep
    does not wait for the row to be ``SWEEP_FRESH_S`` old, its deadline may be sooner."""
    ctx, stub, account_id, _ = system
    orphan = add_order(ctx, account_id, 1, broker_id=False, status=OrderStatus.PENDING_NEW,
                       age_s=10)  # fmt: skip
    watched = add_order(ctx, account_id, 2, broker_id=False, status=OrderStatus.PENDING_NEW,
                        age_s=10)  # fmt: skip
    start_chain(ctx, watched)  # its monitor takes it over itself
    set_sent(ctx, orphan, True)
    reconcile.sweep_open_orders(ctx, account_id)
    assert load(ctx, orphan).broker_order_id == "b1"
    assert load(ctx, watched).broker_order_id is None
    assert [r for r in stub.requests if r.startswith("place")] == ["place c1"]


def test_an_ended_order_with_a_fill_gap_is_watched_and_its_fills_fetched_by_the_sweep(
    system: Any,
) -> None:
    """Its monitor chain may have died with a worker: the 30-second sweep picks it up, not
    only deep reconciliation minutes later."""
    ctx, stub, account_id, _ = system
    order_id = add_order(ctx, account_id, 1, status=OrderStatus.FILLED, checked_s_ago=1)
    with ctx.sessions.begin() as session:
        order = session.get(Order, order_id)
        assert order is not None
        order.broker_filled_quantity, order.closed_at = Decimal(5), ctx.now()
    stats = reconcile.sweep_open_orders(ctx, account_id)
    assert (stats.watch, stats.fill_gaps) == ([order_id], {order_id})
    assert stub.requests.count("fills") == 1


class PerSymbolBroker(StubBroker):
    """A broker that lists one symbol at a time (Binance): it sees only what it is asked."""

    lists_by_symbol = True

    def __init__(self) -> None:
        super().__init__()
        self.symbols_asked: list[tuple[str, ...]] = []

    def list_orders(self, *, status: str = "all", page_token: str | None = None,
                    symbols: Sequence[str] = (), **_: Any) -> Page[OrderReport]:  # fmt: skip
        self.symbols_asked.append(tuple(symbols))
        return super().list_orders(status=status, page_token=page_token)


def test_a_broker_that_lists_per_symbol_is_asked_for_the_symbols_of_our_orders(
    tmp_path: Path,
) -> None:
    stub = PerSymbolBroker()
    for ctx, _, account_id, _ in _system(tmp_path, stub):
        first, second = add_order(ctx, account_id, 1), add_order(ctx, account_id, 2)
        with ctx.sessions() as session:
            order = session.get(Order, second)
            assert order is not None
            order.symbol = "BTCUSDT"
            session.commit()
        stub.orders = {"b1": report(1), "b2": replace(report(2), symbol="BTCUSDT")}

        stats = reconcile.sweep_open_orders(ctx, account_id)

        assert stub.symbols_asked == [("AAPL", "BTCUSDT")]
        assert stats.local_orders == 2
        assert {load(ctx, first).raw_status, load(ctx, second).raw_status} == {"new"}


def test_a_broker_that_lists_the_whole_account_is_given_no_symbols(system: Any) -> None:
    ctx, stub, account_id, _ = system
    add_order(ctx, account_id, 1)
    stub.orders["b1"] = report(1)
    asked: list[Any] = []
    listing = stub.list_orders

    def recording(**kwargs: Any) -> Page[OrderReport]:
        asked.append(kwargs["symbols"])
        return listing(**kwargs)

    stub.list_orders = recording  # type: ignore[method-assign]
    reconcile.sweep_open_orders(ctx, account_id)

    assert asked == [[]]
