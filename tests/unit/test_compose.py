"""No Docker engine runs in CI: check docker-compose.yml and the Dockerfile by parsing them."""

from pathlib import Path

import click
import yaml

from pgqueue.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _options(command: click.Command) -> set[str]:
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def test_compose_file_is_valid_and_complete():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "migrate", "worker", "web"} <= set(services)
    assert "healthcheck" in services["postgres"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "web"):
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"
        assert services[name]["restart"] == "unless-stopped"
    for port in services["web"].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), "publish on loopback only"


def test_compose_pgq_commands_use_real_options():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    group = main
    assert isinstance(group, click.Group)
    for name, service in compose["services"].items():
        command = service.get("command")
        if not command or command[0] != "pgq":
            continue
        sub = group.commands[command[1]]
        unknown = [a for a in command[2:] if a.startswith("-") and a not in _options(sub)]
        assert not unknown, f"{name}: pgq {command[1]} has no option {unknown}"


def test_dockerfile_ships_sql_and_installs_the_package():
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY sql" in text and "pip install" in text
    assert (ROOT / "examples" / "signup" / "signup_app.py").exists()
