"""Binance request signing: HMAC-SHA256 over the exact query string sent, and the clock
offset that keeps ``timestamp`` inside ``recvWindow`` when the local clock drifts."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlencode

API_KEY_HEADER = "X-MBX-APIKEY"


def epoch_ms(at: datetime) -> int:
    """Milliseconds since the epoch, as Binance counts time."""
    return int(at.timestamp() * 1000)


def sign(secret_key: str, query: str) -> str:
    """The hex HMAC-SHA256 of ``query`` keyed by the secret: Binance's ``signature``."""
    return hmac.new(secret_key.encode(), query.encode(), hashlib.sha256).hexdigest()


class Signer:
    """Holds the key pair; its repr shows the API key only, never the secret."""

    def __init__(self, api_key: str, secret_key: str) -> None:
        if not api_key or not secret_key:
            raise ValueError("api_key and secret_key must be non-empty")
        self.api_key = api_key
        self._secret_key = secret_key

    def signed_query(
        self, params: Mapping[str, str], timestamp_ms: int, recv_window_ms: int
    ) -> str:
        """``params`` with recvWindow and timestamp, then the signature of exactly that text."""
        query = urlencode(
            {**params, "recvWindow": str(recv_window_ms), "timestamp": str(timestamp_ms)}
        )
        return f"{query}&signature={sign(self._secret_key, query)}"

    def __repr__(self) -> str:
        return f"Signer(api_key={self.api_key!r})"


class ClockOffset:
    """Server time minus local time, learned from ``GET /api/v3/time``; None until learned."""

    def __init__(self) -> None:
        self.offset_ms: int | None = None

    def learn(self, server_ms: int, sent: datetime, received: datetime) -> None:
        """Assume the server read its clock halfway through the round trip."""
        midpoint = (epoch_ms(sent) + epoch_ms(received)) // 2
        self.offset_ms = server_ms - midpoint

    def timestamp_ms(self, now: datetime) -> int:
        return epoch_ms(now) + (self.offset_ms or 0)
