"""Dependencies point down: the vocabulary and reports at the bottom import nothing of
ordersync, the domain never imports a broker's package, only the registry names one, and
the paper exchange's engine knows no venue (its dialects plug into it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BROKER_PACKAGES = ("brokers.alpaca",)
# Modules that may name a broker's package: the registry maps kinds to packages, the paper
# exchange serves their dialects, and the benchmark reads the paper exchange's Alpaca JSON.
MAY_NAME_A_BROKER = ("brokers.registry", "brokers.paper.", "ordersync.bench")
# The paper exchange's composition root: the app, the Sim holding every dialect's state, the
# control API that shows each dialect's truth, and the command line. The rest of
# brokers.paper is the broker-neutral engine.
PAPER_COMPOSITION_ROOT = frozenset(
    {"brokers.paper.app", "brokers.paper.state", "brokers.paper.control", "brokers.paper.cli"}
)


def imports(package: str) -> list[tuple[str, str]]:
    """(module, imported module) of every import in ``package``'s source."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found += [(module, f"{node.module}.{alias.name}") for alias in node.names]
            elif isinstance(node, ast.Import):
                found += [(module, alias.name) for alias in node.names]
    return found


def within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_vocabulary_and_reports_import_nothing_of_ordersync() -> None:
    ours = ("models", "brokers", "worker", "api", "ordersync", "beat_schedule")
    assert [(m, i) for m, i in imports("core") if within(i, *ours)] == []


@pytest.mark.parametrize("package", ["core", "models"])
def test_the_domain_never_imports_the_adapters_package(package: str) -> None:
    assert [(m, i) for m, i in imports(package) if within(i, "brokers")] == []


@pytest.mark.parametrize("package", ["models", "worker", "api", "ordersync", "brokers"])
def test_only_the_registry_names_a_brokers_package(package: str) -> None:
    named = [
        (m, i)
        for m, i in imports(package)
        if within(i, *BROKER_PACKAGES)
        and not within(m, *BROKER_PACKAGES)
        and not m.startswith(MAY_NAME_A_BROKER)
    ]
    assert named == []


def venue_packages() -> tuple[str, ...]:
    """Every broker's package (each may hold a paper dialect), the paper engine's aside."""
    found = (p.parent.name for p in (ROOT / "brokers").glob("*/__init__.py"))
    return tuple(f"brokers.{name}" for name in sorted(found) if name != "paper")


def test_the_paper_engine_imports_no_venue_dialect() -> None:
    """Venue rules sit with their dialect (``brokers.alpaca.paper.rules``); only the
    composition root wires them in."""
    named = [
        (m, i)
        for m, i in imports("brokers/paper")
        if within(i, *venue_packages()) and m not in PAPER_COMPOSITION_ROOT
    ]
    assert named == []


def test_the_paper_composition_root_is_found_by_this_test() -> None:
    """The check above would pass vacuously if the walk or the package list saw nothing."""
    assert {"brokers.alpaca", "brokers.binance", "brokers.coinbase"} <= set(venue_packages())
    assert ("brokers.paper.state", "brokers.alpaca.paper.rules.AlpacaRules") in imports(
        "brokers/paper"
    )


def test_a_broker_package_is_found_by_this_test() -> None:
    """The checks above would pass vacuously if the walk saw nothing."""
    assert ("brokers.registry", "brokers.alpaca.adapter.AlpacaBroker") in imports("brokers")
