"""The account fill sync: cursor paging, parking fills of orders not yet known by broker
id, and adopting them once the id is stored (fakeredis, SQLite, a stub adapter)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import BrokerKind, OrderOrigin, OrderStatus, OrderType, Side, TimeInForce
from core.reports import FillReport, MalformedItem, Page
from models import migrate
from models.accounts import ensure_account
from models.db import make_engine, make_sessionmaker
from models.orders import Fill, Order
from ordersync.settings import Settings
from worker import fills, tasks
from worker.context import WorkerContext

T0 = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)


class StubAdapter:
    """Serves fills after a cursor, two per page, like an activities endpoint."""

    lists_by_symbol = False  # lists the whole account's fills

    def __init__(self) -> None:
        self.fills: list[FillReport] = []
        self.calls: list[str | None] = []

    def list_fills(self, *, page_token: str | None = None, **_: Any) -> Page[FillReport]:
        self.calls.append(page_token)
        ids = [f.broker_fill_id for f in self.fills]
        start = ids.index(page_token) + 1 if page_token else 0
        items = tuple(self.fills[start : start + 2])
        more = start + 2 < len(self.fills)
        return Page(items, next_token=items[-1].broker_fill_id if more else None)

    def fill_cursor(self, fill: FillReport) -> str:
        return fill.broker_fill_id


def _fill(n: int, broker_order_id: str, qty: str = "1") -> FillReport:
    return FillReport(f"f{n:03d}", broker_order_id, "AAPL", Side.BUY, Decimal(qty),
                      Decimal("10"), T0)  # fmt: skip


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[tuple[WorkerContext, StubAdapter, str]]:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        account = ensure_account(session, name="a", broker=BrokerKind.ALPACA, base_url="x",
                                 credentials_env="X", rate_limit_per_min=1, now=T0)  # fmt: skip
        for broker_id in ("b-known", None):
            session.add(Order(
                account_id=account.id, broker=BrokerKind.ALPACA,
                client_order_id=f"c-{broker_id}", broker_order_id=broker_id,
                origin=OrderOrigin.PLACED, symbol="AAPL", side=Side.BUY,
                order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY,
                quantity=Decimal(3), status=OrderStatus.NEW if broker_id else
                OrderStatus.PENDING_NEW, created_at=T0, updated_at=T0,
            ))  # fmt: skip
        session.commit()
        account_id = account.id
    stub = StubAdapter()
    context = WorkerContext(Settings(_env_file=None), engine, sessions,  # type: ignore[call-arg]
                            fakeredis.FakeRedis(decode_responses=True), None,  # type: ignore[arg-type]
                            now=lambda: T0)  # fmt: skip
    context.adapter = lambda account: stub  # type: ignore[method-assign]
    yield context, stub, account_id
    engine.dispose()


def _recorded(ctx: WorkerContext) -> list[str]:
    with Session(ctx.engine) as session:
        return sorted(session.scalars(select(Fill.broker_fill_id)))


def test_sync_pages_from_the_cursor_and_records_each_fill_once(ctx: Any) -> None:
    context, stub, account_id = ctx
    stub.fills = [_fill(1, "b-known"), _fill(2, "b-known"), _fill(3, "b-known")]
    result = fills.sync_now(context, account_id)
    assert (result.recorded, result.pages) == (3, 2)
    assert _recorded(context) == ["f001", "f002", "f003"]
    assert fills.sync_now(context, account_id).recorded == 0
    assert stub.calls[-1] == "f003"  # the next sync starts after the last fill seen


def test_fills_of_an_order_not_yet_known_are_parked_then_adopted(ctx: Any) -> None:
    context, stub, account_id = ctx
    stub.fills = [_fill(1, "b-late", "2"), _fill(2, "b-known")]
    result = fills.sync_now(context, account_id)
    assert (result.recorded, result.unmatched) == (1, 1)
    assert _recorded(context) == ["f002"]
    assert fills.adopt_parked(context, account_id, "b-late") == 0  # still unknown: kept

    with Session(context.engine) as session:  # the placement's answer is committed
        order = session.scalar(select(Order).where(Order.client_order_id == "c-None"))
        assert order is not None
        order.broker_order_id, order.status = "b-late", OrderStatus.NEW
        session.commit()
    assert fills.adopt_parked(context, account_id, "b-late") == 1
    assert _recorded(context) == ["f001", "f002"]
    assert fills.adopt_parked(context, account_id, "b-late") == 0  # adopted once


def test_a_parked_fill_survives_a_json_round_trip() -> None:
    fill = _fill(7, "b-x", "0.000000001")
    assert fills.fill_from_json(fills.fill_to_json(fill)) == fill


def test_adoption_deletes_only_what_it_applied(ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fill parked while adoption runs must stay parked, not be deleted with the rest."""
    context, _stub, account_id = ctx
    fills.park(context, account_id, [_fill(1, "b-known")])
    real_apply = fills.apply_fills

    def apply_while_another_fill_is_parked(*args: Any, **kwargs: Any) -> Any:
        fills.park(context, account_id, [_fill(2, "b-known")])  # a concurrent sync
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(fills, "apply_fills", apply_while_another_fill_is_parked)
    assert fills.adopt_parked(context, account_id, "b-known") == 1
    monkeypatch.setattr(fills, "apply_fills", real_apply)
    assert fills.adopt_parked(context, account_id, "b-known") == 1
    assert _recorded(context) == ["f001", "f002"]


def test_a_page_with_nothing_readable_moves_the_cursor_on(ctx: Any) -> None:
    context, stub, account_id = ctx
    pages = iter([
        Page((), next_token="f050", malformed=(MalformedItem("garbage", {}),) * 2),
        Page((_fill(51, "b-known"),), next_token=None),
    ])  # fmt: skip
    stub.list_fills = lambda **kwargs: (stub.calls.append(kwargs.get("page_token")),  # type: ignore[method-assign]
                                        next(pages))[1]  # fmt: skip
    result = fills.sync_now(context, account_id)
    assert (result.recorded, result.pages) == (1, 2)
    assert stub.calls == [None, "f050"]


class EndlessPages(StubAdapter):
    """An account whose fills never stop coming: every page says there is another."""

    def __init__(self, on_page: Callable[[int], None] = lambda _: None) -> None:
        super().__init__()
        self.on_page = on_page

    def list_fills(self, *, page_token: str | None = None, **_: Any) -> Page[FillReport]:
        n = len(self.calls) + 1
        self.calls.append(page_token)
        if n > 1000:
            raise AssertionError("the sync never stops")
        self.on_page(n)
        return Page((_fill(n, "b-known", "0.001"),), next_token=f"f{n:03d}")


def test_a_sync_stops_at_its_page_cap_and_leaves_the_rest_for_the_next(
    ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    context, _stub, account_id = ctx
    endless = EndlessPages()
    context.adapter = lambda account: endless
    monkeypatch.setattr(fills, "MAX_PAGES", 5)
    first = fills.sync_now(context, account_id)
    assert (first.pages, first.recorded, first.more) == (5, 5, True)
    assert context.redis.exists("ordersync:fills:dirty:" + account_id)  # not consumed
    second = fills.sync_fills(context, account_id)  # the task re-enqueued, or the next step
    assert (second.pages, second.more) == (5, True)
    assert endless.calls[5] == "f005"  # it goes on from the cursor
    assert len(_recorded(context)) == 10


def test_a_cap_reached_between_rounds_keeps_the_request(ctx: Any) -> None:
    """A sync asked for again while it ran, with its pages spent, leaves the mark for later."""
    context, stub, account_id = ctx
    stub.fills = [_fill(1, "b-known")]
    dirty = "ordersync:fills:dirty:" + account_id
    plain = stub.list_fills

    def asked_again(**kwargs: Any) -> Page[FillReport]:
        context.redis.set(dirty, 1)  # a monitor asks for a sync meanwhile
        return plain(**kwargs)

    stub.list_fills = asked_again
    context.redis.set(dirty, 1)
    result = fills.sync_fills(context, account_id, max_pages=1)
    assert (result.pages, result.recorded, result.more) == (1, 1, True)
    assert context.redis.exists(dirty)


def test_the_sync_task_enqueues_the_rest(ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    context, _stub, account_id = ctx
    context.adapter = lambda account: EndlessPages()
    monkeypatch.setattr(fills, "MAX_PAGES", 3)
    monkeypatch.setattr(tasks, "context", lambda: context)
    queued: list[str] = []
    monkeypatch.setattr(tasks.sync_fills, "delay", queued.append)
    context.redis.set("ordersync:fills:dirty:" + account_id, 1)
    tasks.sync_fills.run(account_id)
    assert queued == [account_id]


def test_a_long_sync_keeps_the_callers_lock_alive(ctx: Any) -> None:
    context, _stub, account_id = ctx
    renewed: list[int] = []
    endless = EndlessPages()
    context.adapter = lambda account: endless
    result = fills.sync_now(context, account_id, keep_alive=lambda: renewed.append(1))
    assert result.pages == fills.MAX_PAGES
    assert len(renewed) == fills.MAX_PAGES  # after every page


class PerSymbolAdapter(StubAdapter):
    """A broker that lists fills one symbol at a time (Binance): asked without a symbol, it
    has nothing to say; its tokens hold no symbol, so each must come back to its own."""

    lists_by_symbol = True

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[tuple[str, ...], str | None]] = []

    def list_fills(self, *, page_token: str | None = None, symbols: tuple[str, ...] = (),
                   **_: Any) -> Page[FillReport]:  # fmt: skip
        self.asked.append((tuple(symbols), page_token))
        assert len(symbols) == 1, "one symbol a call"
        mine = [f for f in self.fills if f.symbol == symbols[0]]
        ids = [f.broker_fill_id for f in mine]
        start = ids.index(page_token) + 1 if page_token else 0
        items = tuple(mine[start : start + 2])
        more = start + 2 < len(mine)
        return Page(items, next_token=items[-1].broker_fill_id if more else None)


def test_a_broker_listing_per_symbol_is_read_per_symbol_each_from_its_own_cursor(
    ctx: Any,
) -> None:
    context, _, account_id = ctx
    stub = PerSymbolAdapter()
    context.adapter = lambda account: stub
    with Session(context.engine) as session:
        rows = [("BTCUSDT", OrderStatus.NEW, 0), ("OLDUSDT", OrderStatus.FILLED, 10)]
        for n, (symbol, status, age) in enumerate(rows):
            session.add(Order(
                account_id=account_id, broker=BrokerKind.ALPACA, client_order_id=f"c-{n}",
                broker_order_id=f"{symbol}:{n}", origin=OrderOrigin.PLACED, symbol=symbol,
                side=Side.BUY, order_type=OrderType.MARKET, time_in_force=TimeInForce.GTC,
                quantity=Decimal(10), status=status, created_at=T0 - timedelta(days=age),
                updated_at=T0 - timedelta(days=age),
            ))  # fmt: skip
        session.commit()
    btc = [replace(_fill(n, "BTCUSDT:0"), symbol="BTCUSDT") for n in (1, 2, 3)]
    stub.fills = [_fill(4, "b-known"), *btc]

    first = fills.sync_now(context, account_id)

    assert (first.recorded, first.pages) == (4, 3)  # AAPL 1 page, BTCUSDT 2; OLDUSDT never
    assert {symbols for symbols, _ in stub.asked} == {("AAPL",), ("BTCUSDT",)}
    assert fills.load_cursor(context, account_id, "BTCUSDT") == "f003"
    assert fills.load_cursor(context, account_id, "AAPL") == "f004"
    assert fills.load_cursor(context, account_id) is None  # no whole-account cursor
    stub.fills.append(replace(_fill(5, "BTCUSDT:0"), symbol="BTCUSDT"))
    stub.asked.clear()

    assert fills.sync_now(context, account_id).recorded == 1
    assert sorted(stub.asked) == [(("AAPL",), "f004"), (("BTCUSDT",), "f003")]
    assert _recorded(context) == ["f001", "f002", "f003", "f004", "f005"]
