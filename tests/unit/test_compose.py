"""No Docker engine runs in CI: check docker-compose.yml and the Dockerfile by parsing them.

What `docker compose up` would trip over is checked here instead: every service is
there with its dependencies, health checks and restart policy; every `pgq` command
parses with pgq's own click definitions; ports are published on loopback only and
documented; the files, extras and import paths the services use exist.
(tests/examples/test_stack.py then runs the workers' and scheduler's commands for real.)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from pgqueue.cli import main

ROOT = Path(__file__).resolve().parents[2]
ONE_SHOT = {"migrate", "tables"}
LONG_RUNNING = {"postgres", "smtp", "web", "reports", "worker-cpu", "worker-io", "beat",
                "dashboard"}
NO_HEALTHCHECK = {"beat"}  # a follower scheduler holds nothing to probe; see the file


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def _image_path(path: str) -> Path:
    """A path inside the image (/src/...) as a path in this checkout."""
    assert path.startswith("/src/"), path
    return ROOT / path.removeprefix("/src/")


def _workdir() -> Path:
    return _image_path(re.findall(r"^WORKDIR (\S+)$", _dockerfile(), re.M)[-1])


def _pythonpath() -> list[Path]:
    [value] = re.findall(r"^ENV PYTHONPATH=(\S+)$", _dockerfile(), re.M)
    return [_image_path(p) for p in value.split(":")]


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_compose_has_the_full_stack():
    services = _services()
    assert set(services) == ONE_SHOT | LONG_RUNNING
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no"
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
    for name in LONG_RUNNING - NO_HEALTHCHECK:
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["tables"]["depends_on"]["migrate"]["condition"] == \
        "service_completed_successfully"
    for name in ("web", "reports", "worker-cpu", "worker-io", "beat"):
        for step in ONE_SHOT:  # the schema and the examples' tables exist before they start
            assert services[name]["depends_on"][step]["condition"] == \
                "service_completed_successfully", name
    assert services["worker-io"]["depends_on"]["smtp"]["condition"] == "service_healthy"


def test_dependencies_name_services_that_can_meet_their_condition():
    services = _services()
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no health check"
            if spec["condition"] == "service_completed_successfully":
                assert target in ONE_SHOT, f"{target} never completes"


def test_workers_are_split_by_pool_and_stop_gracefully():
    services = _services()
    cpu, io = services["worker-cpu"]["command"], services["worker-io"]["command"]
    assert (_option(cpu, "--pool"), _option(cpu, "--queues")) == ("processes", "cpu")
    assert _option(io, "--pool") == "threads"
    assert set(_option(io, "--queues").split(",")) == {"default", "emails", "io"}
    for name in ("worker-cpu", "worker-io"):
        # Longer than the worker's 30 s --shutdown-timeout, so running jobs can finish.
        assert int(services[name]["stop_grace_period"].removesuffix("s")) > 30
    assert services["beat"]["command"][:2] == ["pgq", "beat"]


def test_ports_are_published_on_loopback_only_and_documented():
    text = (ROOT / "docker-compose.yml").read_text()
    published = []
    for name, service in _services().items():
        for port in service.get("ports", []):
            if isinstance(port, dict):  # long syntax
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
                published.append(str(port["published"]))
            else:
                host_ip, host_port, _ = str(port).split(":")
                assert host_ip == "127.0.0.1", f"{name}: publish {port} on loopback only"
                published.append(host_port)
        assert service.get("network_mode") != "host", name
    assert sorted(published) == ["5555", "8000", "8001"]
    header = text.split("\nx-", 1)[0]
    for port in published:
        assert re.search(rf"^#\s+{port}\s", header, re.M), f"port {port} is not documented"


def test_dashboard_listens_beyond_loopback_only_with_a_token_from_the_environment():
    dashboard = _services()["dashboard"]
    assert _option(dashboard["command"], "--host") == "0.0.0.0"
    assert "--token" not in dashboard["command"]  # options show in ps; the variable does not
    token = dashboard["environment"]["PGQ_DASHBOARD_TOKEN"]
    # Required interpolation: compose refuses to start without it; no secret in the file.
    assert re.fullmatch(r"\$\{PGQ_DASHBOARD_TOKEN:\?[^${}]+\}", token), token


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_only_required_variables_are_interpolated():
    # compose reads every "$" in a value: a stray one, such as "$(openssl ...)", breaks the
    # whole file (comments are not read).
    required = re.compile(r"\$\{[A-Z_]+:\?[^${}]+\}")
    for value in _strings(_compose()):
        for dollar in re.finditer(r"\$", value):
            assert required.match(value, dollar.start()), value


def _leaf(group: click.Group, args: list[str]) -> tuple[str, click.Command, list[str]]:
    command: click.Command = group
    name = "pgq"
    while isinstance(command, click.Group):
        name, args = args[0], args[1:]
        assert name in command.commands, f"pgq has no command {name!r}"
        command = command.commands[name]
    return name, command, args


def test_compose_pgq_commands_parse_with_pgq_itself():
    for name, service in _services().items():
        command = service.get("command")
        if not command or command[0] != "pgq":
            continue
        sub_name, sub, args = _leaf(main, command[1:])
        # click parses the options as pgq would: unknown ones, bad choices and bad
        # numbers fail here, without running anything.
        try:
            sub.make_context(sub_name, list(args))
        except click.UsageError as exc:
            pytest.fail(f"{name}: {' '.join(command)}: {exc.format_message()}")


def test_commands_and_health_checks_use_files_that_exist():
    workdir = _workdir()
    for name, service in _services().items():
        words = list(service.get("command") or [])
        test = service.get("healthcheck", {}).get("test", [])
        if test and test[0] == "CMD":
            words += test[1:]
        if name == "postgres":
            continue
        for word in words:
            if word.startswith("/src/"):
                assert _image_path(word).is_file(), f"{name}: {word} is not in the image"
            elif word.endswith(".py"):
                assert (workdir / word).is_file(), f"{name}: {word} is not in {workdir}"


def test_dockerfile_ships_sql_and_installs_existing_extras():
    text = _dockerfile()
    assert "COPY sql" in text and "COPY examples" in text
    [spec] = re.findall(r'pip install --no-cache-dir "\.\[([a-z,]+)\]"', text)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    missing = [e for e in spec.split(",") if e not in extras]
    assert not missing, f"the Dockerfile installs extras pyproject.toml lacks: {missing}"
    for directory in _pythonpath():
        assert directory.is_dir(), directory
    assert _workdir().is_dir()


def test_every_task_queue_is_served_and_the_schedules_are_known():
    for module in ("aiosmtpd", "PIL", "fpdf"):
        pytest.importorskip(module, reason="stack_app imports every example")
    # Imported the way the containers import it: the Dockerfile's PYTHONPATH and WORKDIR.
    probe = ("import json, stack_app; print(json.dumps({'queues': {t.name: t.queue for t in "
             "stack_app.app.tasks.values()}, 'schedules': sorted(stack_app.app.schedules)}))")
    env = {"PYTHONPATH": ":".join(map(str, _pythonpath())), "PATH": "/usr/bin:/bin",
           "PGQ_DSN": "postgresql://nowhere.invalid/app"}  # App() must not connect on import
    out = subprocess.run([sys.executable, "-c", probe], cwd=_workdir(), env=env, text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    found = yaml.safe_load(out.stdout)  # JSON is YAML
    served = set()
    for name in ("worker-cpu", "worker-io"):
        served |= set(_option(_services()[name]["command"], "--queues").split(","))
    assert set(found["queues"].values()) <= served, found["queues"]
    assert found["schedules"] == ["delete_stale_sessions"]
