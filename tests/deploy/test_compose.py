"""docker-compose.yml, .env.example and the Dockerfile, checked by reading them (no Docker
engine here): every command a container runs exists in the image with its options, every
ORDERSYNC_ variable is a setting, no secret is written down, and the services have the
shape production needs (workers scalable, one beat, health checks, restarts, monitoring)."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import typer
import yaml
from celery.app.control import Inspect
from celery.app.utils import find_app
from celery.bin.base import CLIContext
from celery.bin.celery import celery as celery_cli
from flower.options import options as flower_options
from typer.core import TyperGroup

from models import migrate
from ordersync import cli
from ordersync.embedded_redis import EmbeddedRedis, free_port
from ordersync.settings import Settings
from tests.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
ONE_SHOT = {"migrate"}
RESTARTS = {"always", "unless-stopped", "on-failure"}
# ``${NAME}``, ``${NAME:-default}``, ``${NAME:?message}`` (and their forms without colon).
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
REQUIRED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}")
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|AUTH|_KEY\b|CREDENTIAL", re.IGNORECASE)
URL_PASSWORD = re.compile(r"\w+://[^:/\s@]*:([^@\n]+)@")
# Read by name from the account that names them, not settings.
ACCOUNT_CREDENTIALS = re.compile(r"ORDERSYNC_ACCOUNT_\w*")


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def ordersync_services() -> dict[str, dict[str, Any]]:
    """The services running the image built from the Dockerfile."""
    return {name: s for name, s in services().items() if "build" in s}


def long_running() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if name not in ONE_SHOT}


def strings(node: Any) -> list[str]:
    """Every string value in a parsed YAML node (keys of mappings included)."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): value.strip() for name, value in pairs}


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def dockerfile_env(name: str) -> str:
    match = re.search(rf"^ENV {name}=(\S+)$", dockerfile(), re.MULTILINE)
    assert match, f"the Dockerfile sets no {name}"
    return match[1]


def interpolated(value: str) -> str:
    """The value as compose passes it with .env.example's values: a variable becomes its
    value there, else its default, else ``x``; ``$$`` becomes ``$``."""

    def fill(match: re.Match[str]) -> str:
        name, kind, default = match[1], match[2] or "", match[3] or ""
        return env_example().get(name) or (default if kind.endswith("-") else "x")

    return VARIABLE.sub(fill, value).replace("$$", "$")


def argv(command: Any) -> list[str]:
    """A command or health check as the argument vector it runs (a shell's string split as
    the shell would)."""
    if isinstance(command, str):
        return shlex.split(interpolated(command))
    if not command:
        return []
    if command[0] == "CMD-SHELL":
        assert len(command) == 2, command
        return shlex.split(interpolated(command[1]))
    return [interpolated(arg) for arg in (command[1:] if command[0] == "CMD" else command)]


# -- the commands exist in the image ---------------------------------------------------------


def check_ordersync(args: list[str]) -> None:
    """``ordersync args...`` names a registered command, and its options parse."""
    command = typer.main.get_command(cli.app)  # typer's own click: its classes throughout
    context = command.context_class(command, info_name="ordersync")
    rest = list(args)
    while isinstance(command, TyperGroup):
        assert rest, "ordersync needs a command"
        name = rest.pop(0)
        found = command.get_command(context, name)
        assert found is not None, f"ordersync has no command {name!r}"
        command = found
        context = command.context_class(command, info_name=name, parent=context)
    command.parse_args(context, rest)


def check_celery(args: list[str]) -> None:
    """``celery -A worker role args...``: the app imports, the role is one of celery's
    commands (Flower's included) and its options parse."""
    assert args[:2] == ["-A", "worker"], args
    app = find_app("worker")
    obj = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    top = click.Context(celery_cli, info_name="celery", obj=obj)
    role, *rest = args[2:]
    command = celery_cli.get_command(top, role)
    assert command is not None, f"celery has no command {role!r}"
    context = command.make_context(role, rest, parent=top)
    if role == "flower":  # Flower takes its own options, tornado's
        for option in context.params["tornado_argv"]:
            name = option.removeprefix("--").split("=", 1)[0]
            assert name.replace("_", "-") in flower_options._options, option
            assert "basic" not in name, "Flower's password is never on its command line"
    if role == "inspect":
        assert hasattr(Inspect, context.params["command"]), context.params["command"]


def check_command(args: list[str]) -> None:
    program, *rest = args
    if program == "ordersync":
        check_ordersync(rest)
    elif program == "celery":
        check_celery(rest)
    elif program == "python":
        assert rest[0] == "-c", rest
        compile(rest[1], "<health check>", "exec")
    else:
        pytest.fail(f"the image has no {program!r} (only python, ordersync and celery)")


@pytest.mark.parametrize("name", sorted(ordersync_services()))
def test_every_command_of_the_image_exists_with_its_options(name: str) -> None:
    service = ordersync_services()[name]
    check_command(argv(service["command"]))
    if "healthcheck" in service:
        check_command(argv(service["healthcheck"]["test"]))


def test_the_image_puts_those_commands_on_the_path() -> None:
    """No entrypoint: a service's command runs as written. pip installs the project, so
    ``ordersync`` (its script) and ``celery`` (a dependency's) are on the PATH, and the
    base image has ``python`` for the health checks."""
    text = dockerfile()
    assert re.search(r"^FROM python:3\.11", text, re.MULTILINE)
    assert not re.search(r"^(ENTRYPOINT|CMD)\b", text, re.MULTILINE)
    assert re.search(r"^RUN pip install .* -e \.", text, re.MULTILINE)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'ordersync = "ordersync.cli:app"' in pyproject
    assert '"celery[redis]' in pyproject
    for package in ("ordersync", "core", "worker", "models", "brokers", "api", "alembic"):
        assert f"COPY {package} {package}" in text
    assert "beat_schedule.py" in text


def test_the_image_runs_unprivileged_with_a_state_directory_of_its_own() -> None:
    text = dockerfile()
    assert re.search(r"^USER ordersync$", text, re.MULTILINE)
    var_dir = dockerfile_env("ORDERSYNC_VAR_DIR")
    assert f"install -d -o ordersync -g ordersync {var_dir}" in text
    beat = argv(services()["beat"]["command"])
    schedule = beat[beat.index("--schedule") + 1]
    assert Path(schedule).parent == Path(var_dir)


# -- configuration and secrets ---------------------------------------------------------------


def test_every_ordersync_variable_is_a_setting() -> None:
    settings = {f"ORDERSYNC_{name.upper()}" for name in Settings.model_fields}
    for path in ("docker-compose.yml", ".env.example", "Dockerfile"):
        text = ACCOUNT_CREDENTIALS.sub("", (ROOT / path).read_text())
        for name in re.findall(r"ORDERSYNC_[A-Z0-9_]*[A-Z0-9]", text):
            assert name in settings, f"{path}: {name} is not a setting"


def test_env_example_lists_every_variable_and_holds_no_secret() -> None:
    used = {m[0] for value in strings(compose()) for m in VARIABLE.findall(value)}
    listed = env_example()
    assert used == set(listed), "docker-compose.yml and .env.example name different variables"
    for name, value in listed.items():
        if SECRET_NAME.search(name):
            assert value == "", f".env.example gives {name} a value"
    assert not any(name.startswith("ORDERSYNC_") for name in listed)


def test_no_secret_is_written_in_the_compose_file() -> None:
    """Secrets come from the environment, and compose refuses to start without them."""
    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key) and not re.fullmatch(r"\d+", str(value)):
                assert REQUIRED.fullmatch(str(value)), f"{name}: {key} is written down"
    passwords = {p for value in strings(compose()) for p in URL_PASSWORD.findall(value)}
    assert len(passwords) == 2  # PostgreSQL's and RabbitMQ's, in ordersync's URLs
    for password in passwords:
        assert REQUIRED.fullmatch(password), password
    for value in strings(compose()):  # not on a command line either
        assert "basic-auth" not in value, value
        assert "basic_auth" not in value, value


def test_ordersync_services_reach_the_same_servers_once_migrated() -> None:
    rabbitmq = services()["rabbitmq"]["environment"]
    for name, service in ordersync_services().items():
        env = service["environment"]
        assert env["ORDERSYNC_REDIS_URL"] == "redis://redis:6379/0", name
        assert env["ORDERSYNC_DATABASE_URL"].startswith("postgresql://ordersync:"), name
        broker = env["ORDERSYNC_CELERY_BROKER_URL"]
        assert broker.startswith(f"amqp://{rabbitmq['RABBITMQ_DEFAULT_USER']}:"), name
        assert broker.endswith(f"@rabbitmq:5672/{rabbitmq['RABBITMQ_DEFAULT_VHOST']}"), name
        if name in ONE_SHOT or "profiles" in service:
            continue
        needs = service["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
        for server in ("rabbitmq", "redis", "postgres"):
            assert needs[server]["condition"] == "service_healthy", name
    assert argv(services()["migrate"]["command"]) == ["ordersync", "db", "upgrade"]
    assert services()["migrate"]["restart"] == "no"


def test_dependencies_exist_and_never_reach_into_a_profile() -> None:
    for name, service in services().items():
        for needed in service.get("depends_on") or {}:
            assert needed in services(), f"{name} depends on unknown {needed}"
            if "profiles" not in service:
                assert "profiles" not in services()[needed], f"{name} needs profiled {needed}"


# -- the shape of each role ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(long_running()))
def test_every_long_running_service_has_a_health_check_and_restarts(name: str) -> None:
    service = services()[name]
    test = service["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL"), test
    assert not service["healthcheck"].get("disable")
    assert service["restart"] in RESTARTS


def test_workers_scale_without_colliding() -> None:
    worker = services()["worker"]
    for fixed in ("container_name", "ports", "hostname"):
        assert fixed not in worker, f"a scaled worker cannot have a fixed {fixed}"
    command = argv(worker["command"])
    assert command[:4] == ["celery", "-A", "worker", "worker"]
    assert not {"-B", "--beat"} & set(command), "beat runs once, not in every worker"
    assert worker["environment"]["ORDERSYNC_METRICS_PORT"] == "9808"
    assert "9808" in worker["expose"]
    ping = argv(worker["healthcheck"]["test"])
    assert ping[ping.index("--destination") + 1] == "celery@$HOSTNAME"  # this worker's node
    assert "env_file" in worker  # the brokers' key pairs, to the roles that ask brokers
    for name, service in services().items():
        if name not in ("worker", "api", "stream"):
            assert "env_file" not in service, name


def test_streams_run_a_holder_and_a_standby_with_the_key_pairs() -> None:
    stream = services()["stream"]
    assert argv(stream["command"]) == ["ordersync", "stream"]
    assert stream["deploy"]["replicas"] >= 2  # one holds each account's lease, one stands by
    for fixed in ("container_name", "ports", "hostname"):
        assert fixed not in stream, f"a replicated stream cannot have a fixed {fixed}"
    assert "env_file" in stream
    assert stream["environment"]["ORDERSYNC_STREAM_METRICS_PORT"] == "9810"
    assert "9810" in stream["expose"]


def test_exactly_one_beat() -> None:
    role = ["celery", "-A", "worker", "beat"]
    beats = [name for name, s in services().items() if argv(s.get("command", []))[:4] == role]
    assert beats == ["beat"]
    beat = services()["beat"]
    assert int(beat.get("deploy", {}).get("replicas", 1)) == 1
    assert int(beat.get("scale", 1)) == 1


def test_the_exporter_serves_its_port_inside_the_network() -> None:
    exporter = services()["exporter"]
    assert argv(exporter["command"]) == ["ordersync", "exporter"]
    assert exporter["environment"]["ORDERSYNC_EXPORTER_PORT"] == "9809"
    assert "9809" in exporter["expose"]
    assert "ports" not in exporter
    assert "http://127.0.0.1:9809/" in argv(exporter["healthcheck"]["test"])[-1]


def test_flower_asks_for_basic_auth_from_the_environment() -> None:
    flower = services()["flower"]
    assert REQUIRED.fullmatch(flower["environment"]["FLOWER_BASIC_AUTH"])
    command = argv(flower["command"])
    assert command[:4] == ["celery", "-A", "worker", "flower"]
    assert "--port=5555" in command
    assert "http://127.0.0.1:5555/healthcheck" in argv(flower["healthcheck"]["test"])


def test_the_api_serves_its_port_with_the_admin_key_from_the_environment() -> None:
    api = services()["api"]
    assert argv(api["command"]) == ["ordersync", "api", "--host", "0.0.0.0"]
    env = api["environment"]
    assert REQUIRED.fullmatch(env["ORDERSYNC_API_ADMIN_KEY"])
    assert env["ORDERSYNC_API_PORT"] == "8000"
    assert api["ports"] == ["127.0.0.1:8000:8000"]
    assert "http://127.0.0.1:8000/readyz" in argv(api["healthcheck"]["test"])
    # "Sync now" and the debug view ask the broker: the same key pairs as the workers.
    assert api["env_file"] == services()["worker"]["env_file"]


def test_the_dashboard_links_to_prometheus_flower_and_grafana_where_they_are_published() -> None:
    """By default the links lead to the host ports the tools are published on."""
    env = services()["api"]["environment"]
    for setting, service in (("ORDERSYNC_METRICS_URL", "prometheus"),
                             ("ORDERSYNC_FLOWER_URL", "flower"),
                             ("ORDERSYNC_GRAFANA_URL", "grafana")):  # fmt: skip
        url = urlsplit(interpolated(env[setting]))
        assert url.scheme == "http", setting
        published = [str(p).rsplit(":", 1)[0] for p in services()[service]["ports"]]
        assert f"{url.hostname}:{url.port}" in published, setting


def test_published_ports_answer_on_the_host_only() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to all"


def test_rabbitmq_keeps_its_node_name_and_redis_its_data() -> None:
    assert services()["rabbitmq"]["hostname"] == "rabbitmq"
    assert any(v.endswith(":/var/lib/rabbitmq") for v in services()["rabbitmq"]["volumes"])
    redis = argv(services()["redis"]["command"])
    assert redis[redis.index("--appendonly") + 1] == "yes"
    assert redis[redis.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(v.endswith(":/data") for v in services()["redis"]["volumes"])


def test_prometheus_and_grafana_mount_the_ops_files() -> None:
    prometheus = services()["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert "./ops/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert "./ops:/etc/prometheus/ordersync:ro" in prometheus["volumes"]
    grafana = services()["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert "./ops/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./ops/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    assert REQUIRED.fullmatch(grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"])


def test_every_mounted_file_is_in_the_checkout() -> None:
    """A missing source would make Docker create an empty directory in its place."""
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_the_paper_exchange_runs_only_in_its_profile() -> None:
    sim = services()["sim"]
    assert sim["profiles"] == ["paper"]
    assert not [name for name, s in services().items() if name != "sim" and "profiles" in s]
    command = argv(sim["command"])
    assert command[:2] == ["ordersync", "sim"]
    assert "http://127.0.0.1:8765/_sim/health" in argv(sim["healthcheck"]["test"])


# -- the health checks judge rightly ---------------------------------------------------------


def run_check(args: list[str]) -> int:
    """Run a ``python -c`` health check here, as Docker would in the container."""
    assert args[:2] == ["python", "-c"], args
    return subprocess.run([sys.executable, *args[1:]], capture_output=True, timeout=30).returncode


def started(name: str, tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Compose's command of a service, run here (beat's schedule in ``tmp_path``)."""
    command = argv(services()[name]["command"])
    if "--schedule" in command:
        command[command.index("--schedule") + 1] = str(tmp_path / "celerybeat-schedule")
    with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own handle
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def answers(name: str, env: dict[str, str]) -> bool:
    """Whether the service's health check passes, run here as Docker would run it."""
    check = services()[name]["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL", check
    done = subprocess.run(["/bin/sh", "-c", check[1].replace("$$", "$")], env=env,
                          capture_output=True, timeout=60)  # fmt: skip
    return done.returncode == 0


# What each logs once it listens for a ping (the check would otherwise wait out its timeout).
LISTENING = {"worker": " ready.", "beat": "beat pidbox: Connected"}


@pytest.mark.integration
def test_a_worker_and_beat_answer_their_health_checks(tmp_path: Path) -> None:
    """Run as compose runs them (here on an embedded Redis): each answers the ping sent to
    its own node name, and the check fails when no node of that name answers."""
    url = f"sqlite:///{tmp_path / 'o.db'}"
    migrate.upgrade(url)
    with EmbeddedRedis(tmp_path / "redis", persist=False) as redis_server:
        env = {
            **os.environ,
            "ORDERSYNC_REDIS_URL": redis_server.url,
            "ORDERSYNC_DATABASE_URL": url,
            "ORDERSYNC_VAR_DIR": str(tmp_path),
            "ORDERSYNC_METRICS_PORT": "0",
            "HOSTNAME": socket.gethostname(),  # as Docker sets it
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        env.pop("ORDERSYNC_CELERY_BROKER_URL", None)
        processes = [started(name, tmp_path, env) for name in LISTENING]
        try:
            deadline = time.monotonic() + 60
            for name, line in LISTENING.items():
                log = tmp_path / f"{name}.log"
                while line not in log.read_text():
                    assert time.monotonic() < deadline, f"{name} never listened:\n{log.read_text()}"
                    time.sleep(0.1)
            elsewhere = {**env, "HOSTNAME": "elsewhere"}
            names, envs = [*LISTENING, *LISTENING], [env, env, elsewhere, elsewhere]
            with ThreadPoolExecutor() as pool:  # the checks that fail wait out their timeout
                assert list(pool.map(answers, names, envs)) == [True, True, False, False]
        finally:
            for process in processes:
                stop_process(process, group=True)


@pytest.mark.integration
def test_the_api_answers_its_health_check_once_ready(tmp_path: Path) -> None:
    """Run as compose runs it (here on SQLite and an embedded Redis, its port moved to a free
    one): the check passes while the database and Redis answer, and fails once Redis is gone
    (/readyz answers 503) and once the API is gone."""
    url = f"sqlite:///{tmp_path / 'o.db'}"
    migrate.upgrade(url)
    port = free_port()
    check = argv(services()["api"]["healthcheck"]["test"])
    check[-1] = check[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    with EmbeddedRedis(tmp_path / "redis", persist=False) as redis_server:
        env = {
            **os.environ,
            **{k: interpolated(v) for k, v in services()["api"]["environment"].items()},
            "ORDERSYNC_REDIS_URL": redis_server.url,
            "ORDERSYNC_DATABASE_URL": url,
            "ORDERSYNC_VAR_DIR": str(tmp_path),
            "ORDERSYNC_API_ADMIN_KEY": "k" * 32,
            "ORDERSYNC_API_PORT": str(port),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        env.pop("ORDERSYNC_CELERY_BROKER_URL", None)
        api = started("api", tmp_path, env)
        try:
            deadline = time.monotonic() + 60
            while run_check(check) != 0:
                log = (tmp_path / "api.log").read_text()
                assert api.poll() is None, f"the API exited:\n{log}"
                assert time.monotonic() < deadline, f"the API never answered:\n{log}"
                time.sleep(0.2)
            redis_server.stop()
            assert run_check(check) == 1
        finally:
            stop_process(api, group=True)
    assert run_check(check) == 1


@pytest.mark.parametrize("name", ["exporter", "flower", "sim", "api"])
def test_http_health_checks_want_a_2xx_answer(name: str) -> None:
    check = argv(services()[name]["healthcheck"]["test"])
    statuses = iter([200, 503])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(next(statuses))
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{server.server_address[1]}", check[-1])
        assert run_check([*check[:-1], url]) == 0
        assert run_check([*check[:-1], url]) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert run_check([*check[:-1], url]) == 1  # nothing listens
