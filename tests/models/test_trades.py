"""The arithmetic of positions, trades and outcomes, and their lifecycle text (no I/O)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation, localcontext
from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.enums import Intent, OrderStatus, ReportSource, Side
from core.instruments import contract_multiplier
from models.trades import (
    PositionState,
    TradeNotFlat,
    TradeState,
    TradeStatus,
    add_entry_fill,
    add_exit_fill,
    apply_to_position,
    notional,
    order_lifecycle,
    outcome_of,
    seconds,
    take_asset_fee,
    trade_lifecycle,
)
from tests.models.factories import at

D = Decimal
DASH = "\u2013"


def position(*fills: tuple[Side, str, str, str]) -> PositionState:
    state = PositionState()
    for side, quantity, price, fee in fills:
        state = apply_to_position(state, side, D(quantity), D(price), D(fee))
    return state


def test_a_long_reduced_in_parts_realizes_against_its_average_cost() -> None:
    state = position((Side.BUY, "60", "10.00", "0"), (Side.BUY, "40", "10.10", "0"))
    assert (state.quantity, state.cost_basis, state.average_cost) == (D(100), D(1004), D("10.04"))
    state = apply_to_position(state, Side.SELL, D(40), D(11), D(0))
    assert (state.quantity, state.realized_pnl, state.average_cost) == (D(60), D("38.4"),
                                                                       D("10.04"))  # fmt: skip
    state = apply_to_position(state, Side.SELL, D(60), D("10.95"), D(0))
    assert (state.quantity, state.cost_basis, state.average_cost) == (0, 0, None)
    assert state.realized_pnl == D(1097) - D(1004)


def test_a_short_gains_when_bought_back_lower_and_fees_are_realized_losses() -> None:
    state = position((Side.SELL, "10", "100", "1"), (Side.BUY, "10", "90", "1.5"))
    assert (state.quantity, state.realized_pnl, state.fees) == (0, D("97.5"), D("2.5"))


def test_a_fill_through_zero_flips_the_position_at_its_price() -> None:
    state = position((Side.BUY, "10", "100", "0"), (Side.SELL, "15", "110", "0"))
    assert (state.quantity, state.cost_basis, state.average_cost) == (D(-5), D(-550), D(110))
    assert state.realized_pnl == D(100)
    assert state.unrealized_pnl(D(100)) == D(50)  # short 5 from 110, now 100


quantities = st.decimals(min_value=D("0.000001"), max_value=D(1000), places=6)
prices = st.decimals(min_value=D("0.0001"), max_value=D(10_000), places=4)
fees = st.decimals(min_value=D(0), max_value=D(5), places=2)
fills = st.lists(st.tuples(st.sampled_from(Side), quantities, prices, fees), max_size=25)


def _cash(fill_list: list[tuple[Side, Decimal, Decimal, Decimal]]) -> Decimal:
    """What the fills paid and received, fees included: the whole PnL once marked."""
    return sum(
        ((notional(q, p) if s is Side.SELL else -notional(q, p)) - f for s, q, p, f in fill_list),
        D(0),
    )


@given(fills, prices)
def test_realized_plus_unrealized_is_the_cash_flow_marked_at_any_price(
    fill_list: list[tuple[Side, Decimal, Decimal, Decimal]], mark: Decimal
) -> None:
    state = reduce(lambda s, f: apply_to_position(s, *f), fill_list, PositionState())
    assert state.quantity == sum(
        (q if s is Side.BUY else -q for s, q, _, _ in fill_list), D(0)
    )  # fmt: skip
    assert state.realized_pnl + state.unrealized_pnl(mark) == _cash(fill_list) + notional(
        state.quantity, mark
    )
    assert state.fees == sum((f for *_, f in fill_list), D(0))
    if state.quantity:
        assert state.average_cost is not None
        assert state.average_cost > 0
        assert (state.cost_basis > 0) == (state.quantity > 0)
    else:
        assert state.cost_basis == 0
        assert state.realized_pnl == _cash(fill_list)  # flat: everything is realized


UNIT = D("0.000001")  # the quantities' last place


def split(quantity: Decimal, parts: int) -> list[Decimal]:
    """``quantity`` in up to ``parts`` pieces that add up to it exactly."""
    units = int(quantity / UNIT)
    base = units // parts
    pieces = [base] * (parts - 1) + [units - base * (parts - 1)]
    return [piece * UNIT for piece in pieces if piece]


@given(st.lists(st.tuples(quantities, prices, st.integers(1, 4)), min_size=1, max_size=8),
       prices, st.integers(1, 5))  # fmt: skip
def test_a_round_trip_split_any_way_gives_the_same_totals(
    entries: list[tuple[Decimal, Decimal, int]], exit_price: Decimal, exit_parts: int
) -> None:
    whole = [(Side.BUY, q, p, D(0)) for q, p, _ in entries]
    pieces = [(Side.BUY, piece, p, D(0)) for q, p, n in entries for piece in split(q, n)]
    held = sum((q for q, _, _ in entries), D(0))
    exits = [(Side.SELL, piece, exit_price, D(0)) for piece in split(held, exit_parts)]
    one = reduce(lambda s, f: apply_to_position(s, *f), [*whole, *exits], PositionState())
    many = reduce(lambda s, f: apply_to_position(s, *f), [*pieces, *exits], PositionState())
    assert one == many
    assert one.quantity == 0

    def trade(entry_fills: list[tuple[Side, Decimal, Decimal, Decimal]]) -> TradeState:
        state = TradeState(side=Side.BUY)
        for _, q, p, f in entry_fills:
            state = add_entry_fill(state, q, p, f, at(0), None)
        for _, q, p, f in exits:
            state, excess = add_exit_fill(state, q, p, f, at(9), None, ReportSource.SWEEP)
            assert excess == 0
        return state

    a, b = outcome_of(trade(whole), now=at(10)), outcome_of(trade(pieces), now=at(10))
    assert a == b
    assert a.realized_pnl == one.realized_pnl  # the trade and the position agree


def partially_filled_round_trip() -> TradeState:
    """Entry 100 filled 60 + 40, exit filled 40 + 60; each fill pays 0.50."""
    state = TradeState(side=Side.BUY)
    state = add_entry_fill(state, D(60), D("10.00"), D("0.5"), at(1), D("10.00"))
    state = add_entry_fill(state, D(40), D("10.10"), D("0.5"), at(2), D("10.00"))
    state, _ = add_exit_fill(state, D(40), D("11.00"), D("0.5"), at(60), D(11), ReportSource.SWEEP)
    assert (state.open_quantity, state.exit.quantity) == (D(60), D(40))
    state, _ = add_exit_fill(state, D(60), D("10.95"), D("0.5"), at(90.5), D(11),
                             ReportSource.MONITOR)  # fmt: skip
    return state


def test_the_outcome_of_a_partially_filled_round_trip_is_right_to_the_cent() -> None:
    outcome = outcome_of(partially_filled_round_trip(), now=at(100))
    assert outcome.quantity == D(100)
    assert (outcome.entry_average_price, outcome.exit_average_price) == (D("10.04"), D("10.97"))
    assert outcome.fees == D(2)
    assert outcome.realized_pnl == D("91.00")  # (10.97 - 10.04) * 100 - 2
    assert outcome.entry_slippage == D("0.04")  # paid 0.04 above the requested 10.00
    assert outcome.exit_slippage == D("0.03")  # sold 0.03 below the requested 11.00
    assert outcome.slippage_cost == D(7)
    assert (outcome.opened_at, outcome.exited_at, outcome.holding_s) == (at(1), at(90.5),
                                                                         D("89.5"))  # fmt: skip
    assert outcome.deciding_source is ReportSource.MONITOR  # how the last exit fill came


def test_a_short_trade_gains_when_it_buys_back_lower() -> None:
    state = add_entry_fill(TradeState(side=Side.SELL), D(10), D(50), D(0), at(0), D(49))
    state, _ = add_exit_fill(state, D(10), D(45), D(1), at(5), None, ReportSource.STREAM)
    outcome = outcome_of(state, now=at(6))
    assert outcome.realized_pnl == D(49)
    assert outcome.entry_slippage == D(-1)  # sold at 50, asked 49: better than requested
    assert outcome.exit_slippage is None  # the exit named no price


def test_an_option_trade_s_money_is_its_contracts_times_100_and_its_prices_per_share() -> None:
    state = TradeState.new(Side.BUY, contract_multiplier("SPY250117C00450000"))
    state = add_entry_fill(state, D(2), D("1.25"), D("1.30"), at(0), D("1.20"))
    state = add_entry_fill(state, D(1), D("1.40"), D("0.65"), at(1), None)
    state, over = add_exit_fill(state, D(3), D("1.85"), D("1.95"), at(9), D("1.90"),
                                ReportSource.STREAM)  # fmt: skip

    outcome = outcome_of(state, now=at(10))
    assert over == 0
    assert (outcome.entry_notional, outcome.exit_notional) == (D(390), D(555))
    assert (outcome.entry_average_price, outcome.exit_average_price) == (D("1.3"), D("1.85"))
    assert outcome.realized_pnl == D("161.10")  # (555 - 390) - fees 3.90
    assert (outcome.entry_slippage, outcome.exit_slippage) == (D("0.05"), D("0.05"))
    assert outcome.slippage_cost == D(10 + 15)  # 0.05 a share on 2, then on 3 contracts


def test_an_option_position_costs_its_contracts_times_100_at_a_per_share_average() -> None:
    state = PositionState(multiplier=contract_multiplier("SPY250117P00450000"))
    state = apply_to_position(state, Side.SELL, D(4), D("2.50"), D(0))
    assert (state.quantity, state.cost_basis, state.average_cost) == (D(-4), D(-1000), D("2.5"))
    assert state.unrealized_pnl(D("2.00")) == D(200)
    state = apply_to_position(state, Side.BUY, D(1), D("2.10"), D("0.65"))
    assert (state.quantity, state.average_cost) == (D(-3), D("2.5"))
    assert state.realized_pnl == D("39.35")  # 0.40 a share on 100 shares, less the fee
    state = apply_to_position(state, Side.BUY, D(5), D("1.00"), D(0))
    assert (state.quantity, state.cost_basis, state.average_cost) == (D(2), D(200), D(1))


def test_only_an_occ_option_symbol_holds_more_than_one_unit() -> None:
    assert contract_multiplier("AAPL240119C00150000") == 100
    for symbol in ("AAPL", "BTC/USD", "BTCUSDT", "EUR_USD", "BTC-USD", "BRK.B"):
        assert contract_multiplier(symbol) == 1


def test_an_exit_counts_only_what_the_trade_has_open() -> None:
    state = add_entry_fill(TradeState(side=Side.BUY), D(10), D(5), D(0), at(0), None)
    state, excess = add_exit_fill(state, D(12), D(6), D(0), at(1), None, ReportSource.SWEEP)
    assert (state.exit.quantity, state.exit.notional, excess) == (D(10), D(60), D(2))
    assert add_exit_fill(state, D(1), D(6), D(0), at(2), None, ReportSource.SWEEP)[1] == D(1)


def test_an_open_trade_has_no_outcome() -> None:
    state = add_entry_fill(TradeState(side=Side.BUY), D(10), D(5), D(0), at(0), None)
    with pytest.raises(TradeNotFlat, match="10 open"):
        outcome_of(state, now=at(1))


def test_holding_time_is_exact() -> None:
    assert seconds(timedelta(days=1, seconds=3, microseconds=250)) == D("86403.00025")


# --- the money context: exact to NUMERIC(38, 18) whatever the thread's context is ---------

BIG = "10000000000000000000"  # 20 integer digits
TINY = "0.000000000000000001"  # 18 places


@contextmanager
def careless_thread_context() -> Iterator[None]:
    """A thread's decimal context is anyone's to set: few digits, truncating, no traps."""
    with localcontext(prec=12, rounding=ROUND_DOWN) as ctx:
        for signal in list(ctx.traps):
            ctx.traps[signal] = False
        yield


@pytest.mark.parametrize("careless", [False, True])
def test_a_position_at_the_columns_limits_is_exact(careless: bool) -> None:
    with careless_thread_context() if careless else localcontext():
        state = position((Side.BUY, BIG, "1", "0"), (Side.BUY, TINY, "3", TINY))
        assert (state.quantity, state.cost_basis) == (
            D("10000000000000000000.000000000000000001"),
            D("10000000000000000000.000000000000000003"))  # fmt: skip
        assert state.realized_pnl == D(f"-{TINY}")
        state = apply_to_position(state, Side.SELL, D(TINY), D(5), D(0))
        assert (state.quantity, state.cost_basis, state.realized_pnl) == (
            D(BIG), D("10000000000000000000.000000000000000002"),
            D("0.000000000000000003"))  # fmt: skip
        assert state.average_cost == D(1)
        assert state.unrealized_pnl(D(2)) == D("9999999999999999999.999999999999999998")


@pytest.mark.parametrize("careless", [False, True])
def test_a_trade_at_the_columns_limits_is_exact(careless: bool) -> None:
    whole = D("10000000000000000000.000000000000000001")
    with careless_thread_context() if careless else localcontext():
        state = add_entry_fill(TradeState(side=Side.BUY), D(BIG), D(1), D(0), at(0), None)
        state = add_entry_fill(state, D(TINY), D(1), D(TINY), at(1), D(1))
        assert (state.entry.quantity, state.open_quantity) == (whole, whole)
        state, excess = add_exit_fill(state, D(BIG), D(2), D(0), at(2), None, ReportSource.SWEEP)
        assert (state.open_quantity, excess) == (D(TINY), 0)
        state, excess = add_exit_fill(state, D("0.000000000000000003"), D(2), D(TINY), at(3),
                                      None, ReportSource.SWEEP)  # fmt: skip
        assert (state.open_quantity, excess) == (0, D("0.000000000000000002"))
        outcome = outcome_of(state, now=at(4))
        assert (outcome.quantity, outcome.fees) == (whole, D("0.000000000000000002"))
        # 2 * whole - whole - fees, to the last place
        assert outcome.realized_pnl == D("9999999999999999999.999999999999999999")
        assert state.fees == outcome.fees


def test_money_arithmetic_traps_what_a_careless_context_would_let_through() -> None:
    with careless_thread_context(), pytest.raises(InvalidOperation):
        notional(D("Infinity"), D(0))


@pytest.mark.parametrize(
    ("intent", "status", "filled", "trade", "text"),
    [
        (Intent.ENTRY, OrderStatus.FILLED, "100", TradeStatus.OPEN, "Entry filled - trade OPEN"),
        (Intent.EXIT, OrderStatus.PARTIALLY_FILLED, "40", TradeStatus.OPEN,
         "Exit partially filled - 40 of 100"),
        (Intent.ENTRY, OrderStatus.CANCELED, "0", None, "Entry canceled - no trade"),
        (Intent.ENTRY, OrderStatus.NEW, "0", None, "Entry working - no fill yet"),
        (Intent.ENTRY, OrderStatus.PARTIALLY_FILLED, "60", TradeStatus.OPEN,
         "Entry partially filled - 60 of 100 - trade OPEN"),
        (Intent.ENTRY, OrderStatus.CANCELED, "60", TradeStatus.CLOSED,
         "Entry canceled - 60 of 100 filled - trade CLOSED"),
        (Intent.ENTRY, OrderStatus.REJECTED, "0", None, "Entry rejected - no trade"),
        (Intent.EXIT, OrderStatus.FILLED, "100", TradeStatus.CLOSED, "Exit filled - trade CLOSED"),
        (Intent.EXIT, OrderStatus.CANCELED, "0", TradeStatus.OPEN, "Exit canceled - trade OPEN"),
        (Intent.EXIT, OrderStatus.PENDING_NEW, "0", TradeStatus.OPEN,
         "Exit sent - not yet acknowledged by the broker"),
        (None, OrderStatus.PENDING_CANCEL, "3", None, "Order cancel requested - 3 of 100 filled"),
    ],
)  # fmt: skip
def test_order_lifecycle_text(
    intent: Intent | None, status: OrderStatus, filled: str, trade: TradeStatus | None, text: str
) -> None:
    expected = text.replace(" - ", f" {DASH} ")
    assert order_lifecycle(intent, status, D(100), D(filled), trade) == expected


def test_trade_lifecycle_text() -> None:
    state = add_entry_fill(TradeState(side=Side.BUY), D(100), D(5), D(0), at(0), None)
    assert trade_lifecycle(state, True, None) == f"Trade OPEN {DASH} long 100"
    state, _ = add_exit_fill(state, D(40), D(6), D(0), at(1), None, ReportSource.SWEEP)
    assert trade_lifecycle(state, False, None) == f"Trade OPEN {DASH} 40 of 100 exited"
    state, _ = add_exit_fill(state, D(60), D(6), D(0), at(2), None, ReportSource.SWEEP)
    assert trade_lifecycle(state, True, None) == (
        f"Trade OPEN {DASH} flat, its entry still working (100 in)"
    )
    closed = TradeState(Side.BUY, TradeStatus.CLOSED, state.entry, state.exit)
    assert trade_lifecycle(closed, False, D(100)) == (
        f"Trade CLOSED {DASH} 100 exited {DASH} realized PnL 100"
    )


def test_a_fee_taken_in_the_asset_comes_out_of_the_open_quantity_only() -> None:
    state = add_entry_fill(TradeState(side=Side.BUY), D("0.01"), D(60000), D(0), at(0), None)
    state, rest = take_asset_fee(state, D("0.000025"), D("1.5"))
    assert (state.open_quantity, state.fee_quantity, state.fees, rest) == (
        D("0.009975"), D("0.000025"), D("1.5"), D(0))  # fmt: skip
    flat, rest = take_asset_fee(add_exit_fill(state, D("0.009975"), D(60000), D(0), at(1),
                                              None, ReportSource.DEEP)[0],
                                D("0.00001"), D("0.6"))  # fmt: skip
    assert (flat.fee_quantity, rest) == (D("0.000025"), D("0.00001"))  # nothing open: untaken


def test_part_of_an_asset_fee_is_taken_with_its_share_of_the_value() -> None:
    state = add_entry_fill(TradeState(side=Side.BUY), D("0.01"), D(100), D(0), at(0), None)
    state, _ = add_exit_fill(state, D("0.009"), D(100), D(0), at(1), None, ReportSource.DEEP)
    state, rest = take_asset_fee(state, D("0.004"), D("0.4"))
    assert (state.fee_quantity, state.asset_fees, rest) == (D("0.001"), D("0.1"), D("0.003"))


def test_an_asset_fee_is_in_the_outcome_s_fees_but_not_taken_off_its_pnl_twice() -> None:
    """Bought 0.01 at 60000 (600), the fee took 0.000025 (1.50), the rest sold at 61000:
    the cash result is 608.475 - 600 less the 0.25 cash fee of the sale."""
    state = add_entry_fill(TradeState(side=Side.BUY), D("0.01"), D(60000), D(0), at(0), None)
    state, _ = take_asset_fee(state, D("0.000025"), D("1.5"))
    state, _ = add_exit_fill(state, D("0.009975"), D(61000), D("0.25"), at(5), None,
                             ReportSource.STREAM)  # fmt: skip
    outcome = outcome_of(state, now=at(6))
    assert outcome.quantity == D("0.009975")
    assert outcome.fees == D("1.75")
    assert outcome.realized_pnl == D("8.225")  # 608.475 - 600 - 0.25


def test_a_fee_in_the_coin_gives_it_up_at_its_price_and_realizes_its_cost() -> None:
    held = position((Side.BUY, "0.01", "60000", "0"))
    after = apply_to_position(held, Side.SELL, D("0.000025"), D(62000), D("1.55"))
    assert after.quantity == D("0.009975")
    assert after.cost_basis == D("598.5")  # the average cost stays 60000
    assert (after.realized_pnl, after.fees) == (D("-1.5"), D("1.55"))
