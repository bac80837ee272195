from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from core.enums import BrokerKind, OrderOrigin, OrderStatus, OrderType, Side, TimeInForce
from models.orders import Account, Order
from tests.models.factories import T0


@pytest.fixture
def account(db_session: Session) -> Account:
    account = Account(
        name="demo",
        broker=BrokerKind.ALPACA,
        base_url="http://127.0.0.1:8765",
        credentials_env="ORDERSYNC_ACCOUNT_DEMO",
        created_at=T0,
    )
    db_session.add(account)
    db_session.flush()
    return account


@pytest.fixture
def make_order(db_session: Session, account: Account) -> Callable[..., Order]:
    def make(**overrides: Any) -> Order:
        fields: dict[str, Any] = {
            "account_id": account.id,
            "broker": BrokerKind.ALPACA,
            "client_order_id": f"c-{overrides.get('broker_order_id', 'b-1')}",
            "broker_order_id": "b-1",
            "origin": OrderOrigin.PLACED,
            "symbol": "AAPL",
            "side": Side.BUY,
            "order_type": OrderType.MARKET,
            "time_in_force": TimeInForce.DAY,
            "quantity": Decimal(10),
            "status": OrderStatus.NEW,
            "created_at": T0,
            "updated_at": T0,
        }
        fields.update(overrides)
        order = Order(**fields)
        db_session.add(order)
        db_session.flush()
        return order

    return make
