"""How the session gets promtool: installed with apt-get when missing; where that cannot
be done, a failure in CI and a skip elsewhere."""

from __future__ import annotations

import pytest

from tests.ops import conftest


def _which(found: dict[str, str]) -> object:
    return lambda name: found.get(name)


@pytest.fixture
def outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("ORDERSYNC_TEST_REQUIRE_SERVICES", raising=False)


def test_unavailable_promtool_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no apt"):
        conftest.promtool_unavailable("no apt")


@pytest.mark.usefixtures("outside_ci")
def test_unavailable_promtool_is_skipped_elsewhere() -> None:
    with pytest.raises(pytest.skip.Exception, match="no apt"):
        conftest.promtool_unavailable("no apt")


def test_without_apt_get_nothing_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", _which({}))
    with pytest.raises(LookupError, match="apt-get is not available"):
        conftest.locate_promtool()


def test_a_user_without_sudo_cannot_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", _which({"apt-get": "/usr/bin/apt-get"}))
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(LookupError, match="not root"):
        conftest.locate_promtool()


def test_an_installed_promtool_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", _which({"promtool": "/opt/bin/promtool"}))
    monkeypatch.setattr(conftest, "_install_promtool", lambda: pytest.fail("installed"))
    assert conftest.locate_promtool() == "/opt/bin/promtool"
