"""The metric names a PromQL expression selects, found without a PromQL parser.

Strings, comments, label matchers (``{...}``), ranges and subqueries (``[...]``) and the
label lists of ``by``, ``without``, ``on``, ``ignoring``, ``group_left`` and
``group_right`` are removed first, so label names, label values and Grafana variables
(``$account``, ``$__rate_interval``) are never taken for metrics. What is left that looks
like an identifier, is not a keyword and is not followed by ``(`` (a function or an
aggregation) is a metric name.
"""

from __future__ import annotations

import re
from typing import Final

_STRING: Final = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_COMMENT: Final = re.compile(r"#[^\n]*")
_MATCHERS: Final = re.compile(r"\{[^{}]*\}")
_BRACKETS: Final = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST: Final = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
# Not preceded by a word character, ':', '.' or '$': not the tail of a number (1e3, 10m),
# of a longer name, or a Grafana variable.
_IDENTIFIER: Final = re.compile(r"(?<![\w:.$])[A-Za-z_:][\w:]*+(?!\s*\()")
_KEYWORDS: Final = frozenset(
    {
        "and", "or", "unless", "atan2", "bool", "offset",
        "by", "without", "on", "ignoring", "group_left", "group_right",
        "inf", "nan",
    }
)  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects, e.g. ``{"up", "ordersync_orders"}``."""
    text = _STRING.sub('""', expr)
    text = _COMMENT.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    previous = None
    while previous != text:  # nested subqueries: [5m:1m] inside [...]
        previous, text = text, _BRACKETS.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    return {
        match.group(0)
        for match in _IDENTIFIER.finditer(text)
        if match.group(0).lower() not in _KEYWORDS
    }
