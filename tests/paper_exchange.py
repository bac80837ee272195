"""A real paper exchange in a subprocess, and a handle to steer it through ``/_sim``.

The process is started once per session; ``paper_exchange`` resets it before each test.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY_ID = "test-key"
SECRET_KEY = "test-secret"  # paper exchange credentials, not a secret
STARTUP_DEADLINE_S = 30.0
T = TypeVar("T")


@dataclass
class PaperExchange:
    base_url: str
    key_id: str
    secret_key: str
    control: httpx.Client  # base_url is <base_url>/_sim

    @property
    def headers(self) -> dict[str, str]:
        """Alpaca auth headers for this exchange."""
        return {"APCA-API-KEY-ID": self.key_id, "APCA-API-SECRET-KEY": self.secret_key}

    def _json(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    def set_faults(self, **fields: object) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self.control.put("/faults", json=fields))
        return result

    def clear_faults(self) -> None:
        self._json(self.control.delete("/faults"))

    def truth(self) -> list[dict[str, Any]]:
        orders: list[dict[str, Any]] = self._json(self.control.get("/truth"))["orders"]
        return orders

    def truth_order(self, order_id: str) -> dict[str, Any]:
        order: dict[str, Any] = self._json(self.control.get(f"/truth/orders/{order_id}"))
        return order

    def requests(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._json(self.control.get("/requests"))
        return stats

    def set_price(self, symbol: str, price: Decimal | str) -> None:
        self._json(self.control.post("/prices", json={symbol: str(price)}))

    def freeze_market(self, frozen: bool = True) -> None:
        self._json(self.control.put("/market", json={"frozen": frozen}))

    def force_fill(
        self, order_id: str, qty: Decimal | str | None = None, price: Decimal | str | None = None
    ) -> dict[str, Any]:
        body = {
            "qty": None if qty is None else str(qty),
            "price": None if price is None else str(price),
        }
        result: dict[str, Any] = self._json(
            self.control.post(f"/orders/{order_id}/fill", json=body)
        )
        return result

    def forget(self, order_id: str) -> None:
        self._json(self.control.post(f"/orders/{order_id}/forget"))

    def reset(self) -> None:
        self._json(self.control.post("/reset"))

    def wait_for(
        self, predicate: Callable[[], T], timeout_s: float = 10, interval_s: float = 0.02
    ) -> T:
        """Poll until ``predicate()`` is truthy and return it; AssertionError at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout_s} s: {predicate}")
            time.sleep(interval_s)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_healthy(process: subprocess.Popen[bytes], control: httpx.Client, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"paper exchange exited with {process.returncode}:\n{log.read_text()}"
            )
        try:
            if control.get("/health").json() == {"ok": True}:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(
        f"paper exchange not healthy after {STARTUP_DEADLINE_S} s:\n{log.read_text()}"
    )


@pytest.fixture(scope="session")
def paper_exchange_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperExchange]:
    """``python -m brokers.paper`` on a free port, healthy before the first test uses it."""
    port = _free_port()
    log = tmp_path_factory.mktemp("paper-exchange") / "exchange.log"
    command = [
        sys.executable,
        "-m",
        "brokers.paper",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--key-id",
        KEY_ID,
        "--secret-key",
        SECRET_KEY,
        "--seed",
        "7",
    ]
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"{base_url}/_sim", timeout=10) as control:
            _wait_healthy(process, control, log)
            yield PaperExchange(base_url, KEY_ID, SECRET_KEY, control)
    finally:
        stop_process(process)


@pytest.fixture
def paper_exchange(paper_exchange_process: PaperExchange) -> PaperExchange:
    """The session's exchange, emptied and without faults."""
    paper_exchange_process.reset()
    paper_exchange_process.clear_faults()
    return paper_exchange_process
