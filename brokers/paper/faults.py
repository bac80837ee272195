"""Fault injection, the rate limiter and request statistics for the /v2 routes, and the
faults of the trade_updates stream.

Faults come in two forms: probabilities (``p_*``) for soak runs and counters (``next_*``:
the next N matching requests or stream messages) so tests are deterministic.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
RangeMs = tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]
UNLIMITED_FIGURE = 1_000_000  # reported as the limit when rate limiting is off
WINDOW_S = 60
DEFAULT_RATE_LIMIT_PER_MIN = 200  # Alpaca's, per account
DEFAULT_SESSION_S = 23_400.0  # 09:30-16:00
DEFAULT_STREAM_MAX_QUEUE = 1000  # unsent messages a stream connection may hold
MIN_SESSION_S = 0.1  # shorter sessions would have the engine do little but open and close


# The engine's own chances of Alpaca's rare statuses, set like any fault.
RARE_STATUS_FIELDS = frozenset(
    {
        "p_pending_new",
        "p_accepted_for_bidding",
        "p_pending_review",
        "p_stopped",
        "p_suspended",
        "p_calculated",
        "rare_status_ms",
    }
)
# Alpaca's crypto settings (brokers.alpaca.paper.crypto.CryptoSettings).
CRYPTO_FIELDS = frozenset({"crypto_fee_bps", "cfee_delay_ms", "crypto_min_notional"})


class FaultSettings(BaseModel):
    """Everything ``PUT /_sim/faults`` may change; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: RangeMs = (0, 0)
    p_429: Probability = 0.0
    p_5xx: Probability = 0.0
    p_timeout: Probability = 0.0
    p_lose_response: Probability = 0.0
    p_reject: Probability = 0.0
    timeout_s: Annotated[float, Field(ge=0.0)] = 10.0
    next_429: Count = 0
    next_5xx: Count = 0
    next_timeout: Count = 0
    next_lose_response: Count = 0
    next_reject: Count = 0
    routes: list[str] | None = None
    rate_limit_per_min: Annotated[int, Field(ge=0)] = DEFAULT_RATE_LIMIT_PER_MIN
    fill_delay_ms: RangeMs = (0, 300)
    # How long the venue takes to acknowledge an order, or to put a replacement in its
    # predecessor's place (a fill may beat it).
    ack_delay_ms: RangeMs = (1, 5)
    partial_fill_probability: Probability = 0.3
    # A fill whose FILL activity is listed only late_activity_ms after it happened.
    p_late_activity: Probability = 0.0
    next_late_activity: Count = 0
    late_activity_ms: RangeMs = (1000, 5000)
    # An order that arrives in the same microsecond as its account's previous one.
    p_same_timestamp: Probability = 0.0
    # Statuses Alpaca reports only on rare occasions, each a chance per order, each lasting
    # rare_status_ms: pending_new, accepted_for_bidding, pending_review before new; stopped
    # before the fills; suspended before working; calculated after the last fill.
    p_pending_new: Probability = 0.0
    p_accepted_for_bidding: Probability = 0.0
    p_pending_review: Probability = 0.0
    p_stopped: Probability = 0.0
    p_suspended: Probability = 0.0
    p_calculated: Probability = 0.0
    rare_status_ms: RangeMs = (50, 500)
    session_s: Seconds = DEFAULT_SESSION_S  # 0: the market never closes
    overnight_s: Seconds = 0.0
    # Crypto: each fill's fee in basis points of what it credits (25: Alpaca's tier-1 taker;
    # 0: no fees), how long its CFEE activity takes to be posted, and the smallest order in
    # dollars (10: Alpaca paper's floor; 0: none).
    crypto_fee_bps: Annotated[Decimal, Field(ge=0, le=10_000, allow_inf_nan=False)] = Decimal(25)
    cfee_delay_ms: RangeMs = (1000, 5000)
    crypto_min_notional: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] = Decimal(10)
    # The trade_updates stream, per event as it is queued for a listening connection (one
    # decision per event and connection, in the engine's order): lost, sent twice, held back
    # and sent after the next event, held stream_stall_ms before it goes (the connection
    # open but silent), or the socket closed abruptly where it would go (so a counter of N
    # closes N connections). Answers to authenticate and listen are never faulted.
    stream_p_drop: Probability = 0.0
    stream_next_drop: Count = 0
    stream_p_duplicate: Probability = 0.0
    stream_next_duplicate: Count = 0
    stream_p_reorder: Probability = 0.0
    stream_next_reorder: Count = 0
    stream_p_disconnect: Probability = 0.0
    stream_next_disconnect: Count = 0
    stream_p_stall: Probability = 0.0
    stream_next_stall: Count = 0
    stream_stall_ms: RangeMs = (1000, 5000)
    # Valid credentials answered "unauthorized" (and the socket closed).
    stream_p_refuse_auth: Probability = 0.0
    stream_next_refuse_auth: Count = 0
    # A connection holding more unsent messages than this is closed (1008): a slow consumer.
    stream_max_queue: Annotated[int, Field(ge=1)] = DEFAULT_STREAM_MAX_QUEUE

    # Binance (brokers.binance.paper): request weight per client address per minute, new
    # orders per key per 10 s and per day (0: no limit), how many 429s in a minute before
    # the address is banned (418) and for how long, and the commission per trade.
    binance_weight_per_min: Annotated[int, Field(ge=0)] = 6000
    binance_orders_per_10s: Annotated[int, Field(ge=0)] = 50
    binance_orders_per_day: Annotated[int, Field(ge=0)] = 160_000
    binance_ban_after: Annotated[int, Field(ge=0)] = 10
    binance_ban_s: Seconds = 120.0
    binance_fee_bps: Annotated[Decimal, Field(ge=0, le=10_000, allow_inf_nan=False)] = Decimal(10)
    # Binance's BNB burn: commissions in BNB, a quarter off, while enough BNB is held.
    binance_bnb_burn: bool = False
    # Coinbase (brokers.coinbase.paper): requests per key per second (0: no limit), and the
    # commission per fill in basis points of its value, for an order that rested in the
    # book first (maker) and for one that took liquidity (taker).
    coinbase_requests_per_s: Annotated[int, Field(ge=0)] = 30
    coinbase_maker_fee_bps: Annotated[Decimal, Field(ge=0, le=10_000, allow_inf_nan=False)] = (
        Decimal(40)
    )
    coinbase_taker_fee_bps: Annotated[Decimal, Field(ge=0, le=10_000, allow_inf_nan=False)] = (
        Decimal(60)
    )
    # OANDA (brokers.oanda.paper): requests per token per second (0: no limit), past which
    # it answers 429 (OANDA documents 100 per second and sends no rate limit headers).
    oanda_requests_per_s: Annotated[int, Field(ge=0)] = 100

    # Tradier (brokers.tradier.paper): requests per access token per minute, reads (its
    # "standard" bucket: 120 in production) and orders (their own bucket, size [U]); 0: none.
    tradier_reads_per_min: Annotated[int, Field(ge=0)] = 120
    tradier_orders_per_min: Annotated[int, Field(ge=0)] = 60
    # Its account events stream: a session not connected within tradier_stream_session_s
    # expires (5 minutes, Tradier's docs), and a heartbeat every tradier_heartbeat_s (one a
    # minute in the docs' sample).
    tradier_stream_session_s: Seconds = 300.0
    tradier_heartbeat_s: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 60.0

    @model_validator(mode="after")
    def _ranges_ordered(self) -> Self:
        ranges = ("latency_ms", "fill_delay_ms", "ack_delay_ms", "late_activity_ms")
        for name in (*ranges, "rare_status_ms", "stream_stall_ms", "cfee_delay_ms"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: min {low} is above max {high}")
        for route in self.routes or ():
            if len(route.split(" ")) != 2:
                raise ValueError(f"routes: {route!r} is not 'METHOD /path'")
        if 0 < self.session_s < MIN_SESSION_S:
            raise ValueError(f"session_s: 0 (never closes) or at least {MIN_SESSION_S} s")
        return self


class Fault(StrEnum):
    RATE_LIMIT = "429"
    UNAVAILABLE = "5xx"
    TIMEOUT = "timeout"
    LOSE_RESPONSE = "lose_response"


_FAULT_FIELDS = {
    Fault.RATE_LIMIT: ("next_429", "p_429"),
    Fault.UNAVAILABLE: ("next_5xx", "p_5xx"),
    Fault.TIMEOUT: ("next_timeout", "p_timeout"),
    Fault.LOSE_RESPONSE: ("next_lose_response", "p_lose_response"),
}


@dataclass(frozen=True, slots=True)
class MessageFate:
    """What the stream faults do to one trade_updates event on one connection."""

    disconnect: bool = False  # the socket closes abruptly instead; the event is lost
    drop: bool = False
    stall_s: float = 0.0  # held this long before it goes, the connection silent but open
    reorder: bool = False  # held back and sent right after the next event sent
    duplicate: bool = False


DELIVER = MessageFate()


class Faults:
    """The current settings plus the decisions drawn from them, request by request."""

    def __init__(self, startup: FaultSettings, rng: random.Random) -> None:
        self.startup = startup
        self.settings = startup.model_copy()
        self._rng = rng

    def reset(self) -> None:
        self.settings = self.startup.model_copy()

    def update(self, changes: dict[str, object]) -> FaultSettings:
        """Merge ``changes`` into the settings; raises pydantic's ValidationError."""
        merged = {**self.settings.model_dump(), **changes}
        self.settings = FaultSettings.model_validate(merged)
        return self.settings

    def applies(self, method: str, path: str) -> bool:
        routes = self.settings.routes
        if routes is None:
            return True
        for route in routes:
            route_method, _, prefix = route.partition(" ")
            if route_method.upper() == method and path.startswith(prefix):
                return True
        return False

    def latency_s(self) -> float:
        low, high = self.settings.latency_ms
        return 0.0 if high == 0 else self._rng.uniform(low, high) / 1000

    def draw(self, *, creates_order: bool) -> Fault | None:
        """The fault for this request, if any: counters first, then probabilities. A lost
        response only where a request creates an order (a placement or a replace)."""
        for fault, (counter, probability) in _FAULT_FIELDS.items():
            if fault is Fault.LOSE_RESPONSE and not creates_order:
                continue
            if self._take(counter, probability):
                return fault
        return None

    def take_reject(self) -> bool:
        return self._take("next_reject", "p_reject")

    def take_late_activity_us(self) -> int:
        """How long the next fill's activity stays unlisted: 0, or a draw from the range."""
        if not self._take("next_late_activity", "p_late_activity"):
            return 0
        low, high = self.settings.late_activity_ms
        return self._rng.randint(low * 1000, high * 1000)

    def take_same_timestamp(self) -> bool:
        chance = self.settings.p_same_timestamp
        return chance > 0 and self._rng.random() < chance

    def draw_stream_message(self, *, holding: bool) -> MessageFate:
        """The fate of an event queued for a connection: a disconnect, else a drop, else any
        of stall, reorder (only when the connection holds none back already) and duplicate.
        No draw is made for a fault that is off, so the rng is untouched while all are."""
        if self._take("stream_next_disconnect", "stream_p_disconnect"):
            return MessageFate(disconnect=True)
        if self._take("stream_next_drop", "stream_p_drop"):
            return MessageFate(drop=True)
        stall_s = 0.0
        if self._take("stream_next_stall", "stream_p_stall"):
            low, high = self.settings.stream_stall_ms
            stall_s = self._rng.randint(low, high) / 1000
        reorder = not holding and self._take("stream_next_reorder", "stream_p_reorder")
        duplicate = self._take("stream_next_duplicate", "stream_p_duplicate")
        if not (stall_s or reorder or duplicate):
            return DELIVER
        return MessageFate(stall_s=stall_s, reorder=reorder, duplicate=duplicate)

    def take_refuse_auth(self) -> bool:
        return self._take("stream_next_refuse_auth", "stream_p_refuse_auth")

    def _take(self, counter: str, probability: str) -> bool:
        remaining: int = getattr(self.settings, counter)
        if remaining > 0:
            setattr(self.settings, counter, remaining - 1)
            return True
        chance: float = getattr(self.settings, probability)
        return chance > 0 and self._rng.random() < chance


@dataclass(slots=True)
class RateLimiter:
    """A fixed window per API key (60 s unless ``window_s`` says otherwise), starting at the
    key's first request."""

    windows: dict[str, tuple[float, int]] = field(default_factory=dict)
    window_s: float = WINDOW_S

    def hit(self, key: str, now_s: float, limit: int) -> tuple[bool, dict[str, str]]:
        """Count one request; returns whether it may proceed and the headers to send."""
        start, used = self._current(key, now_s)
        used += 1
        self.windows[key] = (start, used)
        figure = limit or UNLIMITED_FIGURE
        allowed = limit == 0 or used <= limit
        return allowed, self._headers(figure, max(0, figure - used), start + self.window_s)

    def peek(self, key: str, now_s: float, limit: int) -> dict[str, str]:
        start, used = self._current(key, now_s)
        figure = limit or UNLIMITED_FIGURE
        return self._headers(figure, max(0, figure - used), start + self.window_s)

    def _current(self, key: str, now_s: float) -> tuple[float, int]:
        window = self.windows.get(key)
        if window is None or now_s >= window[0] + self.window_s:
            return now_s, 0
        return window

    @staticmethod
    def _headers(limit: int, remaining: int, reset_s: float) -> dict[str, str]:
        return {
            "X-Ratelimit-Limit": str(limit),
            "X-Ratelimit-Remaining": str(remaining),
            "X-Ratelimit-Reset": str(math.ceil(reset_s)),
        }


@dataclass(slots=True)
class RequestStats:
    """Every /v2 request in ``total``; ``by_account`` counts those whose key was accepted."""

    total: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    by_order: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    faulted: int = 0
    by_account: Counter[str] = field(default_factory=Counter)
    rate_limited_by_account: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, object]:
        return {
            "total": self.total,
            "by_route": dict(self.by_route),
            "by_order": dict(self.by_order),
            "rate_limited": self.rate_limited,
            "faulted": self.faulted,
            "by_account": {
                key: {"total": total, "rate_limited": self.rate_limited_by_account[key]}
                for key, total in self.by_account.items()
            },
        }
