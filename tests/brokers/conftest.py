"""Fixtures shared by the paper exchange's unit tests (its engine and its dialects)."""

from __future__ import annotations

import pytest

from tests.brokers.paper import FakeClock, RecordingSleep


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()
