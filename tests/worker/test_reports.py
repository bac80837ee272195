"""Which database errors mean "a concurrent writer got in first" and so retry an apply;
one execution reported under two ids is recorded once."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from core.enums import OrderStatus, ReportSource
from models.orders import Fill
from tests.models.factories import fill
from tests.worker.conftest import UnitWorker
from worker.reports import apply_fills, apply_in_new_session, raced


class DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (StaleDataError("version moved"), True),
        (IntegrityError("insert", {}, DriverError("23505")), True),
        (OperationalError("commit", {}, DriverError("40P01")), True),  # deadlock broken
        (OperationalError("commit", {}, DriverError("40001")), True),  # serialization
        (OperationalError("connect", {}, DriverError("08006")), False),  # connection lost
        (OperationalError("sqlite", {}, DriverError(None)), False),
    ],
)
def test_only_races_are_retried(error: Exception, retry: bool) -> None:
    assert raced(error) is retry


def test_one_execution_listed_and_streamed_under_two_ids_is_one_fill(unit: UnitWorker) -> None:
    """A page of fills, then the same execution again under another id (as a stream gives
    it), then through the single-report path: one row, the order filled once."""
    order_id = unit.add_order("c-1", broker_order_id="b-1", status=OrderStatus.NEW)
    listed = dataclasses.replace(fill("20261203::a1", "5", broker_order_id="b-1"),
                                 cum_quantity=Decimal(5))  # fmt: skip
    streamed = dataclasses.replace(listed, broker_fill_id="exec-77")
    assert apply_fills(unit.ctx, unit.account_id, [listed], ReportSource.SWEEP) == (1, [])
    assert apply_fills(unit.ctx, unit.account_id, [streamed], ReportSource.STREAM) == (0, [])
    assert apply_in_new_session(unit.ctx, order_id, streamed, ReportSource.STREAM) is not None
    with unit.ctx.sessions() as session:
        rows = session.execute(select(Fill.broker_fill_id, Fill.cum_quantity)).all()
    assert [(i, Decimal(c)) for i, c in rows] == [("20261203::a1", Decimal(5))]
    assert unit.order(order_id).filled_quantity == Decimal(5)
