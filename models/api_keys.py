"""API keys per account: shown once at creation, stored as a SHA-256 digest, revocable.

A key is ``osk_<key id>_<secret>``: the key id (public, 12 hex characters) finds the row;
the secret is 32 random bytes. A slow hash exists to stop guessing a low-entropy password
from a stolen digest; a 256-bit random secret cannot be guessed whatever the hash, so a fast
one-way digest is as safe and keeps every request's check cheap. The comparison is
constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base
from models.orders import Account
from models.types import UTCDateTime

PREFIX = "osk"
KEY_PATTERN = re.compile(r"^osk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
LABEL_MAX = 64


class ApiKey(Base):
    """One key of one account; the secret is never stored, only its digest."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(LABEL_MAX))
    digest: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the secret
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UnknownApiKey(LookupError):
    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"no API key {key_id!r}")


@dataclass(frozen=True, slots=True)
class NewKey:
    """What ``create_key`` returns: the whole key, to show once and never again."""

    key_id: str
    key: str


@dataclass(frozen=True, slots=True)
class KeyView:
    key_id: str
    account: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, account: Account, *, label: str, now: datetime) -> NewKey:
    """A fresh key for ``account``; the caller commits, then shows ``key`` once."""
    if not 1 <= len(label) <= LABEL_MAX:
        raise ValueError(f"a key's label has 1 to {LABEL_MAX} characters")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(ApiKey(key_id=key_id, account_id=account.id, label=label,
                       digest=digest_of(secret), created_at=now))  # fmt: skip
    session.flush()
    return NewKey(key_id, f"{PREFIX}_{key_id}_{secret}")


def list_keys(session: Session, account: Account) -> list[KeyView]:
    rows = session.scalars(
        select(ApiKey).where(ApiKey.account_id == account.id).order_by(ApiKey.created_at)
    )
    return [KeyView(k.key_id, account.name, k.label, k.created_at, k.last_used_at, k.revoked_at)
            for k in rows]  # fmt: skip


def revoke_key(session: Session, account: Account, key_id: str, *, now: datetime) -> bool:
    """Revoke one of the account's keys; False if it was revoked already."""
    key = session.get(ApiKey, key_id)
    if key is None or key.account_id != account.id:
        raise UnknownApiKey(key_id)
    if key.revoked_at is not None:
        return False
    key.revoked_at = now
    return True


def verify_key(session: Session, presented: str) -> ApiKey | None:
    """The live key ``presented`` is, or None: malformed, unknown, revoked or wrong secret
    all look the same to the caller."""
    match = KEY_PATTERN.match(presented)
    if match is None:
        return None
    key = session.get(ApiKey, match.group(1))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.digest, digest_of(match.group(2))):
        return None
    return key
