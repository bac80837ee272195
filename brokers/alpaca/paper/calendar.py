"""Alpaca's ``GET /v2/calendar`` over the US equity schedule (``brokers.paper.market_calendar``):
the span it lists and its JSON."""

from __future__ import annotations

from datetime import date

from brokers.paper.market_calendar import MarketDay

# Alpaca's calendar runs from 1970 to 2029: what it lists when asked without dates.
FIRST_DAY = date(1970, 1, 1)
DEFAULT_LAST_DAY = date(2029, 12, 31)
# Later years are answered too (by rule), up to here: no request lists more than this.
LAST_DAY = date(2099, 12, 31)


def day_json(day: MarketDay) -> dict[str, str]:
    """Alpaca's calendar entry: ``open``/``close`` as ``HH:MM``, the session as ``HHMM``."""
    return {
        "date": day.day.isoformat(),
        "open": day.open.strftime("%H:%M"),
        "close": day.close.strftime("%H:%M"),
        "session_open": day.session_open.strftime("%H%M"),
        "session_close": day.session_close.strftime("%H%M"),
        "settlement_date": day.settlement_date.isoformat(),
    }
