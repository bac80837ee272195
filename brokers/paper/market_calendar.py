"""The US equity market's regular schedule, for any dialect that serves it (Alpaca's
``GET /v2/calendar``: ``brokers.alpaca.paper.calendar``).

Computed by rule for any year, not read from a table: weekdays, 09:30-16:00 New York time,
closed on the NYSE's full-day holidays (New Year's Day, Martin Luther King Jr. Day from 1998,
Washington's Birthday, Good Friday, Memorial Day, Juneteenth from 2022, Independence Day,
Labor Day, Thanksgiving, Christmas; one on a Saturday is observed the Friday before, one on a
Sunday the Monday after, except that New Year's Day on a Saturday is not observed at all),
closing at 13:00 the day after Thanksgiving, on Christmas Eve and on July 3 when those are
trading days. The unscheduled closures since 1970 (national days of mourning, storms,
September 2001) are listed, as no rule gives them. Trades settle T+1: the next trading day.
Today's rules are applied to every year, so dates before 1981 (Election Day closures, the
holidays before the Uniform Monday Holiday Act) and before T+1 (2024) can differ from history.

This is the exchange's regular calendar. The paper exchange's clocks (Alpaca's
``GET /v2/clock``) follow the engine's simulated session instead (a market that never
closes, or sessions of ``session_s`` seconds), so the two agree only when a test makes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from brokers.paper.model import EASTERN

OPEN = time(9, 30)
CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)
SESSION_OPEN = time(4, 0)  # pre-market opens
SESSION_CLOSE = time(20, 0)  # after-hours end
EARLY_SESSION_CLOSE = time(17, 0)  # after-hours end on an early-close day
_MONDAY, _THURSDAY, _FRIDAY, _SATURDAY, _SUNDAY = 0, 3, 4, 5, 6

# Closures no rule predicts (NYSE): the day and why.
UNSCHEDULED_CLOSURES: dict[date, str] = {
    date(1972, 12, 28): "National Day of Mourning (Harry S. Truman)",
    date(1973, 1, 25): "National Day of Mourning (Lyndon B. Johnson)",
    date(1977, 7, 14): "New York City blackout",
    date(1985, 9, 27): "Hurricane Gloria",
    date(1994, 4, 27): "National Day of Mourning (Richard Nixon)",
    date(2001, 9, 11): "September 11 attacks",
    date(2001, 9, 12): "September 11 attacks",
    date(2001, 9, 13): "September 11 attacks",
    date(2001, 9, 14): "September 11 attacks",
    date(2004, 6, 11): "National Day of Mourning (Ronald Reagan)",
    date(2007, 1, 2): "National Day of Mourning (Gerald Ford)",
    date(2012, 10, 29): "Hurricane Sandy",
    date(2012, 10, 30): "Hurricane Sandy",
    date(2018, 12, 5): "National Day of Mourning (George H. W. Bush)",
    date(2025, 1, 9): "National Day of Mourning (Jimmy Carter)",
}


@dataclass(frozen=True, slots=True)
class MarketDay:
    """One trading day: its regular and extended hours (New York time) and settlement."""

    day: date
    open: time
    close: time
    session_open: time
    session_close: time
    settlement_date: date

    @property
    def open_at(self) -> datetime:
        return datetime.combine(self.day, self.open, EASTERN)

    @property
    def close_at(self) -> datetime:
        return datetime.combine(self.day, self.close, EASTERN)

    @property
    def is_early_close(self) -> bool:
        return self.close < CLOSE


def easter(year: int) -> date:
    """Easter Sunday of the Gregorian calendar (the anonymous Gregorian computus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``th ``weekday`` of the month; ``n = -1`` is the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    after = date(year + month // 12, month % 12 + 1, 1)
    last = after - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    """Saturday's holiday is taken the Friday before, Sunday's the Monday after."""
    if day.weekday() == _SATURDAY:
        return day - timedelta(days=1)
    if day.weekday() == _SUNDAY:
        return day + timedelta(days=1)
    return day


@lru_cache(maxsize=256)
def _holidays(year: int) -> dict[date, str]:
    """Cached and never handed out: callers get copies."""
    found: dict[date, str] = {}
    new_year = date(year, 1, 1)
    if new_year.weekday() != _SATURDAY:  # NYSE Rule 7.2: a Saturday New Year is not made up
        found[_observed(new_year)] = "New Year's Day"
    if year >= 1998:
        found[_nth_weekday(year, 1, _MONDAY, 3)] = "Martin Luther King, Jr. Day"
    found[_nth_weekday(year, 2, _MONDAY, 3)] = "Washington's Birthday"
    found[easter(year) - timedelta(days=2)] = "Good Friday"
    found[_nth_weekday(year, 5, _MONDAY, -1)] = "Memorial Day"
    if year >= 2022:
        found[_observed(date(year, 6, 19))] = "Juneteenth National Independence Day"
    found[_observed(date(year, 7, 4))] = "Independence Day"
    found[_nth_weekday(year, 9, _MONDAY, 1)] = "Labor Day"
    found[_nth_weekday(year, 11, _THURSDAY, 4)] = "Thanksgiving Day"
    found[_observed(date(year, 12, 25))] = "Christmas Day"
    found.update((day, why) for day, why in UNSCHEDULED_CLOSURES.items() if day.year == year)
    return dict(sorted(found.items()))


def holidays(year: int) -> dict[date, str]:
    """Weekdays of ``year`` on which the market is closed all day, with the reason."""
    return dict(_holidays(year))


def is_holiday(day: date) -> bool:
    return day in _holidays(day.year)


def is_trading_day(day: date) -> bool:
    return day.weekday() < _SATURDAY and not is_holiday(day)


@lru_cache(maxsize=256)
def _early_closes(year: int) -> dict[date, str]:
    candidates = {
        date(year, 7, 3): "Independence Day eve",
        _nth_weekday(year, 11, _THURSDAY, 4) + timedelta(days=1): "Day after Thanksgiving",
        date(year, 12, 24): "Christmas Eve",
    }
    return {day: why for day, why in sorted(candidates.items()) if is_trading_day(day)}


def early_closes(year: int) -> dict[date, str]:
    """Trading days of ``year`` on which the market closes at 13:00, with the reason."""
    return dict(_early_closes(year))


def next_trading_day(day: date) -> date:
    """The first trading day after ``day``."""
    following = day + timedelta(days=1)
    while not is_trading_day(following):
        following += timedelta(days=1)
    return following


def settlement_date(day: date) -> date:
    """T+1: a trade of ``day`` settles the next trading day."""
    return next_trading_day(day)


def market_day(day: date) -> MarketDay | None:
    """``day``'s hours, or None when the market is closed that day."""
    if not is_trading_day(day):
        return None
    early = day in _early_closes(day.year)
    return MarketDay(
        day=day,
        open=OPEN,
        close=EARLY_CLOSE if early else CLOSE,
        session_open=SESSION_OPEN,
        session_close=EARLY_SESSION_CLOSE if early else SESSION_CLOSE,
        settlement_date=settlement_date(day),
    )


def market_days(start: date, end: date) -> list[MarketDay]:
    """The trading days from ``start`` to ``end``, both included (none if end < start)."""
    days: list[MarketDay] = []
    day = start
    while day <= end:
        found = market_day(day)
        if found is not None:
            days.append(found)
        day += timedelta(days=1)
    return days
