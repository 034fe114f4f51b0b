"""A person's view: headless Chromium against the dashboard and a real ``pgq worker``.

It loads the overview, sees the running worker, finds the failed job, clicks Retry on
its page, and watches the job succeed there without reloading the page. With
``PGQ_SCREENSHOT=1`` it also saves the overview to docs/dashboard.png (the README's
picture).
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgqueue import App, JobState, statements
from pgqueue.monitor import Monitor
from tests.conftest import ROOT, count, pgq, wait_for
from tests.dashboard.conftest import serving
from tests.tasks_app import register

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--window-size=1400,1100"]

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver packages "
           "(apt-get install chromium chromium-driver)")
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install "
                                                             "selenium)")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def real_worker(dsn: str) -> Iterator[int]:
    proc = pgq(dsn, "worker", "--app", "tasks_app:app", "--queues", "default",
               stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))  # noqa: SIM115
    try:
        assert wait_for(lambda: count(dsn, "SELECT count(*) FROM pgqueue.worker_status "
                                           "WHERE status = 'up'") == 1, 20), "no worker"
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _until(driver: Any, condition: Callable[[Any], Any], timeout: float = 15) -> Any:
    # The live fragments are swapped every 2 s: an element found just before a swap goes
    # stale, which only means "look again".
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=[StaleElementReferenceException]).until(condition)


def _text(css: str) -> Callable[[Any], str]:
    return lambda d: " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, css))


def test_fix_a_failed_job_from_the_browser(dsn: str, browser: Any) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.first_runs (key text PRIMARY KEY)")
    app = App(dsn)
    register(app)
    screenshot = os.environ.get("PGQ_SCREENSHOT") == "1"
    with real_worker(dsn) as worker_pid, serving(app) as base:
        job = app.tasks["fails_first_time"].delay("invoice-42")
        _background_work(app, seconds=45 if screenshot else 0)
        assert wait_for(lambda: job.state == JobState.FAILED, 15)

        # The overview shows the worker, live, and the failure in its task's row.
        browser.get(f"{base}/?window=5m")
        _until(browser, lambda d: str(worker_pid) in _text('tr.worker[data-status="up"]')(d))
        assert "fails_first_time" in _text("tr.task")(browser)
        if screenshot:
            _save_overview(browser)

        # From the failures list to the job's page: the attempt's traceback is there.
        browser.find_element(By.LINK_TEXT, "Failures").click()
        _until(browser, lambda d: d.find_elements(By.LINK_TEXT, str(job.id)))[0].click()
        _until(browser, lambda d: "first run of 'invoice-42' fails, as planned"
               in _text("#attempt-1 pre.traceback")(d))
        assert _text("#job-state")(browser) == "failed"

        # Retry, then see it succeed on the same page, updated in place by htmx. The
        # queue is paused meanwhile so the page surely shows "queued" first: what turns
        # it to "succeeded" is then the live update, not the page load.
        monitor = Monitor(app)
        monitor.pause_queue("default")
        _until(browser, lambda d: d.find_element(
            By.CSS_SELECTOR, f'form[action="/api/jobs/{job.id}/retry"] button')).click()
        _until(browser, lambda d: "notice=retried" in d.current_url)
        _until(browser, lambda d: _text("#job-state")(d) == "queued")
        assert "Job queued again." in browser.page_source
        browser.execute_script("window.pgqSamePage = true")
        monitor.resume_queue("default")
        _until(browser, lambda d: _text("#job-state")(d) == "succeeded", timeout=20)
        assert browser.execute_script("return window.pgqSamePage") is True  # no reload
        assert job.get(timeout=1) == "invoice-42 done"


def _background_work(app: App, seconds: float) -> None:
    """Traffic of varying rate, so the overview has something to show (for the screenshot:
    45 s fill a few of the 5-minute window's 10 s buckets)."""
    add, boom = app.tasks["add"], app.tasks["boom"]
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        add.map([(n, i) for i in range(2 + int(6 * (1 + math.sin(n / 9))))])
        if n % 7 == 0:
            boom.delay("disk full")
        n += 1
        time.sleep(0.5)


def _save_overview(browser: Any) -> None:
    _until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-failed canvas"))
    time.sleep(2.5)  # one more poll, so the chart holds the latest buckets
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(docs / "dashboard.png"))


TRICKY_QUEUE = "a/../../schedules/nightly"


def test_a_queue_name_cannot_turn_pause_into_another_action(dsn: str, browser: Any) -> None:
    """A queue named like a path (written by SQL: enqueue refuses "/") gets the Pause
    button of its own row: its name travels as one path segment, "/" as %2F, and the
    router, under the real server, decodes that one segment only."""
    app = App(dsn)
    register(app)
    app.add_periodic("nightly", "add", cron="0 3 * * *", args=(1, 2))
    app.client.execute(statements.sync_schedule(app.settings.schema, app.schedules["nightly"]))
    monitor = Monitor(app)
    monitor.resume_queue(TRICKY_QUEUE)  # a settings row, not paused: the overview lists it
    with serving(app) as base:
        browser.get(f"{base}/?window=5m")
        browser.execute_script("window.confirm = function () { return true; };")
        row = _until(browser, lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, "tr")
                                         if r.text.startswith(TRICKY_QUEUE)])[0]
        form = row.find_element(By.CSS_SELECTOR, "form.inline")
        action = form.get_attribute("action")  # as the browser resolved it
        form.find_element(By.TAG_NAME, "button").click()
        _until(browser, lambda d: "notice=" in d.current_url)
    assert {s.name: s.paused for s in monitor.schedules()}["nightly"] is False
    assert {q.queue: q.paused for q in monitor.queues()}[TRICKY_QUEUE] is True
    assert action.endswith("/api/queues/a%2F..%2F..%2Fschedules%2Fnightly/pause")
