"""Flower behind HTTP basic auth: the Stack (``ordersync up``) starts it with a password
given by FLOWER_BASIC_AUTH or generated, in its environment and never on its command line;
without the credentials its UI and API answer 401, with them they show the worker and
ordersync's tasks, and nothing they show carries a secret."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ordersync.stack import (
    FLOWER_USER,
    Stack,
    StackConfig,
    StackError,
    flower_basic_auth,
    flower_healthy,
    sender,
)
from ordersync.up import print_urls

# What Flower serves only to its users: the UI's pages and the HTTP API.
PROTECTED = ("/", "/workers", "/tasks", "/broker", "/api/workers", "/api/tasks",
             "/api/task/types", "/api/queues/length")  # fmt: skip
ORDER = {"account": "demo", "symbol": "AAPL", "side": "buy", "quantity": "1"}


def wait_for(what: str, value: Callable[[], Any], timeout_s: float = 60) -> Any:
    """Poll until ``value()`` is truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout_s
    while not (result := value()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.1)
    return result


def config(tmp_path: Path) -> StackConfig:
    return StackConfig(
        var_dir=tmp_path / "var", database_url=f"sqlite:///{tmp_path / 'o.db'}", sim_port=0,
        flower_port=0, worker_concurrency=2, beat=False, api=False,
    )  # fmt: skip


# -- the credentials, without starting anything ----------------------------------------------


def test_flower_basic_auth_takes_the_first_pair_as_flower_splits_them() -> None:
    assert flower_basic_auth("ops:s3cret") == ("ops", "s3cret")
    assert flower_basic_auth("ops:a:b,other:c") == ("ops", "a:b")
    assert flower_basic_auth("") is None
    assert flower_basic_auth("  ") is None


@pytest.mark.parametrize("value", ["s3cret", ":s3cret", "ops:", "ops:,x:y"])
def test_a_malformed_flower_basic_auth_is_refused_without_showing_it(value: str) -> None:
    with pytest.raises(StackError, match="FLOWER_BASIC_AUTH must be user:password") as error:
        flower_basic_auth(value)
    assert "s3cret" not in str(error.value)


def _printed(capsys: pytest.CaptureFixture[str], tmp_path: Path, *, generated: bool) -> str:
    stack = Stack(config(tmp_path))
    stack.flower_url = "http://127.0.0.1:5555"
    stack.flower_auth, stack.flower_auth_generated = ("ordersync", "pw-123"), generated
    print_urls(stack, demo=False)
    return next(line for line in capsys.readouterr().out.splitlines() if "flower" in line)


def test_up_prints_a_generated_password_once_and_a_given_one_never(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    line = _printed(capsys, tmp_path, generated=True)
    assert "http://127.0.0.1:5555 (user ordersync, password pw-123" in line
    assert "127.0.0.1 only" in line
    line = _printed(capsys, tmp_path, generated=False)
    assert line.split() == ["flower", "http://127.0.0.1:5555", "(basic", "auth", "from",
                            "FLOWER_BASIC_AUTH)"]  # fmt: skip


# -- a running stack -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The system as ``ordersync up`` runs it (no beat: nothing periodic is needed), Flower
    with a generated password."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("FLOWER_BASIC_AUTH", raising=False)
        with Stack(config(tmp_path_factory.mktemp("flower"))) as running:
            yield running


def _flower(stack: Stack) -> tuple[str, tuple[str, str]]:
    assert stack.flower_url is not None
    assert stack.flower_auth is not None
    return stack.flower_url, stack.flower_auth


@pytest.mark.integration
def test_without_its_credentials_flower_answers_401(stack: Stack) -> None:
    url, (user, password) = _flower(stack)
    assert stack.flower_auth_generated
    assert user == FLOWER_USER
    assert len(password) >= 24
    for path in PROTECTED:
        assert httpx.get(url + path, timeout=10).status_code == 401, path
        wrong = httpx.get(url + path, auth=(user, password + "x"), timeout=10)
        assert wrong.status_code == 401, path
    sent = httpx.post(f"{url}/api/task/send-task/ordersync.ping", json={}, timeout=10)
    assert sent.status_code == 401
    # Only the readiness probe and Prometheus's metrics answer without credentials.
    assert httpx.get(f"{url}/healthcheck", timeout=10).text == "OK"
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 200
    assert flower_healthy(url)
    assert flower_healthy(url, (user, password))


@pytest.mark.integration
def test_with_them_flower_shows_the_worker_and_ordersync_tasks(stack: Stack) -> None:
    url, auth = _flower(stack)
    workers = wait_for(
        "the worker in /api/workers",
        lambda: httpx.get(f"{url}/api/workers?refresh=1", auth=auth, timeout=30).json(),
    )
    ((name, info),) = workers.items()
    assert name.startswith("ordersync-")
    assert "-worker@" in name
    assert {"ordersync.place_order", "ordersync.track_order", "ordersync.cancel_order",
            "ordersync.ping"} <= set(info["registered"])  # fmt: skip

    client = sender("flower-test", stack.broker_url, stack.redis_url)
    try:
        # Flower switches the worker's task events on: a task sent then shows in its list.
        def listed() -> dict[str, Any] | None:
            ping = client.send_task("ordersync.ping")
            ping.get(timeout=30)
            tasks = httpx.get(f"{url}/api/tasks", auth=auth, timeout=10).json()
            return tasks if ping.id in tasks else None

        wait_for("ordersync.ping in /api/tasks", listed)
        placed = client.send_task("ordersync.place_order", kwargs=ORDER)
        placed.get(timeout=60)
    finally:
        client.close()

    def succeeded() -> dict[str, Any] | None:
        answer = httpx.get(f"{url}/api/task/info/{placed.id}", auth=auth, timeout=10)
        info: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
        return info if info.get("state") == "SUCCESS" else None

    info = wait_for("the placement's success in /api/task/info", succeeded)
    assert info["name"] == "ordersync.place_order"
    assert info["kwargs"] == repr(ORDER)  # the sender's own rendering of what it sent

    def typed() -> set[str] | None:
        # A task's type is known once its task-received event (which names it) is in.
        answer = httpx.get(f"{url}/api/task/types", auth=auth, timeout=10)
        types = set(answer.json()["task-types"])
        return types if {"ordersync.ping", "ordersync.place_order"} <= types else None

    wait_for("both task types in /api/task/types", typed)
    assert_no_secret_shows(stack, url, auth, placed.id)


def assert_no_secret_shows(stack: Stack, url: str, auth: tuple[str, str], task_id: str) -> None:
    """The brokers' key pairs live in the worker's environment, the Flower password in
    Flower's: no page of Flower, command line or log shows them."""
    secrets = [value for pair in stack.key_pairs.values() for value in pair]
    pages = [
        httpx.get(url + path, auth=auth, timeout=30).text
        for path in ("/api/workers?refresh=1", "/api/tasks", f"/api/task/info/{task_id}",
                     "/metrics", "/workers", "/tasks")
    ]  # fmt: skip
    for secret in secrets:
        assert not any(secret in page for page in pages)
    password = auth[1].encode()
    flower = stack.child("flower")
    assert password not in Path(f"/proc/{flower.pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{flower.pid}/environ").read_bytes().split(b"\0")
    assert b"FLOWER_BASIC_AUTH=" + auth[0].encode() + b":" + password in environ
    for child in stack.children:
        assert password not in Path(f"/proc/{child.pid}/cmdline").read_bytes(), child.name
    for log in stack.logs.iterdir():
        assert password not in log.read_bytes(), log


@pytest.mark.integration
def test_flower_takes_the_basic_auth_given_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:given-password,viewer:other-password")
    # Flower alone (and the exchange the stack always runs): no worker is needed to log in.
    with Stack(dataclasses.replace(config(tmp_path), worker_concurrency=0)) as stack:
        url, auth = _flower(stack)
        assert auth == ("ops", "given-password")
        assert not stack.flower_auth_generated
        for user in (("ops", "given-password"), ("viewer", "other-password")):
            assert httpx.get(f"{url}/api/workers", auth=user, timeout=10).status_code == 200
        assert httpx.get(f"{url}/api/workers", timeout=10).status_code == 401
