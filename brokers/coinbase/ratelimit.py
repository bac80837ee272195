"""Coinbase's rate-limit headers and Retry-After, read into ``RateLimitInfo``.

``x-ratelimit-reset``'s unit is not documented [U]: a value that looks like a Unix time
(after 2001) is read as one, a smaller one as seconds from now.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from brokers.base import RateLimitInfo

_EPOCH_FLOOR = 1_000_000_000
WINDOW_S = 1.0  # Coinbase counts its private limit (30 requests) per second
_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def _number(headers: Mapping[str, str], name: str) -> float | None:
    try:
        value = float(headers[name])
    except (KeyError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def _int(headers: Mapping[str, str], name: str) -> int | None:
    value = _number(headers, name)
    return None if value is None else int(value)


def reset_at(headers: Mapping[str, str], now: datetime) -> datetime | None:
    value = _number(headers, "x-ratelimit-reset")
    if value is None or value < 0:
        return None
    if value >= _EPOCH_FLOOR:
        return datetime.fromtimestamp(value, UTC)
    return now + timedelta(seconds=value)


def retry_at(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """When a 429 may be retried: Retry-After (seconds or an HTTP date), else the reset."""
    raw = headers.get("retry-after")
    if raw is not None:
        seconds = _number(headers, "retry-after")
        if seconds is not None and seconds >= 0:
            return now + timedelta(seconds=seconds)
        try:
            return parsedate_to_datetime(raw).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return reset_at(headers, now)


def rate_limit_info(headers: Mapping[str, str], status: int, now: datetime) -> RateLimitInfo | None:
    """The answer's figures, for every answer that has any and for every 429 (even bare)."""
    if status != 429 and not any(name in headers for name in _HEADERS):
        return None
    at = reset_at(headers, now)
    if at is None and status == 429:
        at = retry_at(headers, now)
    return RateLimitInfo(
        limit=_int(headers, "x-ratelimit-limit"),
        remaining=_int(headers, "x-ratelimit-remaining"),
        reset_at=at,
        status_code=status,
        window_s=WINDOW_S,
    )
