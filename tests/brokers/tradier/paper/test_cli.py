"""The Tradier option of ``ordersync sim``: account numbers with their tokens, from the
command line or the environment, refused without echoing a token."""

from __future__ import annotations

from typing import Any

import pytest

from brokers.paper.state import SimConfig
from tests.brokers.paper.test_cli import invoke, served

__all__ = ["served"]  # the fixture, used by name


def test_tradier_accounts_reach_the_config_and_stay_out_of_its_repr(
    served: list[dict[str, Any]],
) -> None:
    result = invoke("--tradier-accounts", "VA1:tok-secret-1,VA2:tok-secret-2")

    assert result.exit_code == 0, result.output
    config: SimConfig = served[0]["config"]
    assert config.tradier_accounts == (("VA1", "tok-secret-1"), ("VA2", "tok-secret-2"))
    assert "tok-secret" not in repr(config)


def test_tradier_accounts_come_from_the_environment(served: list[dict[str, Any]]) -> None:
    result = invoke(env={"ORDERSYNC_SIM_TRADIER_ACCOUNTS": "VA9:tok-9"})

    assert result.exit_code == 0, result.output
    assert served[0]["config"].tradier_accounts == (("VA9", "tok-9"),)


@pytest.mark.parametrize(
    ("accounts", "complaint"),
    [
        ("VA1:hush-1,VA2", "entry 2 is not KEY:SECRET"),
        ("VA1:hush-1,VA1:hush-2", "entry 2: key id 'VA1' is configured twice"),
    ],
)
def test_bad_tradier_accounts_are_refused_without_echoing_tokens(
    served: list[dict[str, Any]], accounts: str, complaint: str
) -> None:
    result = invoke("--tradier-accounts", accounts)

    assert result.exit_code == 2
    assert complaint in " ".join(result.output.replace("│", " ").split())  # the box wraps
    assert "--tradier-accounts" in result.output
    assert "hush" not in result.output
    assert served == []
