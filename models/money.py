"""The one decimal context money arithmetic runs in, whatever the thread's context is.

Python's default context has 28 significant digits (and is anyone's to change); the money
columns hold NUMERIC(38, 18). Sums and products of column values stay exact here, and a
NaN, an overflow or a float mixed in raises instead of passing silently.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    DivisionByZero,
    FloatOperation,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Final, ParamSpec, TypeVar

PRECISION = 60  # far above NUMERIC(38, 18): products and quotients are exact before rounding
MONEY_CONTEXT: Final = Context(
    prec=PRECISION, rounding=ROUND_HALF_EVEN, Emin=-999_999, Emax=999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow, FloatOperation],
)  # fmt: skip
P = ParamSpec("P")
R = TypeVar("R")


def in_money_context(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` in ``MONEY_CONTEXT``, so its result never depends on the caller's."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext(MONEY_CONTEXT):
            return function(*args, **kwargs)

    return run
