"""Replacing a working order against a stub broker (SQLite, fakeredis): the replacing row
is written first and linked, inherits the trading context, is sent as a replace (never as
an order of its own), and is settled as a placement is; refusals write nothing."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from brokers.errors import AnswerLost, OrderRejected
from core.enums import Intent, OrderStatus, OrderType, ReportSource, Side, TimeInForce
from core.reports import OrderReport, PlaceOrderRequest, ReplaceOrderRequest
from models.orders import Order, OrderEvent
from models.outbox import OutboxEvent
from models.repository import apply_to_order
from tests.models.factories import fill
from tests.worker.conftest import UnitWorker
from tests.worker.test_placement import exit_args, open_trade
from worker.args import InvalidTaskArguments, ReplaceOrderArgs
from worker.placement import place_order
from worker.replacing import NotReplaceable, replace_order, replace_terms


def _report(broker_id: str, client_id: str, quantity: Decimal, tif: TimeInForce,
            limit: Decimal | None, status: OrderStatus = OrderStatus.NEW,
            order_type: OrderType = OrderType.LIMIT, replaces: str | None = None,
            side: Side = Side.BUY) -> OrderReport:  # fmt: skip
    now = datetime.now(UTC)
    return OrderReport(
        broker_order_id=broker_id, client_order_id=client_id, symbol="AAPL", side=side,
        order_type=order_type, time_in_force=tif, quantity=quantity, status=status,
        raw_status=status.value.lower(), filled_quantity=Decimal(0), average_fill_price=None,
        created_at=now, updated_at=now, limit_price=limit, replaces=replaces,
    )  # fmt: skip


class ReplacingBroker:
    """Places and replaces every order; loses the first ``lose`` replace answers, or
    refuses replaces with ``refuse``."""

    refuses_reused_client_ids = True  # as Alpaca: a second send is refused

    def __init__(self, lose: int = 0, refuse: str | None = None) -> None:
        self.lose = lose
        self.refuse = refuse
        self.by_client: dict[str, OrderReport] = {}
        self.calls: list[tuple[Any, ...]] = []

    def place(self, request: PlaceOrderRequest) -> OrderReport:
        self.calls.append(("place", request.client_order_id))
        report = _report(f"b-{request.client_order_id}", request.client_order_id,
                         request.quantity, request.time_in_force, request.limit_price,
                         order_type=request.order_type, side=request.side)  # fmt: skip
        self.by_client[request.client_order_id] = report
        return report

    def replace(self, broker_order_id: str, request: ReplaceOrderRequest) -> OrderReport:
        self.calls.append(("replace", broker_order_id, request))
        if self.refuse:
            raise OrderRejected(self.refuse, broker_order_id=broker_order_id)
        old = next(r for r in self.by_client.values() if r.broker_order_id == broker_order_id)
        report = dataclasses.replace(
            _report(f"b-{request.client_order_id}", request.client_order_id, request.quantity,
                    request.time_in_force, request.limit_price, OrderStatus.NEW,
                    order_type=old.order_type, replaces=broker_order_id, side=old.side),
            stop_price=request.stop_price, raw_status="accepted",
        )  # fmt: skip
        self.by_client[request.client_order_id] = report
        if self.lose:
            self.lose -= 1
            raise AnswerLost("504", client_order_id=request.client_order_id)
        return report

    def get_order_by_client_id(self, client_order_id: str, **_: Any) -> OrderReport:
        self.calls.append(("lookup", client_order_id))
        return self.by_client[client_order_id]


def placed(unit: UnitWorker, client_order_id: str = "old-1", **terms: Any) -> str:
    from worker.args import PlaceOrderArgs

    fields: dict[str, Any] = {
        "account": "a", "symbol": "AAPL", "side": Side.BUY, "quantity": "10",
        "order_type": OrderType.LIMIT, "limit_price": "100", "time_in_force": TimeInForce.GTC,
        "client_order_id": client_order_id, "intent": Intent.ENTRY, "decision_id": "d-7",
    } | terms  # fmt: skip
    return place_order(unit.ctx, PlaceOrderArgs(**fields), task_id=f"t-{client_order_id}").order_id


def replace_args(order_id: str, **changes: Any) -> ReplaceOrderArgs:
    return ReplaceOrderArgs(account="a", order_id=order_id, **changes)


def history(unit: UnitWorker, order_id: str) -> list[tuple[str, str | None]]:
    with unit.ctx.sessions() as session:
        rows = session.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id)
                               .order_by(OrderEvent.id))  # fmt: skip
        return [(row.kind, row.detail) for row in rows]


def test_a_replacement_is_written_linked_sent_as_a_replace_and_inherits_the_trade(
    unit: UnitWorker,
) -> None:
    unit.adapter = broker = ReplacingBroker()
    old_id = placed(unit)
    broker.calls.clear()
    result = replace_order(
        unit.ctx,
        replace_args(old_id, limit_price="101.5", new_client_order_id="new-1"),
        task_id="r-1",
    )
    new = unit.order(result.placed.order_id)
    assert result.replaced_id == old_id
    assert broker.calls == [("replace", "b-old-1", ReplaceOrderRequest(
        client_order_id="new-1", quantity=Decimal(10), time_in_force=TimeInForce.GTC,
        limit_price=Decimal("101.5"), stop_price=None))]  # fmt: skip
    assert (new.replaces_id, new.broker_order_id, new.status) == (old_id, "b-new-1",
                                                                  OrderStatus.NEW)  # fmt: skip
    assert (new.intent, new.decision_id, new.trade_id) == (Intent.ENTRY, "d-7", "d-7")
    assert (new.symbol, new.side, new.order_type) == ("AAPL", Side.BUY, OrderType.LIMIT)
    assert unit.order(old_id).replaced_by_id is None  # until the broker says it is replaced
    assert history(unit, old_id)[-1] == ("replace_requested", (
        f"replacement requested: order {new.id} (client order id new-1), quantity 10, "
        "time_in_force gtc, limit_price 101.5"))  # fmt: skip
    assert history(unit, new.id)[0][1].startswith(f"replaces order {old_id} (broker order b-old-1)")


def test_the_replaced_orders_report_links_both_rows_and_its_event_says_so(
    unit: UnitWorker,
) -> None:
    unit.adapter = ReplacingBroker()
    old_id = placed(unit)
    new_id = replace_order(unit.ctx, replace_args(old_id, limit_price="101"),
                           task_id="r-2").placed.order_id  # fmt: skip
    new_broker_id = unit.order(new_id).broker_order_id
    replaced = dataclasses.replace(
        _report("b-old-1", "old-1", Decimal(10), TimeInForce.GTC, Decimal(100),
                OrderStatus.REPLACED), replaced_by=new_broker_id, raw_status="replaced",
    )  # fmt: skip
    with unit.ctx.sessions.begin() as session:
        old = session.get(Order, old_id)
        assert old is not None
        apply_to_order(session, old, replaced, now=unit.clock[0], source=ReportSource.MONITOR)
    old = unit.order(old_id)
    assert (old.status, old.replaced_by_id) == (OrderStatus.REPLACED, new_id)
    assert history(unit, old_id)[-1] == ("transition",
                                         f"replaced by broker order {new_broker_id}")  # fmt: skip
    with unit.ctx.sessions() as session:
        event = session.scalars(select(OutboxEvent).where(OutboxEvent.order_id == old_id)
                                .order_by(OutboxEvent.id.desc())).first()  # fmt: skip
    assert event is not None
    assert event.kind == "ORDER_CANCELLED"
    assert f'"replaced_by_id": "{new_id}"' in event.payload


def test_the_quantity_defaults_to_what_the_order_has_left(unit: UnitWorker) -> None:
    unit.adapter = broker = ReplacingBroker()
    old_id = placed(unit)
    with unit.ctx.sessions.begin() as session:
        old = session.get(Order, old_id)
        assert old is not None
        apply_to_order(session, old, fill("f-1", "4", "100", broker_order_id="b-old-1"),
                       now=unit.clock[0], source=ReportSource.MONITOR)  # fmt: skip
    replace_order(unit.ctx, replace_args(old_id, limit_price="99"), task_id="r-3")
    sent = broker.calls[-1][2]
    assert sent.quantity == Decimal(6)


def test_a_lost_replace_answer_is_settled_by_a_lookup_never_a_second_replace(
    unit: UnitWorker,
) -> None:
    unit.adapter = broker = ReplacingBroker(lose=1)
    old_id = placed(unit)
    broker.calls.clear()
    result = replace_order(
        unit.ctx, replace_args(old_id, quantity="3", new_client_order_id="n-2"), task_id="r-4"
    )
    assert [c[0] for c in broker.calls] == ["replace", "lookup"]
    assert unit.order(result.placed.order_id).broker_order_id == "b-n-2"


def test_a_redelivered_call_finds_its_row_and_sends_nothing_more(unit: UnitWorker) -> None:
    unit.adapter = broker = ReplacingBroker()
    old_id = placed(unit)
    first = replace_order(unit.ctx, replace_args(old_id, quantity="3"), task_id="r-5")
    broker.calls.clear()
    again = replace_order(unit.ctx, replace_args(old_id, quantity="3"), task_id="r-5")
    assert again.placed.order_id == first.placed.order_id
    assert broker.calls == []


def test_the_brokers_refusal_rejects_the_replacement_and_leaves_the_order(
    unit: UnitWorker,
) -> None:
    unit.adapter = ReplacingBroker(refuse="order is not replaceable (status pending_cancel)")
    old_id = placed(unit)
    new_id = replace_order(unit.ctx, replace_args(old_id, quantity="3"),
                           task_id="r-6").placed.order_id  # fmt: skip
    new = unit.order(new_id)
    assert new.status is OrderStatus.REJECTED
    assert "order is not replaceable" in (new.last_error or "")
    assert unit.order(old_id).status is OrderStatus.NEW


def _set(unit: UnitWorker, order_id: str, **values: Any) -> None:
    with unit.ctx.sessions.begin() as session:
        order = session.get(Order, order_id)
        assert order is not None
        for name, value in values.items():
            setattr(order, name, value)


@pytest.mark.parametrize(
    ("setup", "changes", "problem"),
    [
        ({"status": OrderStatus.FILLED}, {"quantity": "2"},
         "is FILLED: only a working order can be replaced"),
        ({"status": OrderStatus.PENDING_NEW, "broker_order_id": None}, {"quantity": "2"},
         "is not acknowledged by the broker yet"),
        ({"status": OrderStatus.PENDING_CANCEL}, {"quantity": "2"}, "has a cancel pending"),
        ({}, {"stop_price": "90"}, "stop_price does not apply to a limit order"),
        ({}, {"quantity": "10"}, "the changes leave order"),
        ({}, {"limit_price": "100", "time_in_force": TimeInForce.GTC}, "the changes leave"),
    ],
)  # fmt: skip
def test_a_replace_that_cannot_be_done_is_refused_and_writes_nothing(
    unit: UnitWorker, setup: dict[str, Any], changes: dict[str, Any], problem: str
) -> None:
    unit.adapter = broker = ReplacingBroker()
    old_id = placed(unit)
    _set(unit, old_id, **setup)
    broker.calls.clear()
    with pytest.raises(InvalidTaskArguments, match=problem):
        replace_order(unit.ctx, replace_args(old_id, **changes), task_id="r-7")
    assert broker.calls == []
    with unit.ctx.sessions() as session:
        assert session.scalar(select(Order.id).where(Order.replaces_id == old_id)) is None


def test_a_second_replace_waits_for_the_first(unit: UnitWorker) -> None:
    unit.adapter = ReplacingBroker()
    old_id = placed(unit)
    first = replace_order(unit.ctx, replace_args(old_id, quantity="3"), task_id="r-8")
    with pytest.raises(
        InvalidTaskArguments, match=f"being replaced already, by order {first.placed.order_id}"
    ):
        replace_order(unit.ctx, replace_args(old_id, quantity="4"), task_id="r-9")


def test_an_unknown_order_or_a_client_id_taken_by_another_order_is_refused(
    unit: UnitWorker,
) -> None:
    unit.adapter = ReplacingBroker()
    old_id = placed(unit)
    placed(unit, "other-1")
    with pytest.raises(InvalidTaskArguments, match="no order 'nope' in account 'a'"):
        replace_order(unit.ctx, replace_args("nope", quantity="3"), task_id="r-10")
    with pytest.raises(InvalidTaskArguments, match="'other-1' is already used"):
        replace_order(
            unit.ctx,
            replace_args(old_id, quantity="3", new_client_order_id="other-1"),
            task_id="r-11",
        )


def test_an_exit_replacement_is_judged_without_the_exit_it_replaces(unit: UnitWorker) -> None:
    unit.adapter = ReplacingBroker()
    open_trade(unit, "10")
    exit_id = place_order(unit.ctx, exit_args("10", "x-1"), task_id="t-x1").order_id
    new = replace_order(unit.ctx, ReplaceOrderArgs(account="a", order_id=exit_id,
                                                   quantity="10", time_in_force="gtc"),
                        task_id="r-12")  # fmt: skip
    replacing = unit.order(new.placed.order_id)
    assert (replacing.intent, replacing.trade_id, replacing.side) == (Intent.EXIT, "t-1",
                                                                      Side.SELL)  # fmt: skip
    _set(unit, new.placed.order_id, status=OrderStatus.REJECTED)  # the broker said no
    with pytest.raises(InvalidTaskArguments, match="exceeds what trade 't-1' has open"):
        replace_order(unit.ctx, ReplaceOrderArgs(account="a", order_id=exit_id,
                                                 quantity="11", time_in_force="gtc"),
                      task_id="r-13")  # fmt: skip


class _Old:
    """Just what ``replace_terms`` reads of a row."""

    def __init__(self, order_type: OrderType, limit: str | None, stop: str | None) -> None:
        self.id = "o-1"
        self.order_type = order_type
        self.quantity = Decimal(10)
        self.broker_filled_quantity = Decimal(0)
        self.time_in_force = TimeInForce.DAY
        self.limit_price = None if limit is None else Decimal(limit)
        self.stop_price = None if stop is None else Decimal(stop)


@pytest.mark.parametrize(
    ("order_type", "limit", "stop", "changes", "expected"),
    [
        (OrderType.STOP_LIMIT, "10", "9", {"stop_price": "8"},
         (Decimal(10), TimeInForce.DAY, Decimal(10), Decimal(8))),
        (OrderType.STOP, None, "9", {"quantity": "4"},
         (Decimal(4), TimeInForce.DAY, None, Decimal(9))),
        (OrderType.MARKET, None, None, {"time_in_force": TimeInForce.GTC},
         (Decimal(10), TimeInForce.GTC, None, None)),
    ],
)  # fmt: skip
def test_replace_terms_keep_what_does_not_change(
    order_type: OrderType, limit: str | None, stop: str | None, changes: dict[str, Any],
    expected: tuple[Any, ...],
) -> None:  # fmt: skip
    from worker.args import ReplaceOrderTerms

    terms = replace_terms(_Old(order_type, limit, stop), ReplaceOrderTerms(**changes))  # type: ignore[arg-type]
    assert dataclasses.astuple(terms) == expected


def test_replace_terms_refuse_a_limit_price_on_a_market_order() -> None:
    from worker.args import ReplaceOrderTerms

    with pytest.raises(NotReplaceable, match="limit_price does not apply to a market order"):
        replace_terms(_Old(OrderType.MARKET, None, None),  # type: ignore[arg-type]
                      ReplaceOrderTerms(limit_price="10"))  # fmt: skip
