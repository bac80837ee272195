"""What a symbol names, where that changes the arithmetic: a US equity option's contract.

An OCC option symbol (root, expiry ``YYMMDD``, ``C`` or ``P``, strike * 1000 in 8 digits,
e.g. ``AAPL250117C00150000``) names a contract of 100 shares: its price is per share and
its money is price * quantity * 100. Every other symbol's quantity is its unit. Adjusted
contracts (after a split or merger) deliver another amount; their roots carry a digit
(``AAPL1``) and are not told apart here: they are taken as 100 too.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

OCC_SYMBOL = re.compile(r"^([A-Z][A-Z0-9.]{0,5})(\d{6})([CP])(\d{8})$")
OPTION_MULTIPLIER = Decimal(100)  # shares per standard US equity option contract
ONE = Decimal(1)


def is_option(symbol: str) -> bool:
    return OCC_SYMBOL.fullmatch(symbol) is not None


def contract_multiplier(symbol: str) -> Decimal:
    """How many units of money-bearing quantity one unit of ``symbol`` is (100 for an
    option contract, else 1)."""
    return OPTION_MULTIPLIER if is_option(symbol) else ONE


def option_parts(symbol: str) -> tuple[str, date, str, Decimal] | None:
    """(underlying root, expiry, ``C`` or ``P``, strike) of an OCC symbol; None otherwise
    (or when its expiry is not a date)."""
    found = OCC_SYMBOL.fullmatch(symbol)
    if found is None:
        return None
    root, expiry, right, strike = found.groups()
    try:
        day = date(2000 + int(expiry[:2]), int(expiry[2:4]), int(expiry[4:]))
    except ValueError:
        return None
    return root, day, right, Decimal(int(strike)).scaleb(-3)
