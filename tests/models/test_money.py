"""Money keeps every digit the columns hold, whatever the thread's decimal context says."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, localcontext

from sqlalchemy import Engine, text

from core.enums import OrderStatus, Side
from core.reports import FillReport
from models.state_machine import OrderState, apply_fill
from models.types import Money, canonical

WIDE = Decimal("12345678901234567890.123456789012345678")  # 38 digits: NUMERIC(38, 18)


def test_canonical_keeps_38_digits_under_the_default_context() -> None:
    assert canonical(WIDE) == WIDE
    assert str(canonical(Decimal("100.000"))) == "100"


def test_a_fill_near_the_column_limits_adds_up_exactly_in_a_careless_context() -> None:
    state = OrderState(status=OrderStatus.NEW, quantity=Decimal("99999999999999999999"),
                       filled_quantity=WIDE)  # fmt: skip
    fill = FillReport("f", "b", "AAPL", Side.BUY, Decimal("0.000000000000000001"),
                      Decimal(1), datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    with localcontext() as careless:
        careless.prec = 12
        applied = apply_fill(state, fill, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert applied.state.filled_quantity == Decimal("12345678901234567890.123456789012345679")


def test_a_wide_value_round_trips_through_the_database(engine: Engine) -> None:
    with engine.connect() as connection:
        bound = Money().process_bind_param(WIDE, connection.dialect)
        kept = connection.execute(text("SELECT :v"), {"v": bound}).scalar()
        assert Money().process_result_value(kept, connection.dialect) == WIDE
