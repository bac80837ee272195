"""Reading Coinbase JSON values: the shared readers (``brokers.values``) under Coinbase's
names, and what Coinbase alone writes: "" (as well as null) for a number or time not set.

Pure functions; a ``ParseError`` becomes a MalformedResponse or a MalformedItem upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from brokers.values import (
    ParseError,
    decimal,
    excerpt,
    fail,
    loads,
    opt_text,
    rfc3339,
    text,
    when,
)
from brokers.values import as_list as array
from brokers.values import as_object as obj
from brokers.values import decimal_str as plain

__all__ = [
    "ParseError",
    "array",
    "decimal",
    "excerpt",
    "fail",
    "loads",
    "obj",
    "opt_decimal",
    "opt_text",
    "opt_when",
    "plain",
    "rfc3339",
    "text",
    "when",
]


def opt_decimal(data: Mapping[str, object], key: str) -> Decimal | None:
    return None if data.get(key) in (None, "") else decimal(data, key)


def opt_when(data: Mapping[str, object], key: str) -> datetime | None:
    return None if data.get(key) in (None, "") else when(data, key)
