"""A real paper exchange in a subprocess, and a handle to steer it through ``/_sim``.

The process is started once per session; ``paper_exchange`` resets it before each test.
It knows eight accounts (``ACCOUNTS``: ``test-key``/``test-secret`` first, then
``test-key-2``/``test-secret-2`` ... ``test-key-8``/``test-secret-8``), limits each key to
Alpaca's 200 requests/min, and starts with a market that never closes (``--session-s 0``):
a test that wants trading sessions asks for them with ``set_session``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout: its exchange, not main's
KEY_ID = "test-key"
SECRET_KEY = "test-secret"  # paper exchange credentials, not a secret
ACCOUNTS: list[tuple[str, str]] = [
    (KEY_ID, SECRET_KEY),
    *((f"test-key-{n}", f"test-secret-{n}") for n in range(2, 9)),
]
STARTUP_DEADLINE_S = 30.0
T = TypeVar("T")


@dataclass
class PaperExchange:
    base_url: str
    key_id: str
    secret_key: str
    control: httpx.Client  # base_url is <base_url>/_sim
    # Every (key id, secret) the exchange accepts, each its own account; (key_id, secret_key)
    # first.
    accounts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        """Alpaca auth headers for this exchange."""
        return {"APCA-API-KEY-ID": self.key_id, "APCA-API-SECRET-KEY": self.secret_key}

    def headers_for(self, key_id: str) -> dict[str, str]:
        """Alpaca auth headers of another configured account."""
        secret = dict(self.accounts)[key_id]
        return {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret}

    def _json(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    def set_faults(self, **fields: object) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self.control.put("/faults", json=fields))
        return result

    def clear_faults(self) -> None:
        self._json(self.control.delete("/faults"))

    def truth(self, account: str | None = None) -> list[dict[str, Any]]:
        """Every order the exchange holds (of one key id's account if given), with its
        ``account``, fills (``id``, ``time``, ``visible_at``) and timeline."""
        params = {} if account is None else {"account": account}
        orders: list[dict[str, Any]] = self._json(self.control.get("/truth", params=params))[
            "orders"
        ]
        return orders

    def truth_order(self, order_id: str) -> dict[str, Any]:
        order: dict[str, Any] = self._json(self.control.get(f"/truth/orders/{order_id}"))
        return order

    def requests(self) -> dict[str, Any]:
        """Request counts: ``total``, ``by_route``, ``by_order``, ``rate_limited``,
        ``faulted`` and ``by_account`` (``{key: {"total", "rate_limited"}}``)."""
        stats: dict[str, Any] = self._json(self.control.get("/requests"))
        return stats

    def set_session(self, session_s: float, overnight_s: float = 0.0) -> dict[str, Any]:
        """Trading sessions of ``session_s`` (0: never closes) with ``overnight_s`` closed
        between them; a new session starts now."""
        return self.set_faults(session_s=session_s, overnight_s=overnight_s)

    def close_day(self) -> dict[str, Any]:
        """Close the session now: ``{"expired": n, "done_for_day": n}``."""
        result: dict[str, Any] = self._json(self.control.post("/close_day"))
        return result

    def clock(self) -> dict[str, Any]:
        """``GET /v2/clock``'s answer (``timestamp``, ``is_open``, ``next_open``,
        ``next_close``) plus ``session_s``/``overnight_s``, not counted as a request."""
        result: dict[str, Any] = self._json(self.control.get("/clock"))
        return result

    def account(self, key_id: str | None = None) -> dict[str, Any]:
        """``GET /v2/account`` as ``key_id`` (default: ``self.key_id``); a counted request."""
        headers = self.headers if key_id is None else self.headers_for(key_id)
        answer = httpx.get(f"{self.base_url}/v2/account", headers=headers, timeout=10)
        result: dict[str, Any] = self._json(answer)
        return result

    def positions(self) -> list[dict[str, Any]]:
        """``GET /v2/positions`` of the first account; a counted request."""
        answer = httpx.get(f"{self.base_url}/v2/positions", headers=self.headers, timeout=10)
        result: list[dict[str, Any]] = self._json(answer)
        return result

    def activities(self, kind: str) -> list[dict[str, Any]]:
        """``GET /v2/account/activities/{kind}`` of the first account (its first page of
        100, oldest first); a counted request."""
        answer = httpx.get(f"{self.base_url}/v2/account/activities/{kind}", timeout=10,
                           headers=self.headers, params={"direction": "asc"})  # fmt: skip
        result: list[dict[str, Any]] = self._json(answer)
        return result

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
        """Empty every account; live trade_updates connections are closed (1012)."""
        self._json(self.control.post("/reset"))

    @property
    def stream_url(self) -> str:
        """The trade_updates WebSocket, as Alpaca's: the REST host, path ``/stream``."""
        return "ws://" + self.base_url.removeprefix("http://") + "/stream"

    def stream_stats(self) -> dict[str, Any]:
        """``GET /_sim/stream``: ``connections`` (``id``, ``account``, ``streams``,
        ``codec``, ``queued``, ``sent``), ``opened``, ``messages`` (``events``, ``sent``,
        ``dropped``, ``duplicated``, ``reordered``, ``stalled``), ``auth`` and
        ``disconnects`` (by cause)."""
        stats: dict[str, Any] = self._json(self.control.get("/stream"))
        return stats

    def disconnect_streams(self, code: int | None = None) -> int:
        """Close every live stream connection: abruptly, or with a close frame of ``code``."""
        params = {} if code is None else {"code": code}
        answer = self._json(self.control.post("/stream/disconnect", params=params))
        closed: int = answer["disconnected"]
        return closed

    def wait_listening(self, account: str | None = None, timeout_s: float = 10) -> None:
        """Until a stream connection of ``account`` (default: ``key_id``) listens."""
        key = account or self.key_id

        def listening() -> bool:
            return any(
                c["account"] == key and c["streams"] == ["trade_updates"]
                for c in self.stream_stats()["connections"]
            )

        self.wait_for(listening, timeout_s)

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
    more = ",".join(f"{key}:{secret}" for key, secret in ACCOUNTS[1:])
    yield from run_exchange(
        tmp_path_factory, "paper-exchange", 7, "--accounts", more, accounts=list(ACCOUNTS)
    )


@pytest.fixture
def paper_exchange(paper_exchange_process: PaperExchange) -> PaperExchange:
    """The session's exchange, emptied and without faults."""
    paper_exchange_process.reset()
    paper_exchange_process.clear_faults()
    return paper_exchange_process


def run_exchange(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    seed: int,
    *extra: str,
    accounts: list[tuple[str, str]] | None = None,
) -> Iterator[PaperExchange]:
    """A paper exchange process of a test module's own (the --key-id account, a market that
    never closes, ``extra`` options such as a dialect's accounts), stopped afterwards;
    ``accounts`` are the Alpaca accounts it knows (default: the --key-id one)."""
    port = _free_port()
    log = tmp_path_factory.mktemp(name) / "exchange.log"
    command = [
        sys.executable, "-m", "brokers.paper", "--host", "127.0.0.1", "--port", str(port),
        "--key-id", KEY_ID, "--secret-key", SECRET_KEY, "--session-s", "0", "--seed", str(seed),
        *extra,
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        # No kept-alive connections: the exchange closes one idle for 5 s (uvicorn's default),
        # and a control call sent on it as it closes fails "disconnected without a response".
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=f"{base_url}/_sim", timeout=10, limits=no_reuse) as control:
            _wait_healthy(process, control, log)
            known = list(ACCOUNTS[:1]) if accounts is None else accounts
            yield PaperExchange(base_url, KEY_ID, SECRET_KEY, control, known)
    finally:
        stop_process(process)
