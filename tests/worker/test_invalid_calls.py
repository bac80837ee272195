"""What a refused call keeps: the contract's argument values, never an unknown argument's
value or a positional one (either may be a credential under any name)."""

from __future__ import annotations

from worker.args import PlaceOrderArgs
from worker.invalid_calls import redact_call

KNOWN = frozenset(PlaceOrderArgs.model_fields)


def test_only_the_contracts_arguments_keep_their_values() -> None:
    kwargs = {"account": "acme", "symbol": "AAPL", "quantity": 1.5, "auth": "Bearer abc",
              "private_key": "-----BEGIN", "key_id": "PK123", "nested": {"x": "y"}}  # fmt: skip
    kept = redact_call(("PKPOSITIONAL", 3), kwargs, KNOWN)
    assert kept == {
        "args": ["***", "***"],
        "kwargs": {"account": "acme", "symbol": "AAPL", "quantity": 1.5, "auth": "***",
                   "private_key": "***", "key_id": "***", "nested": "***"},
    }  # fmt: skip


def test_secret_names_are_masked_inside_known_arguments_too() -> None:
    kept = redact_call((), {"symbol": {"api_key": "k", "side": "buy"}}, KNOWN)
    assert kept["kwargs"] == {"symbol": {"api_key": "***", "side": "buy"}}


def test_an_internal_task_without_a_contract_keeps_its_ids() -> None:
    kept = redact_call(("order-1", 5), {"password": "p"}, None)
    assert kept == {"args": ["order-1", 5], "kwargs": {"password": "***"}}
