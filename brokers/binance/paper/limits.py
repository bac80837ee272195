"""Binance's request-weight and order-count limits, with its headers, 429 and 418.

Weight is counted per client address per UTC minute, every request (refused ones too);
over the limit a request is refused 429 (-1003) with Retry-After to the next minute; an
address refused more than ``ban_after`` times in one minute is banned (418) for ``ban_s``.
Orders are counted per API key per 10 s and per UTC day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from brokers.binance.paper.errors import BinanceError
from brokers.paper.faults import FaultSettings


@dataclass(frozen=True, slots=True)
class Limits:
    weight_per_min: int = 6000
    orders_per_10s: int = 50
    orders_per_day: int = 160_000
    ban_after: int = 10
    ban_s: float = 120.0


def limits_of(settings: FaultSettings) -> Limits:
    """The limits the current fault settings give."""
    return Limits(settings.binance_weight_per_min, settings.binance_orders_per_10s,
                  settings.binance_orders_per_day, settings.binance_ban_after,
                  settings.binance_ban_s)  # fmt: skip


def _bucket(now_s: float, length_s: int) -> int:
    return math.floor(now_s / length_s)


def _count(counts: dict[str, tuple[int, int]], key: str, bucket: int, amount: int = 1) -> int:
    """Add to the key's current bucket; a new bucket starts from zero."""
    seen, used = counts.get(key, (bucket, 0))
    used = (used if seen == bucket else 0) + amount
    counts[key] = (bucket, used)
    return used


@dataclass(slots=True)
class WeightCounter:
    used: dict[str, tuple[int, int]] = field(default_factory=dict)  # ip -> (minute, weight)
    strikes: dict[str, tuple[int, int]] = field(default_factory=dict)  # ip -> (minute, 429s)
    banned_until: dict[str, float] = field(default_factory=dict)
    # api key -> (bucket, orders in it): 10 s buckets and UTC days
    orders_10s: dict[str, tuple[int, int]] = field(default_factory=dict)
    orders_day: dict[str, tuple[int, int]] = field(default_factory=dict)

    def charge(self, ip: str, weight: int, now_s: float, limits: Limits) -> dict[str, str]:
        """Count the request; the headers to send, or BinanceError 429/418 carrying them."""
        minute = _bucket(now_s, 60)
        used = _count(self.used, ip, minute, weight)
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        until = self.banned_until.get(ip, 0.0)
        if now_s < until:
            headers["Retry-After"] = str(math.ceil(until - now_s))
            msg = (
                f"Way too much request weight used; IP banned until {int(until * 1000)}. "
                "Please use WebSocket Streams for live updates to avoid bans."
            )
            raise BinanceError(418, -1003, msg, headers)
        if limits.weight_per_min and used > limits.weight_per_min:
            if _count(self.strikes, ip, minute) > limits.ban_after:
                self.banned_until[ip] = now_s + limits.ban_s
                return self.charge(ip, 0, now_s, limits)
            headers["Retry-After"] = str(math.ceil((minute + 1) * 60 - now_s))
            msg = (
                f"Too much request weight used; current limit is {limits.weight_per_min} "
                "request weight per 1 MINUTE. Please use WebSocket Streams for live updates "
                "to avoid polling the API."
            )
            raise BinanceError(429, -1003, msg, headers)
        return headers

    def count_order(self, key: str, now_s: float, limits: Limits) -> dict[str, str]:
        """Count one new order for the key; refuse with -1015 past either limit."""
        in_10s = _count(self.orders_10s, key, _bucket(now_s, 10))
        in_day = _count(self.orders_day, key, _bucket(now_s, 86_400))
        headers = {"X-MBX-ORDER-COUNT-10S": str(in_10s), "X-MBX-ORDER-COUNT-1D": str(in_day)}
        for used, limit, span in (
            (in_10s, limits.orders_per_10s, "10 SECOND"),
            (in_day, limits.orders_per_day, "1 DAY"),
        ):
            if limit and used > limit:
                msg = f"Too many new orders; current limit is {limit} orders per {span}."
                raise BinanceError(429, -1015, msg, headers)
        return headers
