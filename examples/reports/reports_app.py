"""Reports: a PDF rendered in the background, downloadable when it is ready.

``POST /reports`` records a report request and enqueues ``render_report`` in one
transaction, then answers ``202 Accepted`` at once: the browser never waits for a
PDF to render. A worker on the ``cpu`` queue (``--pool processes``: rendering is
CPU work) builds the PDF with fpdf2 and stores it in the ``pdf_reports`` table.
``GET /reports/<id>`` says whether it is ready; ``GET /reports/<id>.pdf``
downloads it. The report describes the database itself (its largest tables and
pgqueue's queues), so it has real content without any sample data.

    pgq worker --app reports_app:app --queues cpu --pool processes --concurrency 2
    python reports_app.py                     # http://127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import logging
import re
import signal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import psycopg
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from psycopg import sql
from psycopg_pool import ConnectionPool

from pgqueue import App, JobContext, JobNotFound

app = App()  # PGQ_DSN says which Postgres

log = logging.getLogger("reports_app")

TABLES = """
CREATE TABLE IF NOT EXISTS pdf_reports (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title      text NOT NULL,
    job_id     bigint,
    pdf        bytea,        -- NULL until the worker has rendered it
    created_at timestamptz NOT NULL DEFAULT now(),
    ready_at   timestamptz
);
"""
REPORT_PATH = re.compile(r"^/reports/(\d+)(\.pdf)?$")


def create_tables(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TABLES)


def _latin1(text: str) -> str:
    # fpdf2's built-in fonts cover Latin-1 only; a title in another script would raise.
    # (Embed a TTF font with pdf.add_font() to print any script.)
    return text.encode("latin-1", "replace").decode("latin-1")


def build_pdf(title: str, tables: list[tuple[Any, ...]], queues: list[tuple[Any, ...]]) -> bytes:
    """Lay out the report: a title, then one table per section."""
    pdf = FPDF()
    pdf.set_title(_latin1(title))
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=16)
    pdf.cell(text=_latin1(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=9)
    pdf.cell(text=f"generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for heading, header, rows in (
        ("Largest tables", ("table", "rows (estimate)", "size"), tables),
        ("Queues", ("queue", "queued", "running", "succeeded", "failed"), queues),
    ):
        pdf.ln(6)
        pdf.set_font("Helvetica", style="B", size=12)
        pdf.cell(text=heading, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Helvetica", size=10)
        with pdf.table() as table:
            for row in (header, *rows):
                cells = table.row()
                for value in row:
                    cells.cell(_latin1(str(value)))
    return bytes(pdf.output())


@app.task(queue="cpu", bind=True, atomic=True, time_limit=300, soft_time_limit=280)
def render_report(self: JobContext, report_id: int) -> dict[str, Any]:
    """Read the figures, render the PDF, store it: the row and the job's success commit
    together, so a report is never marked ready without its PDF, nor rendered twice."""
    conn = self.connection
    assert conn is not None, "an atomic task runs inside its transaction"
    row = conn.execute("SELECT title FROM pdf_reports WHERE id = %s", (report_id,)).fetchone()
    if row is None:
        raise LookupError(f"no report {report_id}")
    tables = conn.execute(
        "SELECT schemaname || '.' || relname, n_live_tup, "
        "pg_size_pretty(pg_total_relation_size(relid)) FROM pg_stat_user_tables "
        "ORDER BY pg_total_relation_size(relid) DESC, 1 LIMIT 20").fetchall()
    queues = conn.execute(sql.SQL(
        "SELECT queue, queued, running, succeeded, failed FROM {} ORDER BY queue"
    ).format(sql.Identifier(app.settings.schema, "queue_stats"))).fetchall()
    pdf = build_pdf(row[0], tables, queues)
    conn.execute("UPDATE pdf_reports SET pdf = %s, ready_at = now() WHERE id = %s",
                 (pdf, report_id))
    return {"report_id": report_id, "bytes": len(pdf)}


def request_report(conn: psycopg.Connection[Any], title: str) -> tuple[int, int]:
    """Record the request and enqueue its rendering on ``conn``, in its transaction."""
    row = conn.execute("INSERT INTO pdf_reports (title) VALUES (%s) RETURNING id",
                       (title,)).fetchone()
    assert row is not None
    job = render_report.apply_async(args=(row[0],), connection=conn)
    conn.execute("UPDATE pdf_reports SET job_id = %s WHERE id = %s", (job.id, row[0]))
    return int(row[0]), job.id


def report_status(conn: psycopg.Connection[Any], report_id: int) -> dict[str, Any] | None:
    """``ready`` once the PDF is stored; else the job's state (``failed`` with its error)."""
    row = conn.execute("SELECT title, job_id, pdf IS NOT NULL, octet_length(pdf) "
                       "FROM pdf_reports WHERE id = %s", (report_id,)).fetchone()
    if row is None:
        return None
    title, job_id, ready, size = row
    status: dict[str, Any] = {"id": report_id, "title": title, "job_id": job_id}
    if ready:
        return {**status, "state": "ready", "bytes": size,
                "download": f"/reports/{report_id}.pdf"}
    try:
        info = app.AsyncResult(job_id).info()
    except JobNotFound:  # pruned long ago without ever succeeding
        return {**status, "state": "lost"}
    state = "failed" if info.state in ("failed", "cancelled") else "pending"
    error = {"type": info.error.type, "message": info.error.message} if info.error else None
    return {**status, "state": state, "job_state": str(info.state), "error": error}


def download(conn: psycopg.Connection[Any], report_id: int) -> bytes | None:
    """The PDF, or None if there is no such report or it is not ready yet."""
    row = conn.execute("SELECT pdf FROM pdf_reports WHERE id = %s", (report_id,)).fetchone()
    return bytes(row[0]) if row and row[0] is not None else None


PAGE = """<!doctype html><meta charset="utf-8"><title>Reports</title>
<h1>Reports</h1>
<form method="post" action="/reports"><input name="title" value="Database report" size="40">
<button>Request a report</button></form><ul>{items}</ul>
<p>Refresh to see new reports become ready.</p>
"""


class Handler(BaseHTTPRequestHandler):
    server: ReportsServer

    def do_POST(self) -> None:
        if self.path != "/reports":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        title = (form.get("title") or ["Database report"])[0].strip()[:200] or "Report"
        with self.server.pool.connection() as conn:  # commits at the end of the block
            report_id, job_id = request_report(conn, title)
        if "text/html" in (self.headers.get("Accept") or ""):  # a browser's form: back to /
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header("Location", "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._json(HTTPStatus.ACCEPTED, {"report_id": report_id, "job_id": job_id,
                                         "status": f"/reports/{report_id}"})

    def do_GET(self) -> None:
        if self.path == "/":
            self._index()
            return
        if self.path == "/health":  # for the container's health check: the database answers
            with self.server.pool.connection() as conn:
                conn.execute("SELECT 1")
            self._json(HTTPStatus.OK, {"ok": True})
            return
        match = REPORT_PATH.match(self.path)
        if match is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": "try GET /, POST /reports (form "
                                              "field title) or GET /reports/<id>[.pdf]"})
            return
        report_id = int(match.group(1))
        with self.server.pool.connection() as conn:
            status = report_status(conn, report_id)
            pdf = download(conn, report_id) if match.group(2) else None
        if status is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no report {report_id}"})
        elif not match.group(2):
            self._json(HTTPStatus.OK, status)
        elif pdf is None:
            # Conflict, not 404: the report exists, it is just not ready (or it failed).
            self._json(HTTPStatus.CONFLICT, {**status, "error": "not ready yet"})
        else:
            self._send(HTTPStatus.OK, pdf, "application/pdf",
                       {"Content-Disposition": f'attachment; filename="report-{report_id}.pdf"'})

    def _index(self) -> None:
        with self.server.pool.connection() as conn:
            rows = conn.execute("SELECT id, title, pdf IS NOT NULL FROM pdf_reports "
                                "ORDER BY id DESC LIMIT 50").fetchall()
        items = "".join(
            f'<li>{html.escape(title)}: <a href="/reports/{i}.pdf">download</a></li>' if ready
            else f'<li>{html.escape(title)}: <a href="/reports/{i}">rendering…</a></li>'
            for i, title, ready in rows)
        self._send(HTTPStatus.OK, PAGE.format(items=items).encode(), "text/html; charset=utf-8")

    def _json(self, code: HTTPStatus, body: dict[str, Any]) -> None:
        self._send(code, (json.dumps(body, default=str) + "\n").encode(), "application/json")

    def _send(self, code: HTTPStatus, data: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class ReportsServer(ThreadingHTTPServer):
    """The HTTP server plus the connection pool its request threads share."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], pool: ConnectionPool) -> None:
        super().__init__(address, Handler)
        self.pool = pool


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)  # PID 1 in a container ignores SIGTERM without a handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: 127.0.0.1; 0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8001, help="port (default: 8001)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit)
    dsn = app.dsn()
    create_tables(dsn)
    with ConnectionPool(dsn, min_size=1, max_size=10, name="reports", open=True) as pool, \
            ReportsServer((args.host, args.port), pool) as server:
        log.info("listening on http://%s:%d", args.host, args.port)
        server.serve_forever()


if __name__ == "__main__":
    main()
