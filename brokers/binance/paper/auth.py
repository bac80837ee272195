"""SIGNED endpoint security as rest-api.md defines it: the X-MBX-APIKEY header, ``timestamp``
within ``recvWindow`` (default 5000, at most 60000, never more than 1 s ahead), and
``signature`` = hex HMAC-SHA256 of totalParams (the query string, then the body, as sent,
without the signature parameter itself)."""

from __future__ import annotations

import hashlib
import hmac
import re
from decimal import Decimal, InvalidOperation

from brokers.binance.paper.errors import (
    AHEAD_OF_SERVER,
    BAD_API_KEY_FORMAT,
    BAD_RECV_WINDOW,
    BAD_SIGNATURE,
    OUTSIDE_RECV_WINDOW,
    REJECTED_API_KEY,
    bad_value,
    mandatory,
)

KEY_FORMAT = re.compile(r"[A-Za-z0-9_\-.:]{1,128}")
DEFAULT_RECV_WINDOW = Decimal(5000)
MAX_RECV_WINDOW = Decimal(60000)


def unsigned(raw: str) -> str:
    """The part without ``signature=...``, as the client signed it."""
    return "&".join(part for part in raw.split("&") if not part.startswith("signature="))


def signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def check_key(api_key: str, secret: str | None) -> str:
    """The key's secret, or Binance's refusal: no or malformed key -2014, unknown -2015."""
    if not KEY_FORMAT.fullmatch(api_key):
        raise BAD_API_KEY_FORMAT
    if secret is None:
        raise REJECTED_API_KEY
    return secret


def check_signed(params: dict[str, str], query: str, body: str, secret: str, now_ms: int) -> None:
    """Refuse as Binance does: missing timestamp or signature (-1102), a bad recvWindow
    (-1131), a signature that does not match (-1022), a timestamp out of the window (-1021)."""
    for name in ("timestamp", "signature"):
        if not params.get(name):
            raise mandatory(name)
    try:
        timestamp = int(params["timestamp"])
    except ValueError as exc:
        raise bad_value("timestamp") from exc
    window = DEFAULT_RECV_WINDOW
    if "recvWindow" in params:
        try:
            window = Decimal(params["recvWindow"])
        except InvalidOperation as exc:
            raise bad_value("recvWindow") from exc
        if not 0 < window <= MAX_RECV_WINDOW:
            raise BAD_RECV_WINDOW
    expected = signature(secret, unsigned(query) + unsigned(body))
    if not hmac.compare_digest(expected, params["signature"].lower()):
        raise BAD_SIGNATURE
    if timestamp >= now_ms + 1000:
        raise AHEAD_OF_SERVER
    if now_ms - timestamp > window:
        raise OUTSIDE_RECV_WINDOW
