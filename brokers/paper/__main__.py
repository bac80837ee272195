"""``python -m brokers.paper``: run the paper exchange."""

import typer

from brokers.paper.cli import sim_command

typer.run(sim_command)
