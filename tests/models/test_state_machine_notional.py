"""Notional orders in the state machine: no quantity to fill up to, FILLED as the broker says,
and an overfill counted in money (the fills' notional against the order's, a cent of
rounding allowed)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from core.enums import OrderStatus as S
from models.state_machine import NOTIONAL_TOLERANCE, OrderState, Verdict, apply_fill, apply_report
from tests.models.factories import BROKER_ID, T0, at, fill, report

NOTIONAL = Decimal(500)


def _working(status: S = S.NEW, **changes: object) -> OrderState:
    """A $500 notional order the broker has acknowledged."""
    fields: dict[str, object] = {
        "status": status, "quantity": None, "notional": NOTIONAL, "broker_order_id": BROKER_ID,
        "raw_status": status.value.lower(), "broker_updated_at": T0,
    }  # fmt: skip
    fields.update(changes)
    return OrderState(**fields)  # type: ignore[arg-type]


def test_fills_do_not_fill_a_notional_order_the_broker_does() -> None:
    # $500 at 187.5: 2.666666666 shares (Alpaca truncates to 9 places), $499.99999999875.
    partial = apply_fill(_working(), fill("f-1", "1", "187.5"), now=at(2)).state
    rest = apply_fill(partial, fill("f-2", "1.666666666", "187.5", seconds=2), now=at(3))

    assert (partial.status, rest.state.status) == (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED)
    assert rest.state.filled_quantity == Decimal("2.666666666")
    assert rest.state.fill_notional == Decimal("499.999999875")

    done = apply_report(rest.state, report(S.FILLED, "2.666666666", updated=3,
                                           notional="500", avg="187.5"), now=at(4))  # fmt: skip
    assert done.verdict is Verdict.APPLIED
    assert done.state.status is S.FILLED
    assert done.state.closed_at == at(4)


@pytest.mark.parametrize(
    ("quantity", "price", "verdict"),
    [
        ("2", "250", Verdict.APPLIED),  # exactly $500
        ("2", "250.005", Verdict.APPLIED),  # $500.01: a cent of rounding
        ("2", "250.0050001", Verdict.ANOMALY),  # $500.0100002
        ("3", "187.5", Verdict.ANOMALY),  # $562.50
    ],
)
def test_fills_may_come_to_the_notional_and_a_cent_no_more(
    quantity: str, price: str, verdict: Verdict
) -> None:
    result = apply_fill(_working(), fill("f-1", quantity, price), now=at(2))

    assert result.verdict is verdict
    if verdict is Verdict.ANOMALY:
        assert result.state == _working()
        detail = result.anomalies[0].detail or ""
        assert detail.startswith("overfill: fills come to $")
        assert detail.endswith("more than the order's $500")


def test_the_tolerance_is_a_cent() -> None:
    assert Decimal("0.01") == NOTIONAL_TOLERANCE


def test_an_overfill_counts_the_fills_recorded_before() -> None:
    first = apply_fill(_working(), fill("f-1", "1", "300"), now=at(2)).state
    second = apply_fill(first, fill("f-2", "1", "300", seconds=2), now=at(3))

    assert second.verdict is Verdict.ANOMALY
    assert "fills come to $600" in (second.anomalies[0].detail or "")


def test_any_filled_quantity_the_broker_reports_is_taken() -> None:
    result = apply_report(_working(), report(S.PARTIALLY_FILLED, "1234.5", notional="500"),
                          now=at(2))  # fmt: skip

    assert result.verdict is Verdict.APPLIED
    assert result.state.broker_filled_quantity == Decimal("1234.5")


@pytest.mark.parametrize(
    ("theirs", "detail"),
    [
        ({"notional": "400"}, "broker order is for $400, ours for $500"),
        ({"quantity": "10"}, "broker order is for 10, ours for $500"),
    ],
)
def test_a_report_for_other_terms_is_an_anomaly(theirs: dict[str, str], detail: str) -> None:
    result = apply_report(_working(), report(S.NEW, **theirs), now=at(2))  # type: ignore[arg-type]

    assert result.verdict is Verdict.ANOMALY
    assert result.anomalies[0].detail == detail


def test_a_quantity_order_reported_as_notional_is_an_anomaly() -> None:
    state = OrderState(status=S.NEW, quantity=Decimal(10), broker_order_id=BROKER_ID)

    result = apply_report(state, report(S.NEW, notional="500"), now=at(2))

    assert result.verdict is Verdict.ANOMALY
    assert result.anomalies[0].detail == "broker quantity $500 differs from ours 10"


@pytest.mark.parametrize("ours", [_working(), OrderState(status=S.NEW, quantity=Decimal(10),
                                                           broker_order_id=BROKER_ID)])  # fmt: skip
def test_a_report_that_does_not_state_the_terms_is_not_compared_on_them(ours: OrderState) -> None:
    """Coinbase's user channel gives filled and left, not what was ordered: an ended order may
    leave nothing, a quote-sized one has no size. Its report moves the order on."""
    said = replace(report(S.CANCELED, "4", quantity="4", updated=2), states_terms=False)

    result = apply_report(ours, said, now=at(3))

    assert result.verdict is not Verdict.ANOMALY
    assert result.state.status is S.CANCELED
    assert result.state.broker_filled_quantity == Decimal(4)


def test_a_rejection_after_fills_says_what_the_order_was_for() -> None:
    state = _working(S.PARTIALLY_FILLED, broker_filled_quantity=Decimal(1))

    result = apply_report(state, report(S.REJECTED, "1", updated=2, notional="500"), now=at(3))

    assert result.state.status is S.REJECTED
    assert "rejected after 1 of $500 filled" in (result.history[-1].detail or "")
