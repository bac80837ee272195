"""``--oanda-accounts``: tokens bound to account ids reach the exchange's config, a bad entry
is refused naming it, and no token shows in the config's repr or the error."""

from __future__ import annotations

from typing import Any

from brokers.paper.state import SimConfig
from tests.brokers.paper.test_cli import invoke, served  # noqa: F401  (served: a fixture)


def test_tokens_are_bound_to_their_accounts(served: list[dict[str, Any]]) -> None:  # noqa: F811
    result = invoke("--oanda-accounts", "101-1:tok-a,101-2:tok-a,101-3:tok-b")

    assert result.exit_code == 0, result.output
    config: SimConfig = served[0]["config"]
    assert config.oanda_tokens == {"tok-a": ("101-1", "101-2"), "tok-b": ("101-3",)}
    assert "tok-" not in repr(config)


def test_a_bad_entry_is_refused_without_echoing_tokens(
    served: list[dict[str, Any]],  # noqa: F811
) -> None:
    result = invoke("--oanda-accounts", "101-1:hush-1,101-2")

    assert result.exit_code == 2
    assert "entry 2 is not KEY:SECRET" in " ".join(result.output.split())
    assert "hush" not in result.output
    assert served == []
