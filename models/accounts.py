"""Accounts (tenants): created idempotently, looked up by name."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import BrokerKind
from models.orders import Account


class UnknownAccount(LookupError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown account {name!r}")


def get_account(session: Session, name: str) -> Account:
    account = session.scalar(select(Account).where(Account.name == name))
    if account is None:
        raise UnknownAccount(name)
    return account


def ensure_account(
    session: Session,
    *,
    name: str,
    broker: BrokerKind,
    base_url: str,
    credentials_env: str,
    rate_limit_per_min: int,
    now: datetime,
) -> Account:
    """Create the account, or update its connection settings if it exists."""
    account = session.scalar(select(Account).where(Account.name == name))
    if account is None:
        account = Account(name=name, created_at=now)
        session.add(account)
    account.broker = broker
    account.base_url = base_url
    account.credentials_env = credentials_env
    account.rate_limit_per_min = rate_limit_per_min
    account.is_active = True
    session.flush()
    return account
