"""The docker-compose stack without Docker: its worker and scheduler commands, run as
written in docker-compose.yml, with the PYTHONPATH and working directory the Dockerfile
sets (mapped onto this checkout), do the work of every example."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg_pool import ConnectionPool

from tests.conftest import ROOT, _pgq_env, count, wait_for
from tests.examples.conftest import stop

for module in ("aiosmtpd", "PIL", "fpdf"):
    pytest.importorskip(module, reason="the stack runs every example, with their libraries")


def _image() -> tuple[dict[str, str], Path]:
    """The Dockerfile's PYTHONPATH and final WORKDIR, with /src/ mapped to this checkout."""
    text = (ROOT / "Dockerfile").read_text()
    [path] = re.findall(r"^ENV PYTHONPATH=(\S+)$", text, re.M)
    workdir = re.findall(r"^WORKDIR (\S+)$", text, re.M)[-1]
    local = ":".join(p.replace("/src/", f"{ROOT}/", 1) for p in path.split(":"))
    return {"PYTHONPATH": f"{local}:{ROOT}"}, Path(workdir.replace("/src/", f"{ROOT}/", 1))


def _start(dsn: str, service: dict[str, Any], log: Path, **env: str) -> subprocess.Popen[str]:
    image_env, workdir = _image()
    command = list(service["command"])
    argv = [sys.executable, "-m", "pgqueue.cli", *command[1:]] if command[0] == "pgq" \
        else [sys.executable, *command[1:]]
    environment = {**_pgq_env(dsn), **service.get("environment", {}), **image_env, **env,
                   "PGQ_DSN": dsn}
    return subprocess.Popen(argv, env=environment, cwd=workdir, text=True,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


@pytest.mark.timeout(40)
def test_the_stack_commands_run_every_example(dsn, load_example, tmp_path):
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    smtp_sink = load_example("signup", "smtp_sink")
    sink = smtp_sink.Sink()
    controller = smtp_sink.start(sink)
    logs = {name: tmp_path / f"{name}.log" for name in ("tables", "worker-cpu", "worker-io",
                                                         "beat", "health")}
    tables = _start(dsn, services["tables"], logs["tables"])
    assert tables.wait(20) == 0, logs["tables"].read_text()
    procs = [
        _start(dsn, services["worker-cpu"], logs["worker-cpu"]),
        # "smtp" is the sink's host name inside compose; here it runs on loopback.
        _start(dsn, services["worker-io"], logs["worker-io"], SIGNUP_SMTP_HOST="127.0.0.1",
               SIGNUP_SMTP_PORT=str(controller.port)),
        _start(dsn, services["beat"], logs["beat"]),
    ]
    signup_app = load_example("signup", "signup_app")
    thumbnails_app = load_example("thumbnails", "thumbnails_app")
    csv_import_app = load_example("csv_import", "csv_import_app")
    reports_app = load_example("reports", "reports_app")
    try:
        from PIL import Image

        Image.new("RGB", (800, 600), "teal").save(tmp_path / "photo.png")
        csv_import_app.generate(tmp_path / "people.csv", 1000)
        with ConnectionPool(dsn, min_size=1, max_size=1) as pool, pool.connection() as conn:
            signup_app.signup(conn, "ada@example.com")
            reports_app.request_report(conn, "Stack report")
        thumbnails_app.submit([str(tmp_path / "photo.png")], str(tmp_path / "thumbs"))
        import_id = csv_import_app.start_import(tmp_path / "people.csv", chunk_rows=250)
        assert wait_for(lambda: "scheduler: leading" in logs["beat"].read_text(), timeout=15)
        trigger = _start(dsn, {"command": shlex.split(
            "pgq schedules trigger delete_stale_sessions")}, tmp_path / "trigger.log")
        assert trigger.wait(15) == 0, (tmp_path / "trigger.log").read_text()
        # 1 e-mail, 1 + 2 + 2 thumbnail jobs, 1 + 4 CSV jobs, 1 report, 1 clean-up
        assert wait_for(lambda: count(dsn, "SELECT count(*) FROM pgqueue.jobs "
                                           "WHERE state = 'succeeded'") == 13,
                        timeout=20, interval=0.1), _states(dsn)
        health = _start(dsn, {"command": ["python", "healthcheck.py", "worker"],
                              "environment": services["worker-io"]["environment"]},
                        logs["health"])
        assert health.wait(15) == 0, logs["health"].read_text()
    finally:
        codes = [stop(p, timeout=20) for p in procs]
        controller.stop()
    assert codes == [0, 0, 0]
    assert [m["To"] for m in sink.messages] == ["ada@example.com"]
    assert csv_import_app.progress(import_id).percent == 100.0
    assert _states(dsn)["pools"] == {
        "delete_stale_sessions": "threads", "fetch_original": "threads",
        "import_chunk": "threads", "make_thumbnail": "processes", "publish": "threads",
        "render_report": "processes", "send_welcome_email": "threads",
        "split_csv": "threads"}


def _states(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        return {
            "states": dict(conn.execute(
                "SELECT task || ':' || state, count(*) FROM pgqueue.jobs GROUP BY 1")),
            "pools": dict(conn.execute(
                "SELECT j.task, string_agg(DISTINCT w.pool, ',') FROM pgqueue.jobs j "
                "JOIN pgqueue.workers w ON w.id = j.worker_id GROUP BY j.task")),
        }
