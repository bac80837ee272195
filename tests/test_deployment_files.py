"""docker-compose.yml and the Dockerfile, checked by reading (no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_every_role() -> None:
    services = _compose()["services"]
    assert {"redis", "postgres", "migrate", "worker", "beat", "flower", "sim"} <= set(services)


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


def test_no_secret_is_written_in_the_compose_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for match in re.finditer(r"PASSWORD[^\n]*", text):
        assert "${POSTGRES_PASSWORD" in match.group(0) or match.group(0).startswith("PASSWORD:"), (
            match.group(0)
        )


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("ordersync", "worker", "models", "brokers", "api", "alembic"):
        assert f"COPY {package} {package}" in dockerfile
    assert "beat_schedule.py" in dockerfile
