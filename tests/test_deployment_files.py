"""docker-compose.yml and the Dockerfile, checked by reading (no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _without_variables(value: str) -> str:
    """The value with each ``${...}`` (filled in from the environment) as ``x``."""
    return re.sub(r"\$\{[^}]*\}", "x", value)


def test_compose_has_every_role() -> None:
    services = _compose()["services"]
    roles = {"rabbitmq", "redis", "postgres", "migrate", "worker", "beat", "flower", "sim"}
    assert roles <= set(services)


def test_celery_roles_use_the_worker_app() -> None:
    services = _compose()["services"]
    for role in ("worker", "beat", "flower"):
        command = services[role]["command"]
        assert command[:3] == ["celery", "-A", "worker"], role
        assert command[3] == role


def test_ordersync_roles_wait_for_migrations_and_use_real_servers() -> None:
    services = _compose()["services"]
    for role in ("worker", "beat", "flower"):
        env = services[role]["environment"]
        assert env["ORDERSYNC_REDIS_URL"].startswith("redis://redis:")
        assert env["ORDERSYNC_DATABASE_URL"].startswith("postgresql://")
        assert services[role]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["migrate"]["command"] == ["ordersync", "db", "upgrade"]


def test_celery_roles_use_rabbitmq_as_their_transport() -> None:
    services = _compose()["services"]
    rabbitmq = services["rabbitmq"]
    user = rabbitmq["environment"]["RABBITMQ_DEFAULT_USER"]
    vhost = rabbitmq["environment"]["RABBITMQ_DEFAULT_VHOST"]
    for role in ("worker", "beat", "flower"):
        url = urlsplit(
            _without_variables(services[role]["environment"]["ORDERSYNC_CELERY_BROKER_URL"])
        )
        assert (url.scheme, url.hostname, url.port) == ("amqp", "rabbitmq", 5672), role
        assert (url.username, url.path) == (user, f"/{vhost}"), role
        assert services[role]["depends_on"]["rabbitmq"]["condition"] == "service_healthy", role


def test_rabbitmq_keeps_its_data_and_reports_its_health() -> None:
    rabbitmq = _compose()["services"]["rabbitmq"]
    version = re.fullmatch(r"rabbitmq:(\d+)\.(\d+)(?:[.-].*)?", rabbitmq["image"])
    assert version is not None, rabbitmq["image"]
    # quorum-queue message TTL (the delay levels) and at-least-once dead-lettering
    assert (int(version[1]), int(version[2])) >= (3, 10)
    assert rabbitmq["healthcheck"]["test"][:2] == ["CMD", "rabbitmq-diagnostics"]
    assert any(v.endswith(":/var/lib/rabbitmq") for v in rabbitmq["volumes"])
    assert rabbitmq["hostname"]  # the node name, and so its data directory, stays the same
    assert "rabbitmq-data" in _compose()["volumes"]


def test_no_secret_is_written_in_the_compose_file() -> None:
    """Passwords, in variables or inside URLs, come from the environment."""
    text = (ROOT / "docker-compose.yml").read_text()
    for match in re.finditer(r"^\s*([A-Z_]*PASS[A-Z_]*):\s*(\S*)", text, re.MULTILINE):
        assert match[2].startswith("${"), match[0]
    urls_with_credentials = re.findall(r"\w+://[^:/\s@]+:([^@\n]+)@", text)
    assert len(urls_with_credentials) == 2  # PostgreSQL's and RabbitMQ's
    for password in urls_with_credentials:
        assert re.fullmatch(r"\$\{[^}]+\}", password), password


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("ordersync", "core", "worker", "models", "brokers", "api", "alembic"):
        assert f"COPY {package} {package}" in dockerfile
    assert "beat_schedule.py" in dockerfile
