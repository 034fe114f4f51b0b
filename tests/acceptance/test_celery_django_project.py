"""A typical Celery Django project moves to pgqueue by changing its imports alone.

The project is written here as Celery's "First steps with Django" lays one out:
``proj/celery.py`` (``config_from_object('django.conf:settings', namespace='CELERY')``
and ``autodiscover_tasks()``), ``proj/__init__.py`` importing the app,
``CELERY_*`` settings with task routes and a beat schedule (a crontab entry and
a seconds entry), and two Django apps with ``@shared_task``s: ``accounts`` (a
sign-up whose welcome e-mail retries while the mail server is down) and
``reports`` (a chord, and the periodic heartbeat). Its sources say
``from celery ...``; the test applies only ``s/from celery/from pgqueue.celery/``
(and ``import celery``), then runs it for real: ``manage.py migrate``,
``pgq -A proj worker``, ``pgq -A proj beat`` and ``manage.py runserver``, each a
subprocess, talked to over HTTP, and stopped with SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import ROOT, _janitor, stop_process

pytest.importorskip("django", reason="the Django project test needs Django (dev extras)")

# -- the project, as a Celery user has it -----------------------------------------------
CELERY_PY = '''
import os

from celery import Celery
from celery.schedules import crontab

# Set the default Django settings module for the 'celery' program.
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'proj.settings')

app = Celery('proj')

# All Celery settings live in Django's settings, prefixed CELERY_.
app.config_from_object('django.conf:settings', namespace='CELERY')

# Load the tasks modules of all registered Django apps.
app.autodiscover_tasks()


@app.task(bind=True, ignore_result=True)
def debug_task(self):
    print(f'Request: {self.request!r}')


@app.on_after_configure.connect
def setup_periodic_tasks(sender, **kwargs):
    # Executes every Monday morning at 7:30 a.m.
    sender.add_periodic_task(crontab(hour=7, minute=30, day_of_week=1), debug_task.s(),
                             name='debug every monday')
'''

INIT_PY = '''
# This will make sure the app is always imported when
# Django starts so that shared_task will use this app.
from .celery import app as celery_app

__all__ = ('celery_app',)
'''

SETTINGS_PY = '''
from pathlib import Path

from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = 'not-a-secret'
DEBUG = True
ALLOWED_HOSTS = ['127.0.0.1', 'localhost']

INSTALLED_APPS = [
    'django.contrib.contenttypes',
    'django.contrib.auth',
    'accounts',
    'reports',
]
MIDDLEWARE = ['django.middleware.common.CommonMiddleware']
ROOT_URLCONF = 'proj.urls'
WSGI_APPLICATION = 'proj.wsgi.application'
DATABASES = {{'default': {database!r}}}
DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'
USE_TZ = True
TIME_ZONE = 'UTC'
HEARTBEAT_FILE = BASE_DIR / 'heartbeats.log'
OUTBOX_FILE = BASE_DIR / 'outbox.log'

# Celery Configuration Options
CELERY_BROKER_URL = {broker!r}
CELERY_ACCEPT_CONTENT = ['json']
CELERY_TASK_SERIALIZER = 'json'
CELERY_TIMEZONE = 'Australia/Tasmania'
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_ROUTES = {{
    'accounts.tasks.send_welcome_email': {{'queue': 'emails'}},
}}
CELERY_BEAT_SCHEDULE = {{
    'heartbeat-every-2-seconds': {{
        'task': 'reports.tasks.heartbeat',
        'schedule': 2.0,
        'args': ('beat',),
    }},
    'cleanup-inactive-nightly': {{
        'task': 'accounts.tasks.cleanup_inactive',
        'schedule': crontab(hour=3, minute=30),
    }},
}}
'''

URLS_PY = '''
from django.urls import path

from accounts import views as accounts
from reports import views as reports

urlpatterns = [
    path('signup/', accounts.signup),
    path('invite/', accounts.invite),
    path('status/<str:task_id>/', accounts.status),
    path('reports/words/', reports.word_report),
]
'''

WSGI_PY = '''
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'proj.settings')
application = get_wsgi_application()
'''

MANAGE_PY = '''
#!/usr/bin/env python
import os
import sys

if __name__ == '__main__':
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'proj.settings')
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
'''

ACCOUNTS_TASKS_PY = '''
from celery import shared_task
from celery.utils.log import get_task_logger
from django.conf import settings
from django.contrib.auth.models import User

logger = get_task_logger(__name__)


class MailServerDown(Exception):
    pass


def deliver(user, attempt):
    """Stands for the SMTP call: the mail server is down for the first two tries."""
    if attempt < 2:
        raise MailServerDown('connection refused')


@shared_task(bind=True, max_retries=5)
def send_welcome_email(self, user_id):
    user = User.objects.get(pk=user_id)
    try:
        deliver(user, self.request.retries)
    except MailServerDown as exc:
        raise self.retry(exc=exc, countdown=1)
    with open(settings.OUTBOX_FILE, 'a') as fh:
        fh.write(user.email + '\\n')
    logger.info('welcome e-mail sent to %s', user.email)
    return {
        'to': user.email,
        'retries': self.request.retries,
        'queue': self.request.delivery_info['routing_key'],
    }


@shared_task
def cleanup_inactive():
    return User.objects.filter(is_active=False).delete()[0]
'''

ACCOUNTS_VIEWS_PY = '''
from celery.result import AsyncResult
from django.contrib.auth.models import User
from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .tasks import send_welcome_email


@csrf_exempt
@require_POST
def signup(request):
    user = User.objects.create_user(request.POST['username'], request.POST['email'],
                                    request.POST['password'])
    result = send_welcome_email.delay(user.pk)
    return JsonResponse({'user_id': user.pk, 'task_id': result.id}, status=202)


@csrf_exempt
@require_POST
@transaction.atomic
def invite(request):
    # Celery 5.4's delay_on_commit: sent once the transaction commits, never if it rolls back.
    user = User.objects.create_user(request.POST['username'], request.POST['email'])
    send_welcome_email.delay_on_commit(user.pk)
    if request.POST.get('fail'):
        raise RuntimeError('the request failed after the task was queued')
    return JsonResponse({'user_id': user.pk}, status=202)


def status(request, task_id):
    result = AsyncResult(task_id)
    body = {'task_id': task_id, 'state': result.state}
    if result.successful():
        body['result'] = result.result
    elif result.failed():
        body['error'] = repr(result.result)
    return JsonResponse(body)
'''

REPORTS_TASKS_PY = '''
from celery import shared_task
from django.conf import settings


@shared_task
def count_words(text):
    return len(text.split())


@shared_task
def total(counts):
    return sum(counts)


@shared_task
def heartbeat(source):
    with open(settings.HEARTBEAT_FILE, 'a') as fh:
        fh.write(source + '\\n')
    return source
'''

REPORTS_VIEWS_PY = '''
import json

from celery import chord
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .tasks import count_words, total


@csrf_exempt
@require_POST
def word_report(request):
    texts = json.loads(request.body)['texts']
    result = chord(count_words.s(text) for text in texts)(total.s())
    return JsonResponse({'task_id': result.id}, status=202)
'''


def migrate_imports(source: str) -> str:
    """The whole migration: ``s/from celery/from pgqueue.celery/`` and ``import celery``."""
    source = source.replace("from celery", "from pgqueue.celery")
    return re.sub(r"^(\s*)import celery\b", r"\1import pgqueue.celery as celery", source,
                  flags=re.MULTILINE)


def django_database(dsn: str) -> dict[str, Any]:
    params = conninfo_to_dict(dsn)
    return {"ENGINE": "django.db.backends.postgresql", "NAME": params["dbname"],
            "USER": params.get("user", ""), "PASSWORD": params.get("password", ""),
            "HOST": params.get("host", ""), "PORT": str(params.get("port", ""))}


def broker_url(dsn: str) -> str:
    params = conninfo_to_dict(dsn)
    dbname = params.pop("dbname")
    query = urllib.parse.urlencode(params)
    return f"postgresql:///{dbname}" + (f"?{query}" if query else "")


def write_project(root: Path, dsn: str) -> dict[str, str]:
    """The project as Celery's docs have it, then with the import substitution applied."""
    files = {
        "manage.py": MANAGE_PY,
        "proj/__init__.py": INIT_PY,
        "proj/celery.py": CELERY_PY,
        "proj/settings.py": SETTINGS_PY.format(database=django_database(dsn),
                                               broker=broker_url(dsn)),
        "proj/urls.py": URLS_PY,
        "proj/wsgi.py": WSGI_PY,
        "accounts/__init__.py": "",
        "accounts/tasks.py": ACCOUNTS_TASKS_PY,
        "accounts/views.py": ACCOUNTS_VIEWS_PY,
        "reports/__init__.py": "",
        "reports/tasks.py": REPORTS_TASKS_PY,
        "reports/views.py": REPORTS_VIEWS_PY,
    }
    migrated = {}
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        migrated[name] = migrate_imports(textwrap.dedent(text).lstrip())
        path.write_text(migrated[name])
    return migrated


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Project:
    """The project's processes (pgq worker and beat, runserver), logged to files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(ROOT)])}
        for variable in ("PGQ_DSN", "PGQ_SCHEMA", "PGQ_APP", "PGQ_QUEUES",
                         "DJANGO_SETTINGS_MODULE"):
            self.env.pop(variable, None)
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.sources: dict[str, str] = {}

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text()[-4000:] if path.exists() else ""

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *argv], env=self.env, cwd=str(self.root),
                              text=True, capture_output=True, timeout=timeout)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[str]:
        with open(self.root / f"{name}.log", "w", encoding="utf-8") as out:
            proc = subprocess.Popen([sys.executable, *argv], env=self.env,
                                    cwd=str(self.root), stdout=out, stderr=subprocess.STDOUT,
                                    text=True)
        self.procs[name] = proc
        return proc


def http(base: str, path: str, form: dict[str, str] | None = None,
         body: Any = None) -> tuple[int, dict[str, Any]]:
    data = None
    headers = {}
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        page = exc.read().decode(errors="replace")
        # Django's debug page names the exception in its <title>.
        title = re.search(r"<title>(.*?)</title>", page, re.DOTALL)
        return exc.code, {"error": " ".join(title.group(1).split()) if title else page[-2000:]}


def wait_until(check: Any, timeout: float, what: str, logs: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s" + (f"\n{logs()}" if logs else ""))
        time.sleep(0.1)


def serving(base: str) -> bool:
    try:
        http(base, "/status/warm-up/")
        return True
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def states_until_ready(base: str, task_id: str, timeout: float, logs: Any
                       ) -> tuple[list[str], dict[str, Any]]:
    """Poll the status view as a front end would: the states seen, and the last body."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        code, body = http(base, f"/status/{task_id}/")
        assert code == 200, body
        if not seen or seen[-1] != body["state"]:
            seen.append(body["state"])
        if body["state"] in ("SUCCESS", "FAILURE", "REVOKED"):
            return seen, body
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} still {seen} after {timeout} s\n{logs()}")
        time.sleep(0.1)


class Site:
    """The running project: its base URL, processes and database."""

    def __init__(self, project: Project, base: str, dsn: str) -> None:
        self.project, self.base, self.dsn = project, base, dsn

    def logs(self) -> str:
        return "\n".join(f"--- {n} (exit {p.poll()}):\n{self.project.log(n)}"
                         for n, p in self.project.procs.items())

    def http(self, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        return http(self.base, path, **kwargs)

    def scalar(self, query: str) -> Any:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(query).fetchone()
        return row[0] if row else None


@pytest.fixture(scope="module")
def site(pg_server: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Site]:
    """The project written, migrated and running: worker, beat and runserver."""
    name = f"pgq_celery_django_{os.getpid()}"
    janitor = _janitor(pg_server, name, template=template_db)
    janitor.drop()
    janitor.init()
    dsn = make_conninfo(pg_server, dbname=name)
    project = Project(tmp_path_factory.mktemp("celery-django-project"))
    project.sources = write_project(project.root, dsn)
    try:
        migrated = project.run(["manage.py", "migrate", "--noinput"], timeout=90)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        project.start("worker", ["-m", "pgqueue.cli", "-A", "proj", "worker", "-l", "INFO",
                                 "-Q", "celery,emails", "-c", "4"])
        project.start("beat", ["-m", "pgqueue.cli", "-A", "proj", "beat", "-l", "INFO"])
        port = free_port()
        web = project.start("web", ["manage.py", "runserver", "--noreload",
                                    f"127.0.0.1:{port}"])
        running = Site(project, f"http://127.0.0.1:{port}", dsn)
        wait_until(lambda: serving(running.base) or web.poll() is not None, 30,
                   "runserver answered", running.logs)
        assert web.poll() is None, running.logs()
        yield running
    finally:
        for proc in project.procs.values():  # whatever the tests did not stop themselves
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        janitor.drop()


def test_only_the_imports_change(site):
    sources = site.project.sources
    for name, text in sources.items():
        assert not re.search(r"^\s*(from|import) celery\b", text, re.MULTILINE), name
    # The project's own relative import of its app module is left alone.
    assert "from .celery import app as celery_app" in sources["proj/__init__.py"]
    assert "from pgqueue.celery import Celery" in sources["proj/celery.py"]
    assert "from pgqueue.celery.schedules import crontab" in sources["proj/settings.py"]


def test_status_view_of_an_unknown_id_is_pending(site):
    code, body = site.http("/status/this-id-does-not-exist/")
    assert (code, body["state"]) == (200, "PENDING"), body


@pytest.mark.timeout(60)
def test_signup_view_delay_retries_then_sends_the_welcome_email(site):
    # The view calls .delay(); CELERY_TASK_ROUTES sends the task to 'emails'; it
    # retries twice (self.retry raises) before the mail server answers.
    code, created = site.http("/signup/", form={
        "username": "ada", "email": "ada@example.com", "password": "correct horse"})
    assert code == 202, created
    seen, body = states_until_ready(site.base, created["task_id"], 30, site.logs)
    assert body["state"] == "SUCCESS", (seen, body, site.logs())
    assert body["result"] == {"to": "ada@example.com", "retries": 2, "queue": "emails"}
    assert "RETRY" in seen, seen
    assert "ada@example.com" in (site.project.root / "outbox.log").read_text().split()


@pytest.mark.timeout(60)
def test_chord_from_a_view(site):
    # The header counts words in parallel; the body adds the counts up.
    texts = ["the quick brown fox", "jumps over", "the lazy dog", ""]
    code, created = site.http("/reports/words/", body={"texts": texts})
    assert code == 202, created
    seen, body = states_until_ready(site.base, created["task_id"], 30, site.logs)
    assert (body["state"], body.get("result")) == ("SUCCESS", 9), (seen, body)


@pytest.mark.timeout(60)
def test_beat_fires_the_seconds_entry_and_declares_the_crontab(site):
    heartbeats = site.project.root / "heartbeats.log"
    wait_until(lambda: heartbeats.exists() and len(heartbeats.read_text().split()) >= 2, 20,
               "the 2-second beat entry fired twice", site.logs)
    assert set(heartbeats.read_text().split()) == {"beat"}
    with psycopg.connect(site.dsn) as conn:
        rows = {name: (cron, every, tz, task) for name, cron, every, tz, task in
                conn.execute("SELECT name, cron, every_seconds, tz, task "
                             "FROM pgqueue.schedules").fetchall()}
    # The crontab entry fires at 03:30 in CELERY_TIMEZONE.
    nightly = rows["cleanup-inactive-nightly"]
    assert nightly[0].split() == ["30", "3", "*", "*", "*"], rows
    assert nightly[2:] == ("Australia/Tasmania", "accounts.tasks.cleanup_inactive"), rows
    assert rows["heartbeat-every-2-seconds"][1] == 2.0, rows
    # add_periodic_task from an on_after_configure handler (the Periodic Tasks guide's way).
    monday = rows["debug every monday"]
    assert monday[0].split() == ["30", "7", "*", "*", "1"], rows
    assert monday[3] == "proj.celery.debug_task", rows


@pytest.mark.timeout(60)
def test_delay_on_commit_sends_after_commit_and_never_after_rollback(site):
    # Celery 5.4's DjangoTask.delay_on_commit, as "First steps with Django" shows it.
    code, failed = site.http("/invite/", form={"username": "ghost",
                                               "email": "ghost@example.com", "fail": "1"})
    assert (code, failed["error"]) == (500, "RuntimeError at /invite/"), failed
    code, created = site.http("/invite/", form={"username": "bob", "email": "bob@example.com"})
    assert code == 202, created
    outbox = site.project.root / "outbox.log"
    wait_until(lambda: outbox.exists() and "bob@example.com" in outbox.read_text(), 30,
               "the invite's e-mail was sent", site.logs)
    assert "ghost@example.com" not in outbox.read_text()
    # One e-mail job per committed user: none was sent for the rolled-back one.
    assert site.scalar("SELECT count(*) FROM pgqueue.jobs "
                       "WHERE task = 'accounts.tasks.send_welcome_email'") == \
        site.scalar("SELECT count(*) FROM auth_user")


def test_worker_and_beat_stop_on_sigterm(site):
    procs = site.project.procs
    codes = {name: stop_process(procs[name]) for name in ("worker", "beat")}
    assert codes == {"worker": 0, "beat": 0}, site.logs()
