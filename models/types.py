"""Column types that keep money exact and time in UTC on every database.

SQLite has no decimal type (SQLAlchemy's Numeric goes through float there) and drops time
zones, so both get a TypeDecorator: decimals are stored as canonical text on SQLite and as
NUMERIC elsewhere; datetimes must be aware and come back aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from models.money import MONEY_CONTEXT

MONEY_SCALE = 18


def canonical(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent form (``100``, not ``1E+2``)."""
    normalized = value.normalize(MONEY_CONTEXT)  # not the thread's 28 digits: exact
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return normalized.quantize(Decimal(1))
    return normalized


class NaiveDatetimeError(ValueError):
    """A naive datetime reached the database layer; every time must carry UTC."""


class Money(TypeDecorator[Decimal]):
    """Exact decimal: NUMERIC(38, 18) on PostgreSQL, canonical text on SQLite."""

    impl = Numeric(38, 18)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"Money columns take Decimal, got {type(value).__name__}")
        if not value.is_finite():
            raise ValueError(f"Money columns take finite decimals, got {value}")
        value = canonical(value)
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > MONEY_SCALE:
            # Refuse rather than let NUMERIC(38, 18) round silently.
            raise ValueError(f"{value} has more than {MONEY_SCALE} decimal places")
        if dialect.name == "sqlite":
            return format(value, "f")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        result = value if isinstance(value, Decimal) else Decimal(value)
        # Drop NUMERIC(38,18)'s trailing zeros so values print alike on every database.
        return canonical(result)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out; naive values are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UTCDateTime columns take datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(f"naive datetime {value!r}: ordersync stores UTC only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Ids of append-only tables that grow with every change (outbox, deliveries): 64-bit on
# PostgreSQL; on SQLite an INTEGER PRIMARY KEY (64-bit already, and AUTOINCREMENT needs it).
BigId = BigInteger().with_variant(Integer(), "sqlite")
