"""How a test installs a Debian package it needs: as root or through sudo without a
password, and whether a missing one fails (CI) or skips (elsewhere)."""

from __future__ import annotations

import pytest

from tests import debian


def _which(found: dict[str, str]) -> object:
    return lambda name: found.get(name)


@pytest.fixture
def outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("ORDERSYNC_TEST_REQUIRE_SERVICES", raising=False)


@pytest.mark.usefixtures("outside_ci")
@pytest.mark.parametrize(
    ("variable", "value", "ci"),
    [
        ("CI", "true", True),
        ("CI", "1", True),
        ("CI", "false", False),
        ("CI", "", False),
        ("ORDERSYNC_TEST_REQUIRE_SERVICES", "1", True),
    ],
)
def test_ci_is_recognised(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, ci: bool
) -> None:
    monkeypatch.setenv(variable, value)
    assert debian.in_ci() is ci


def test_a_user_installs_through_sudo_without_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    found = {"apt-get": "/usr/bin/apt-get", "sudo": "/usr/bin/sudo"}
    monkeypatch.setattr("shutil.which", _which(found))
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert debian._install_command("update") == [
        "/usr/bin/sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive", "/usr/bin/apt-get",
        "update",
    ]  # fmt: skip


def test_root_installs_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", _which({"apt-get": "/usr/bin/apt-get"}))
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert debian._install_command("update")[:2] == ["env", "DEBIAN_FRONTEND=noninteractive"]
