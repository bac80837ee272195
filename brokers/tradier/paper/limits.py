"""Tradier's rate limits: per access token, fixed one-minute windows, one bucket for reads
("standard": 120 a minute in production) and one for orders (its own, size [U]); every
answer carries the bucket's ``X-Ratelimit-Allowed``/``-Used``/``-Available`` and
``-Expiry`` (the window's end in epoch milliseconds, as Tradier's docs sample)."""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOW_S = 60.0


@dataclass(slots=True)
class Buckets:
    windows: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)

    def hit(self, token: str, bucket: str, now_s: float, limit: int) -> tuple[bool, dict[str, str]]:
        """Count one request (0: no limit); whether it may proceed and the headers to send."""
        start, used = self.windows.get((token, bucket), (now_s, 0))
        if now_s >= start + WINDOW_S:
            start, used = now_s, 0
        used += 1
        self.windows[(token, bucket)] = (start, used)
        allowed = limit == 0 or used <= limit
        figure = limit or 1_000_000
        return allowed, {
            "X-Ratelimit-Allowed": str(figure),
            "X-Ratelimit-Used": str(used),
            "X-Ratelimit-Available": str(max(0, figure - used)),
            "X-Ratelimit-Expiry": str(round((start + WINDOW_S) * 1000)),
        }
