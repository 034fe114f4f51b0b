"""examples/reports for real: the web app on a free port requests a report, a
`--pool processes` worker renders it with fpdf2, and the PDF downloads once ready."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from tests.conftest import wait_for
from tests.examples.conftest import example_pgq, stop

pytest.importorskip("fpdf", reason="the reports example needs fpdf2")


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def _status(url: str) -> dict[str, Any]:
    code, _, body = _get(url)
    assert code == 200
    return json.loads(body)


@pytest.mark.timeout(30)
def test_report_renders_in_the_background_and_downloads_as_pdf(dsn, load_example):
    reports_app = load_example("reports", "reports_app")
    reports_app.create_tables(dsn)
    pool = ConnectionPool(dsn, min_size=1, max_size=2, open=True)
    server = reports_app.ReportsServer(("127.0.0.1", 0), pool)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    worker = None
    try:
        request = urllib.request.Request(f"{base}/reports", data=b"title=Q3+d%C3%A9j%C3%A0+vu",
                                         method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 202
            created = json.load(response)
        # No worker yet: the request is recorded, the download is refused for now.
        pending = _status(f"{base}/reports/{created['report_id']}")
        assert (pending["state"], pending["job_state"]) == ("pending", "queued")
        code, _, _ = _get(f"{base}/reports/{created['report_id']}.pdf")
        assert code == 409

        worker = example_pgq(dsn, "reports", "worker", "--app", "reports_app:app",
                             "--queues", "cpu", "--pool", "processes", "--concurrency", "1")
        assert wait_for(lambda: _status(f"{base}/reports/{created['report_id']}")["state"]
                        == "ready", timeout=15, interval=0.1)
        code, content_type, pdf = _get(f"{base}/reports/{created['report_id']}.pdf")
        missing, _, _ = _get(f"{base}/reports/999.pdf")
        _, _, index = _get(f"{base}/")
    finally:
        if worker is not None:
            assert stop(worker) == 0
        server.shutdown()
        server.server_close()
        pool.close()

    assert (code, content_type) == (200, "application/pdf")
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert missing == 404
    assert b"Q3 d\xc3\xa9j\xc3\xa0 vu" in index and b"download" in index
    info = reports_app.app.AsyncResult(created["job_id"]).info()
    assert info.result == {"report_id": created["report_id"], "bytes": len(pdf)}
