"""ops/runbook.md: a complete section for every alert, and only commands that exist."""

from __future__ import annotations

import re
import shlex
from typing import Any

import typer.main

from ordersync.cli import app
from tests.ops.conftest import RUNBOOK, RUNBOOK_PREFIX, alert_rules

# Each alert's section says these, in this order.
PARTS = ("**Means.**", "**Confirm.**", "**Do.**", "**Escalate.**")
# `ordersync ...` at the start of a code span, or after `docker compose exec <service>`.
# A log line quoted in the runbook (`ordersync exporter: cannot serve on`) is not one.
COMMAND = re.compile(r"^(?:docker compose exec \S+ )?ordersync ([a-z][a-z-]*(?: [^`]*)?)$")


def _sections() -> dict[str, str]:
    """Anchor (GitHub's slug of the ``##`` heading) -> the section's text."""
    sections: dict[str, str] = {}
    for block in re.split(r"^## ", RUNBOOK.read_text(), flags=re.MULTILINE)[1:]:
        heading, _, body = block.partition("\n")
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        sections[slug] = body
    return sections


def _code_spans() -> list[str]:
    text = re.sub(r"\s*\n\s*", " ", RUNBOOK.read_text())  # a span may wrap
    return re.findall(r"`([^`]+)`", text)


def test_every_alert_has_a_complete_section() -> None:
    sections = _sections()
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook_url"].removeprefix(RUNBOOK_PREFIX)
        assert anchor in sections, f"{rule['alert']}: no '## {rule['alert']}' in the runbook"
        positions = [sections[anchor].find(part) for part in PARTS]
        assert -1 not in positions, f"{rule['alert']}: its section lacks one of {PARTS}"
        assert positions == sorted(positions), rule["alert"]


def test_no_section_for_an_alert_that_does_not_exist() -> None:
    alerts = {str(rule["alert"]).lower() for rule in alert_rules()}
    stray = {slug for slug in _sections() if slug.startswith("ordersync")} - alerts
    assert stray == set()


def test_ordersync_commands_and_options_exist() -> None:
    """Every `ordersync ...` the runbook gives is a command of the CLI, with its options."""
    root: Any = typer.main.get_command(app)
    checked = 0
    for span in _code_spans():
        found = COMMAND.match(span.strip())
        if found is None:
            continue
        words = shlex.split(found.group(1).replace("…", ""))
        command = root
        path = ["ordersync"]
        while words and getattr(command, "commands", None) is not None:
            name = words.pop(0)
            path.append(name)
            assert name in command.commands, f"`{span}`: no command {' '.join(path)}"
            command = command.commands[name]
        options = {opt for param in command.params for opt in param.opts}
        for word in words:
            if word.startswith("--"):
                assert word.split("=")[0] in options, f"`{span}`: {' '.join(path)} has no {word}"
        checked += 1
    assert checked >= 5  # the pattern still finds the commands
