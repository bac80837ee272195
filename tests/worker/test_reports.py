"""Which database errors mean "a concurrent writer got in first" and so retry an apply."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from worker.reports import raced


class DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (StaleDataError("version moved"), True),
        (IntegrityError("insert", {}, DriverError("23505")), True),
        (OperationalError("commit", {}, DriverError("40P01")), True),  # deadlock broken
        (OperationalError("commit", {}, DriverError("40001")), True),  # serialization
        (OperationalError("connect", {}, DriverError("08006")), False),  # connection lost
        (OperationalError("sqlite", {}, DriverError(None)), False),
    ],
)
def test_only_races_are_retried(error: Exception, retry: bool) -> None:
    assert raced(error) is retry
