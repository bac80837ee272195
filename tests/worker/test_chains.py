"""A chain's first check that could not be sent leaves no live chain behind: the call that
retries (a redelivered placement) starts one instead of trusting one that never ran."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError

from tests.worker.conftest import UnitWorker
from worker import chains


def test_a_first_check_that_could_not_be_sent_drops_its_chain(unit: UnitWorker) -> None:
    token = chains.start_chain(unit.ctx, "order-1")

    def transport_down() -> None:
        raise OperationalError("[Errno 111] Connection refused")

    with pytest.raises(OperationalError):
        chains.first_check_sent(unit.ctx, "order-1", token, transport_down)
    assert not chains.is_live(unit.ctx, "order-1")


def test_a_sent_first_check_keeps_its_chain(unit: UnitWorker) -> None:
    token = chains.start_chain(unit.ctx, "order-2")
    sent: list[str] = []
    chains.first_check_sent(unit.ctx, "order-2", token, lambda: sent.append(token))
    assert sent == [token]
    assert chains.is_live(unit.ctx, "order-2")


def test_a_newer_chain_is_never_dropped_by_an_older_ones_failure(unit: UnitWorker) -> None:
    old = chains.start_chain(unit.ctx, "order-3")
    chains.start_chain(unit.ctx, "order-3")  # superseded the old one meanwhile

    def transport_down() -> None:
        raise OperationalError("down")

    with pytest.raises(OperationalError):
        chains.first_check_sent(unit.ctx, "order-3", old, transport_down)
    assert chains.is_live(unit.ctx, "order-3")
