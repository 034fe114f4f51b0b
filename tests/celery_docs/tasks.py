"""Celery's documented examples as the ``tasks.py`` its tutorials build, on pgqueue.celery.

The module is named ``tasks``, as in Celery's "First steps", so the task names are
the documented ones (``tasks.add``). What differs from the docs: the imports
(``s/celery/pgqueue.celery/``), the app line (the broker is the test database,
``CELERY_DOCS_BROKER``), retry delays of a second or less instead of minutes,
and what the docs print inside the worker (errbacks, handlers) is also appended
to a file in ``CELERY_DOCS_JOURNAL``, so the test process can read it.
tests/celery/test_docs_examples.py runs these through a real worker.
"""
# The docs' own idioms are kept: ``raise self.retry(exc=exc)`` inside ``except``
# (Celery chains nothing there) and a %-formatted return value.
# ruff: noqa: B904, UP031

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pgqueue.celery as celery
from pgqueue.celery import Celery, shared_task, states
from pgqueue.celery.exceptions import Ignore, Reject, SoftTimeLimitExceeded
from pgqueue.celery.signals import (
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_success,
    worker_ready,
)
from pgqueue.celery.utils.log import get_task_logger

app = Celery("tasks", broker=os.environ["CELERY_DOCS_BROKER"])

# "First steps": several settings at once.
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    timezone="Europe/Oslo",
    enable_utc=True,
)

logger = get_task_logger(__name__)


def journal(name: str, line: str) -> None:
    """Append a line to the journal file ``name`` (what the docs' examples print)."""
    print(line)
    with open(Path(os.environ["CELERY_DOCS_JOURNAL"]) / name, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


# -- First steps, Next steps, Calling ------------------------------------------------
@app.task
def add(x, y):
    return x + y


@app.task
def mul(x, y):
    return x * y


@app.task
def xsum(numbers):
    return sum(numbers)


@app.task
def tsum(numbers):
    return sum(numbers)


@app.task
def subtract(x, y):
    return x - y


@app.task
def echo(*args, **kwargs):
    """Shows what a call delivered (the docs' ``task.delay(arg1, kwarg1='x')`` task)."""
    return {"args": list(args), "kwargs": kwargs}


@app.task(name="sum-of-two-numbers")
def add_named(x, y):
    return x + y


@shared_task
def shared_add(x, y):
    return x + y


@app.task(typing=False)
def add_untyped(x, y):
    return x + y


@app.task
def error_handler(request, exc, traceback):
    journal(f"errback-{request.id}",
            f"Task {request.id} raised exception: {exc!r}\n{traceback!r}")


@app.task
def log_error(request, exc, traceback):
    journal(f"errback-{request.id}", f"--\n\n{request.id} {exc} {traceback}")


@app.task
def on_chord_error(request, exc, traceback):
    journal("chord-errors", f"Task {request.id!r} raised error: {exc!r}")


@app.task
def reset_buffers(*args):
    return f"reset with {len(args)} arguments"


@app.task
def notify_complete(import_id):
    return f"{import_id} complete"


@app.task
def raising_task():
    raise ValueError("something something")


@app.task(bind=True)
def hello(self, a, b):
    time.sleep(1)
    self.update_state(state="PROGRESS", meta={"progress": 50})
    time.sleep(1)
    self.update_state(state="PROGRESS", meta={"progress": 90})
    time.sleep(1)
    return "hello world: %i" % (a + b)


@app.task(track_started=True)
def slow(seconds):
    time.sleep(seconds)
    return seconds


@app.task(track_started=True)
def slow_then_note(seconds, note):
    """Sleeps, then notes that it ran to its end (a terminated run never does)."""
    time.sleep(seconds)
    journal(note, "ran to its end")
    return seconds


@app.task
def fail():
    raise RuntimeError("fail() always fails")


@app.task(throws=(KeyError,))
def get_foo():
    raise KeyError("foo")


@app.task
def rated(x):
    return x


# Canvas: a user sign-up workflow (chain into a group).
@app.task
def create_user(username, first, last, email):
    return username


@app.task
def import_contacts(user):
    return f"imported the contacts of {user}"


@app.task
def send_welcome_email(user):
    return f"welcomed {user}"


# -- Tasks user guide ----------------------------------------------------------------
@app.task(bind=True)
def dump_context(self, x, y):
    request = self.request
    print(f"Executing task id {request.id}, args: {request.args!r} kwargs: {request.kwargs!r}")
    return {"id": self.request.id, "args": list(self.request.args),
            "kwargs": dict(self.request.kwargs)}


@app.task(bind=True)
def request_info(self):
    r = self.request
    return {"id": r.id, "group": r.group, "retries": r.retries, "is_eager": r.is_eager,
            "called_directly": r.called_directly, "hostname": r.hostname,
            "routing_key": (r.delivery_info or {}).get("routing_key")}


@app.task
def logged_add(x, y):
    logger.info(f"Adding {x} + {y}")
    return x + y


class FailWhaleError(Exception):
    """The twitter client's error in the docs' retry examples."""


class LoginError(Exception):
    pass


@app.task(bind=True)
def send_twitter_status(self, oauth, tweet):
    try:
        if self.request.retries < 2:  # the service is down for the first two tries
            raise FailWhaleError("the fail whale")
        return f"{oauth} posted {tweet!r} after {self.request.retries} retries"
    except (FailWhaleError, LoginError) as exc:
        raise self.retry(exc=exc, countdown=0)


@app.task(bind=True)
def retry_without_raise(self):
    if self.request.retries < 2:
        self.retry(countdown=0)  # no ``raise``: retry() raises by itself
    return self.request.retries


@app.task(bind=True)
def always_login_error(self):
    """No max_retries given: Celery's default (3) applies."""
    raise self.retry(exc=LoginError(f"attempt {self.request.retries}"), countdown=0)


@app.task(bind=True, max_retries=2)
def retry_without_exc(self):
    raise self.retry(countdown=0)


@app.task(bind=True, default_retry_delay=30 * 60)  # retry in 30 minutes by default
def retry_custom_delay(self, x, y):
    try:
        if self.request.retries == 0:
            raise ConnectionError("something raising")
        return x + y
    except Exception as exc:
        # overrides the default delay to retry after 1 second
        raise self.retry(exc=exc, countdown=1)


@app.task(autoretry_for=(FailWhaleError,), retry_kwargs={"max_retries": 5, "countdown": 0})
def refresh_timeline(user):
    if refresh_timeline.request.retries < 2:
        raise FailWhaleError("the fail whale")
    return f"timeline of {user} after {refresh_timeline.request.retries} retries"


@app.task(autoretry_for=(FailWhaleError,), retry_kwargs={"max_retries": 2, "countdown": 0})
def refresh_timeline_down(user):
    raise FailWhaleError(f"no timeline for {user}")


@app.task(autoretry_for=(FailWhaleError,), retry_backoff=True, retry_jitter=False,
          max_retries=2)
def refresh_timeline_backoff(user):
    if refresh_timeline_backoff.request.retries < 2:
        raise FailWhaleError("the fail whale")
    return refresh_timeline_backoff.request.retries


@app.task(bind=True)
def upload_files(self, filenames):
    for i, _file in enumerate(filenames):
        if not self.request.called_directly:
            self.update_state(state="PROGRESS",
                              meta={"current": i, "total": len(filenames)})
        time.sleep(0.4)  # the upload; long enough for a caller to see the progress
    return len(filenames)


@app.task(bind=True)
def get_tweets(self, user):
    timeline = [f"{user}: first", f"{user}: second"]
    if not self.request.called_directly:
        self.update_state(state=states.SUCCESS, meta=timeline)
    raise Ignore()


@app.task(bind=True, acks_late=True)
def render_scene(self, path):
    try:
        raise MemoryError(f"{path} does not fit in memory")
    except MemoryError as exc:
        raise Reject(exc, requeue=False)


class MyTask(celery.Task):
    def before_start(self, task_id, args, kwargs):
        journal(f"handlers-{task_id}", f"Task {task_id} starting with args {list(args)}")

    def on_success(self, retval, task_id, args, kwargs):
        journal(f"handlers-{task_id}", f"Task {task_id} succeeded with result: {retval}")

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        journal(f"handlers-{task_id}", f"{task_id!r} failed: {exc!r}")

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        journal(f"handlers-{task_id}", f"Task {task_id} finished with status: {status}")


@app.task(base=MyTask)
def my_task(x, y):
    return x + y


@app.task(base=MyTask)
def add_key_error(x, y):
    raise KeyError()


class Database:
    """Stands for a database client: counts the connections made in this process."""

    connections = 0

    @classmethod
    def connect(cls) -> Any:
        cls.connections += 1
        return object()


class DatabaseTask(celery.Task):
    _db = None

    @property
    def db(self):
        if self._db is None:
            self._db = Database.connect()
        return self._db


@app.task(base=DatabaseTask, bind=True)
def process_rows(self):
    self.db  # noqa: B018 - the property connects once per process
    return Database.connections


@app.task(bind=True)
def refresh_timeline_manual(self, user):
    try:
        if refresh_timeline_manual.request.retries < 4:
            raise FailWhaleError("the fail whale")
        return refresh_timeline_manual.request.retries
    except FailWhaleError as exc:
        # max_retries given at the call: more than the default 3
        raise refresh_timeline_manual.retry(exc=exc, max_retries=5, countdown=0)


@app.task(autoretry_for=(Exception,), dont_autoretry_for=(ValueError,),
          retry_kwargs={"countdown": 0})
def picky(kind):
    if picky.request.retries == 0:
        raise (ValueError if kind == "value" else RuntimeError)(kind)
    return picky.request.retries


@app.task
def update_page_info(url):
    return fetch_page.delay(url).get()  # a synchronous subtask: Celery refuses


@app.task
def update_page_info_anyway(url):
    return fetch_page.delay(url).get(disable_sync_subtasks=False, timeout=10)


@app.task
def fetch_page(url):
    return f"<html>{url}</html>"


@app.task(soft_time_limit=0.5)
def mytask_soft_limited():
    try:
        for _ in range(50):
            time.sleep(0.1)  # do_work()
        return "finished"
    except SoftTimeLimitExceeded:
        return "cleaned up in a hurry"


@app.task(time_limit=1)
def mytask_hard_limited():
    for _ in range(50):
        time.sleep(0.1)
    return "finished"


# -- Signals guide: the worker-side task signals, and worker_ready ---------------------
@task_prerun.connect
def on_prerun(sender=None, task_id=None, task=None, args=None, kwargs=None, **extra):
    journal(f"signals-{task_id}", f"prerun {task.name}")


@task_postrun.connect
def on_postrun(sender=None, task_id=None, task=None, retval=None, state=None, **extra):
    journal(f"signals-{task_id}", f"postrun {task.name} {state}")


@task_success.connect
def on_success(sender=None, result=None, **extra):
    journal(f"signals-{sender.request.id}", f"success {sender.name} {result!r}")


@task_failure.connect
def on_failure(sender=None, task_id=None, exception=None, **extra):
    journal(f"signals-{task_id}", f"failure {sender.name} {exception!r}")


@task_retry.connect
def on_retry(sender=None, request=None, reason=None, **extra):
    journal(f"signals-{request.id}", f"retry {sender.name} {reason!r}")


@worker_ready.connect
def on_worker_ready(sender=None, **extra):
    journal("worker-ready", "ready")


class NaiveAuthenticateServer(celery.Task):
    """Tasks guide, "Instantiation": a class-based task keeps its state per process."""

    def __init__(self):
        self.users = {"george": "password"}

    def run(self, username, password):
        try:
            return self.users[username] == password
        except KeyError:
            return False


naive_authenticate_server = app.register_task(NaiveAuthenticateServer())


@app.task
def div(x, y):
    return x / y


class HttpError(Exception):
    """Tasks guide, "Creating pickleable exceptions": the args go to Exception.__init__."""

    def __init__(self, status_code, headers=None, body=None):
        self.status_code = status_code
        self.headers = headers
        self.body = body
        super().__init__(status_code, headers, body)


@app.task
def fetch_status(url):
    raise HttpError(404, {"Content-Type": "text/plain"}, f"{url} not found")
