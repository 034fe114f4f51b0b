"""The app half of pgqueue.celery against a real Postgres and real workers: broker URLs,
settings as Celery reads them, task names, routing, priorities, eager mode, send_task,
shared_task, autodiscovery, beat_schedule and app.control."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import sys
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgqueue.celery import Celery, shared_task, states
from pgqueue.celery.exceptions import ImproperlyConfigured, NotRegistered
from pgqueue.celery.schedules import crontab, schedule, solar
from pgqueue.errors import ConfigurationError
from tests.conftest import running_worker, until

_names = itertools.count()


def rows(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture
def apps(dsn: str) -> Iterator[list[Celery]]:
    made: list[Celery] = []
    yield made
    for app in made:
        app.close()


@pytest.fixture
def capp(dsn: str, apps: list[Celery]) -> Celery:
    app = Celery("proj", broker=dsn)
    app.configure(heartbeat_interval=0.5, lease_seconds=5)
    apps.append(app)
    return app


def package(root: Path, files: dict[str, str]) -> str:
    """Write a fresh uniquely named package under root; returns its name."""
    name = f"celeryproj{next(_names)}_{id(root) % 10000}"
    for rel, text in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (root / name / "__init__.py").touch()
    return name


# -- broker and backend URLs --------------------------------------------------------------
def test_postgres_urls_are_the_dsn_and_other_brokers_are_refused(apps: list[Celery]) -> None:
    for given, dsn in [("postgresql://u@db/app", "postgresql://u@db/app"),
                       ("postgres://u@db/app", "postgres://u@db/app"),
                       ("sqla+postgresql://u@db/app", "postgresql://u@db/app"),
                       ("postgresql+psycopg://u@db/app", "postgresql://u@db/app")]:
        app = Celery("proj", broker=given)
        apps.append(app)
        assert app.settings.dsn == dsn
    backend_only = Celery("proj", backend="db+postgresql://u@db/app")
    apps.append(backend_only)
    assert backend_only.settings.dsn == "postgresql://u@db/app"
    for other in ("redis://localhost:6379/0", "amqp://guest@localhost//", "sqs://"):
        with pytest.raises(ImproperlyConfigured, match="PostgreSQL"):
            Celery("proj", broker=other)
    app = Celery("proj")
    apps.append(app)
    with pytest.raises(ConfigurationError, match="postgresql://"):
        app.conf.broker_url = "redis://localhost"


# -- settings -----------------------------------------------------------------------------
def test_conf_reads_as_dict_and_attributes_over_celerys_defaults(capp: Celery,
                                                                 caplog: Any) -> None:
    assert capp.conf.task_default_queue == "celery" == capp.conf["task_default_queue"]
    assert capp.conf.task_always_eager is False and capp.conf.enable_utc is True
    capp.conf.update(task_default_queue="work", result_expires=dt.timedelta(days=2))
    assert capp.conf["task_default_queue"] == "work"
    assert capp.settings.queues == ("work",)  # the worker serves it, as a Celery worker does
    assert capp.settings.retention_days == 2
    with caplog.at_level(logging.DEBUG, logger="pgqueue.celery"):
        capp.conf.broker_connection_retry_on_startup = True
        capp.conf.task_defualt_queue = "typo"
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("DEBUG", "Celery setting broker_connection_retry_on_startup has no effect with "
            "pgqueue (ignored)") in messages
    assert any(level == "WARNING" and "task_defualt_queue" in m for level, m in messages)
    with pytest.raises(AttributeError):
        _ = capp.conf.no_such_setting
    with pytest.raises(ConfigurationError, match="JSON"):
        capp.conf.task_serializer = "pickle"


def test_config_from_object_reads_modules_paths_and_namespaces_lazily(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, apps: list[Celery], dsn: str) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = package(tmp_path, {"celeryconfig.py": f"""
        import os
        broker_url = {dsn!r}
        task_default_queue = "from-module"
        task_acks_late = True
        """, "settings.py": f"""
        CELERY_BROKER_URL = {dsn!r}
        CELERY_TASK_DEFAULT_QUEUE = "namespaced"
        CELERY_TASK_ALWAYS_EAGER = True
        DATABASES = {{}}
        """})
    app = Celery("proj")
    apps.append(app)
    app.config_from_object(f"{pkg}.celeryconfig")
    assert f"{pkg}.celeryconfig" not in sys.modules  # lazy, as in Celery
    assert app.conf.task_default_queue == "from-module"
    assert app.conf.task_acks_late is True and app.settings.dsn == dsn
    assert "os" not in app.conf

    django_like = Celery("proj")
    apps.append(django_like)
    django_like.config_from_object(f"{pkg}.settings", namespace="CELERY")
    assert django_like.conf.task_default_queue == "namespaced"
    assert django_like.conf.task_always_eager is True and django_like.settings.eager
    assert "databases" not in django_like.conf

    class Config:
        BROKER_URL = dsn  # Celery 3's names are read too
        CELERY_ALWAYS_EAGER = True
        task_default_priority = 4

    obj = Celery("proj")
    apps.append(obj)
    obj.config_from_object(Config)
    assert obj.conf.task_always_eager is True and obj.conf.task_default_priority == 4
    class CeleryConfig:
        task_default_queue = "inline"

    mod = types.ModuleType("inline_config_x")
    mod.CeleryConfig = CeleryConfig  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "inline_config_x", mod)
    for path in ("inline_config_x:CeleryConfig", "inline_config_x.CeleryConfig"):
        attr = Celery("proj")
        apps.append(attr)
        attr.config_from_object(path)
        assert attr.conf.task_default_queue == "inline"
    missing = Celery("proj")
    apps.append(missing)
    missing.config_from_object("no_such_module_here", silent=True)
    assert missing.conf.task_default_queue == "celery"
    loud = Celery("proj")
    apps.append(loud)
    loud.config_from_object("no_such_module_here")
    with pytest.raises(ImportError):
        _ = loud.conf.task_default_queue
    with pytest.raises(ImportError):  # still pending: it fails the same way again
        _ = loud.conf.task_default_queue
    loud.config_from_object({})  # mended: shared tasks declared later register with it
    assert loud.conf.task_default_queue == "celery"


# -- names ----------------------------------------------------------------------------------
def test_task_names_are_module_qualified_as_in_celery(capp: Celery) -> None:
    @capp.task
    def add(x: int, y: int) -> int:
        return x + y

    @capp.task(name="custom.name")
    def other() -> None:
        pass

    def script() -> None:
        pass

    script.__module__ = "__main__"
    from_script = capp.task(script)
    assert add.name == f"{__name__}.add" and other.name == "custom.name"
    assert from_script.name == "proj.script"  # __main__ takes the app's main name
    assert set(capp.tasks) >= {add.name, "custom.name", "proj.script"}


def test_gen_task_name_can_be_overridden_as_in_celery(dsn: str, apps: list[Celery]) -> None:
    class MyCelery(Celery):
        def gen_task_name(self, name: str, module: str) -> str:
            if module.endswith(".tasks"):
                module = module[:-6]
            return super().gen_task_name(name, module)

    app = MyCelery("main", broker=dsn)
    apps.append(app)

    def task_a() -> None: ...

    task_a.__module__ = "module_a.tasks"
    assert app.task(task_a).name == "module_a.task_a"


def test_in_a_django_process_tasks_are_django_tasks(monkeypatch: pytest.MonkeyPatch,
                                                    apps: list[Celery], dsn: str) -> None:
    from pgqueue.celery.contrib.django.task import DjangoTask

    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "some.settings")  # Celery's fixup test
    app = Celery("proj", broker=dsn)
    apps.append(app)

    @app.task
    def welcome(user_id: int) -> None: ...

    assert isinstance(welcome, DjangoTask) and callable(welcome.delay_on_commit)
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE")
    plain = Celery("proj", broker=dsn)
    apps.append(plain)
    assert not isinstance(plain.task(lambda: None), DjangoTask)


def test_settings_read_late_reach_tasks_and_class_based_tasks_register(
        capp: Celery, apps: list[Celery]) -> None:
    from pgqueue.celery import Task

    @capp.task
    def early() -> None: ...

    capp.config_from_object({"task_time_limit": 5, "task_track_started": True})
    capp.finalize()  # as a worker does at start
    assert (early.time_limit, early.track_started) == (5, True)

    capp2 = Celery("ann", broker=capp.settings.dsn, task_annotations={
        f"{__name__}.noted": {"rate_limit": "10/s", "time_limit": 7}})
    apps.append(capp2)

    @capp2.task
    def noted() -> None: ...

    capp2.finalize()
    assert (noted.rate_limit, noted.time_limit) == ("10/s", 7)
    assert noted.options.rate_limit == "10/s" and noted.options.time_limit == 7

    class Add(Task):
        name = "proj.add"

        def run(self, x: int, y: int) -> int:
            return x + y

    add = capp.register_task(Add())
    assert capp.tasks["proj.add"] is add and add(1, 2) == 3


def test_set_as_current_false_leaves_current_app_alone(capp: Celery, dsn: str,
                                                      apps: list[Celery]) -> None:
    from pgqueue.celery import current_app

    side = Celery("side", broker=dsn, set_as_current=False)
    apps.append(side)
    assert current_app.main == "proj"
    made = Celery("made", broker=dsn)
    apps.append(made)
    assert current_app.main == "made"


def string_router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
                  **kw: Any) -> Any:
    return "by-path" if name.endswith(".routed_by_path") else None


class Queue:
    """What kombu's Queue looks like to the routing code: a name."""

    def __init__(self, name: str) -> None:
        self.name = name


def test_routers_by_path_and_queue_objects(capp: Celery, dsn: str) -> None:
    capp.conf.task_routes = [f"{__name__}.string_router",
                             {"*.queue_object": {"queue": Queue("objects")}}]
    capp.conf.task_queues = (Queue("celery"), Queue("objects"), Queue("by-path"))
    assert capp.settings.queues == ("celery", "objects", "by-path")  # the worker serves them

    @capp.task
    def routed_by_path() -> None: ...

    @capp.task
    def queue_object() -> None: ...

    for task, queue in ((routed_by_path, "by-path"), (queue_object, "objects")):
        assert rows(dsn, "SELECT queue FROM pgqueue.jobs WHERE id = %s",
                    task.delay().job_id) == [(queue,)]


# -- routing --------------------------------------------------------------------------------
def test_task_routes_choose_the_queue_as_celery_does(capp: Celery, dsn: str) -> None:
    def router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
               **kw: Any) -> Any:
        return {"queue": "by-function"} if kwargs.get("big") else None

    capp.conf.task_routes = (
        router,
        {f"{__name__}.exact": {"queue": "exact", "routing_key": "ignored"},
         f"{__name__}.feed_*": "feeds",
         re.compile(r".*\.media_(video|image)$"): {"queue": "media"}},
        [("*.listed", {"queue": "listed"})],
    )

    @capp.task
    def exact(**kw: Any) -> None: ...

    @capp.task
    def feed_fetch() -> None: ...

    @capp.task
    def media_video() -> None: ...

    @capp.task
    def listed() -> None: ...

    @capp.task
    def plain() -> None: ...

    @capp.task(queue="own")
    def feed_own() -> None: ...

    sent = {"exact": exact.delay(), "feeds": feed_fetch.delay(), "media": media_video.delay(),
            "listed": listed.delay(), "celery": plain.delay(),
            "by-function": exact.delay(big=True), "given": feed_fetch.apply_async(queue="given"),
            "own": feed_own.delay()}
    for queue, result in sent.items():
        assert rows(dsn, "SELECT queue FROM pgqueue.jobs WHERE id = %s",
                    result.job_id) == [(queue,)], queue


def test_default_queue_is_celery_and_a_worker_serves_it(capp: Celery) -> None:
    @capp.task
    def mul(x: int, y: int) -> int:
        return x * y

    assert capp.settings.queues == ("celery",)
    with running_worker(capp):
        assert mul.delay(6, 7).get(timeout=20) == 42


# -- priorities -----------------------------------------------------------------------------
def test_priorities_amqp_by_default_and_redis_when_chosen(capp: Celery, dsn: str,
                                                          apps: list[Celery]) -> None:
    @capp.task
    def job(tag: str) -> str:
        return tag

    def stored(result: Any) -> int:
        return int(rows(dsn, "SELECT priority FROM pgqueue.jobs WHERE id = %s",
                        result.job_id)[0][0])

    assert stored(job.apply_async(("a",), priority=7)) == 7
    capp.conf.task_default_priority = 3
    assert stored(job.delay("b")) == 3
    capp.conf.task_queue_max_priority = 5
    assert stored(job.apply_async(("c",), priority=9)) == 5  # RabbitMQ caps at the maximum

    redis = Celery("redis", broker=dsn,
                   broker_transport_options={"priority_steps": list(range(10))})
    apps.append(redis)
    order: list[str] = []

    @redis.task
    def ordered(tag: str) -> None:
        order.append(tag)

    low, high = ordered.apply_async(("low",), priority=9), ordered.apply_async(("high",),
                                                                               priority=0)
    assert stored(low) < stored(high)
    with running_worker(redis, queues=("celery",), concurrency=1):
        until(lambda: len(order) == 2)
    assert order == ["high", "low"]  # Redis: 0 runs first
    chosen = Celery("redis2", broker=dsn, task_priority_convention="redis")
    apps.append(chosen)
    assert chosen.celery_priority(2) == -2 and chosen.celery_priority(None) is None
    with pytest.raises(ConfigurationError, match="amqp"):
        chosen.conf.task_priority_convention = "lifo"


# -- eager, send_task -----------------------------------------------------------------------
def test_task_always_eager_runs_inline(capp: Celery, dsn: str) -> None:
    capp.conf.task_always_eager = True

    @capp.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    assert result.get() == 5 and result.state == states.SUCCESS
    assert rows(dsn, "SELECT count(*) FROM pgqueue.jobs") == [(0,)]


def test_send_task_checks_names_when_the_app_declares_its_tasks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dsn: str, apps: list[Celery]) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = package(tmp_path, {"tasks.py": """
        from pgqueue.celery import shared_task

        @shared_task
        def add(x, y):
            return x + y
        """})
    project = Celery("proj", broker=dsn)  # a Celery project: it says where its tasks are
    project.configure(heartbeat_interval=0.5, lease_seconds=5)
    apps.append(project)
    project.autodiscover_tasks([pkg])
    with pytest.raises(NotRegistered, match=f"did you mean .*'{re.escape(pkg)}.tasks.add'"):
        project.send_task("tasks.add", (1, 2))
    with running_worker(project):
        assert project.send_task(f"{pkg}.tasks.add", (1, 2)).get(timeout=20) == 3
    # A producer that doesn't say where tasks are sends any name (Celery's Calling guide:
    # send_task is for tasks not registered in this process), shared tasks or not.
    producer = Celery("producer", broker=dsn)
    apps.append(producer)
    assert f"{pkg}.tasks.add" in producer.tasks
    r = producer.send_task("elsewhere.tasks.thing", (1,), countdown=60)
    assert r.state == states.PENDING
    assert rows(dsn, "SELECT task, queue FROM pgqueue.jobs WHERE id = %s",
                r.job_id) == [("elsewhere.tasks.thing", "celery")]
    producer.conf.send_task_check_registry = True
    with pytest.raises(NotRegistered):
        producer.send_task("elsewhere.tasks.thing")
    project.conf.send_task_check_registry = False
    project.send_task("other.service.task")


def test_shared_task_belongs_to_every_app_and_runs(dsn: str, apps: list[Celery]) -> None:
    @shared_task(bind=True)
    def whoami(self: Any, x: int) -> list[Any]:
        return [self.name, x]

    app = Celery("shared", broker=dsn)
    app.configure(heartbeat_interval=0.5, lease_seconds=5)
    apps.append(app)
    assert f"{__name__}.whoami" in app.tasks
    assert whoami.name == f"{__name__}.whoami"
    with running_worker(app):
        assert whoami.delay(4).get(timeout=20) == [f"{__name__}.whoami", 4]


# -- finalize: include, autodiscover, beat -------------------------------------------------
def test_autodiscover_and_include_import_task_modules_when_finalized(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, apps: list[Celery], dsn: str) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    tasks = """
        from pgqueue.celery import shared_task

        @shared_task
        def hello(name):
            return f"hello {name}"
        """
    with_tasks = package(tmp_path, {"tasks.py": tasks})
    without = package(tmp_path, {"models.py": "X = 1\n"})
    included = package(tmp_path, {"jobs.py": tasks.replace("hello", "bye")})
    broken = package(tmp_path, {"tasks.py": "import no_such_dependency_xyz\n"})
    app = Celery("proj", broker=dsn, include=[f"{included}.jobs"])
    apps.append(app)
    app.autodiscover_tasks([with_tasks, without])
    assert f"{with_tasks}.tasks" not in sys.modules  # lazy, as in Celery
    app.finalize()
    assert {f"{with_tasks}.tasks.hello", f"{included}.jobs.bye"} <= set(app.tasks)
    late = Celery("late", broker=dsn)
    apps.append(late)
    late.autodiscover_tasks([broken])
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        late.finalize()


def test_beat_schedule_entries_become_pgqueue_schedules(capp: Celery) -> None:
    @capp.task
    def report(kind: str) -> None: ...

    capp.conf.update(
        timezone="Europe/Paris",
        task_routes={f"{__name__}.report": {"queue": "reports"}},
        beat_schedule={
            "nightly": {"task": f"{__name__}.report", "args": ("night",),
                        "schedule": crontab(minute=30, hour=2, day_of_week="mon-fri")},
            "often": {"task": f"{__name__}.report", "schedule": 30.0, "kwargs": {"kind": "x"},
                      "options": {"queue": "fast", "priority": 5}},
            "hourly": {"task": f"{__name__}.report", "schedule": dt.timedelta(hours=1)},
            "freq": {"task": f"{__name__}.report", "schedule": schedule(run_every=90)},
        })

    @capp.on_after_configure.connect
    def setup(sender: Celery, **kwargs: Any) -> None:
        sender.add_periodic_task(10.0, report.s("ten"), name="every ten")

    capp.finalize()
    s = capp.schedules
    assert s["nightly"].rule.cron == "30 2 * * mon-fri" and s["nightly"].rule.tz == "Europe/Paris"
    assert s["nightly"].queue == "reports" and s["nightly"].args_json == '["night"]'
    assert s["often"].rule.every == dt.timedelta(seconds=30)
    assert (s["often"].queue, s["often"].priority) == ("fast", 5)
    assert s["hourly"].rule.every == dt.timedelta(hours=1)
    assert s["freq"].rule.every == dt.timedelta(seconds=90)
    assert s["every ten"].rule.every == dt.timedelta(seconds=10)
    assert s["every ten"].args_json == '["ten"]'
    capp.conf.beat_schedule = {"later": {"task": f"{__name__}.report", "schedule": 5}}
    assert capp.schedules["later"].rule.every == dt.timedelta(seconds=5)


def test_crontab_takes_celerys_field_forms() -> None:
    assert crontab().cron == "* * * * *"
    assert crontab(minute=0, hour="*/3").cron == "0 */3 * * *"
    assert crontab(minute={0, 30}, hour=range(9, 12)).cron == "0,30 9,10,11 * * *"
    assert crontab(day_of_week="monday,friday").cron == "* * * * mon,fri"
    assert crontab(0, 0, day_of_month="2-30/2", month_of_year="1,7").cron == "0 0 2-30/2 1,7 *"
    assert crontab(minute=0, hour=0) == crontab(minute="0", hour="0")
    with pytest.raises(ValueError, match="invalid crontab"):
        crontab(minute=99)
    with pytest.raises(NotImplementedError, match="both"):
        crontab(day_of_month=1, day_of_week="mon")
    with pytest.raises(NotImplementedError, match="solar"):
        solar("sunset", -37.81, 144.96)
    with pytest.raises(ValueError):
        schedule(run_every=0)


# -- app.control -----------------------------------------------------------------------------
def test_inspect_and_revoke_answer_from_postgres(capp: Celery, dsn: str) -> None:
    gate = threading.Event()

    @capp.task
    def slow(n: int) -> int:
        gate.wait(20)
        return n

    inspect = capp.control.inspect()
    assert inspect.active() is None  # no worker up: no replies, as in Celery
    with running_worker(capp, concurrency=1) as w:
        me = w.name
        running = slow.delay(1)
        until(lambda: inspect.active().get(me))
        waiting = slow.delay(2)
        later = slow.apply_async((3,), countdown=600)
        [active] = inspect.active()[me]
        assert (active["id"], active["name"], active["args"]) == (running.id,
                                                                  f"{__name__}.slow", [1])
        assert active["hostname"] == me and active["time_start"]
        [reserved] = inspect.reserved()[me]
        assert (reserved["id"], reserved["args"]) == (waiting.id, [2])
        [scheduled] = inspect.scheduled()[me]
        assert scheduled["request"]["id"] == later.id and scheduled["eta"]
        assert f"{__name__}.slow" in inspect.registered()[me]
        assert inspect.ping() == {me: {"ok": "pong"}}
        capp.control.revoke(later.id)
        assert until(lambda: later.state == states.REVOKED)
        capp.control.revoke([running.id], terminate=True)
        until(lambda: rows(dsn, "SELECT cancel_requested FROM pgqueue.jobs WHERE id = %s",
                           running.job_id) == [(True,)])
        # A thread can't be killed: its job is cancelled, and reads so once it returns.
        # The worker hears of the cancel by NOTIFY, else at its next heartbeat (0.5 s).
        time.sleep(1.5)
        gate.set()
        assert until(lambda: running.state == states.REVOKED)
        assert waiting.get(timeout=20) == 2
        # Celery's total counts the tasks a worker took: the revoked running one too,
        # not the one revoked before any worker had it.
        stats = until(lambda: inspect.stats()[me]["total"].get(f"{__name__}.slow") == 2)
        assert stats and inspect.stats()[me]["total"] == {f"{__name__}.slow": 2}
        assert inspect.stats()[me]["pool"]["max-concurrency"] == 1
        assert capp.control.inspect(destination=["other"]).active() is None
        assert capp.control.inspect(destination=me).ping() == {"ok": "pong"}
        queued = [slow.apply_async((n,), countdown=600) for n in range(3)]
        where = capp.control.inspect().query_task(queued[0].id)
        assert where[me][queued[0].id][0] == "scheduled"
        assert capp.control.purge() == 3
        assert all(r.state == states.REVOKED for r in queued)


def test_rate_limit_is_stored_and_obeyed_by_all_workers(capp: Celery, dsn: str) -> None:
    done: list[int] = []

    @capp.task
    def tick(n: int) -> None:
        done.append(n)

    with running_worker(capp, concurrency=4):
        capp.control.rate_limit(f"{__name__}.tick", "1/m")
        assert rows(dsn, "SELECT rate, rate_window FROM pgqueue.task_limits WHERE task = %s",
                    f"{__name__}.tick") == [(1, 60.0)]
        time.sleep(1.5)  # the workers read limits each heartbeat (0.5 s here)
        for n in range(3):
            tick.delay(n)
        until(lambda: done)
        time.sleep(2)
        assert len(done) == 1  # one start per minute, all workers together
        capp.control.rate_limit(f"{__name__}.tick", None)
        until(lambda: len(done) == 3)
    assert rows(dsn, "SELECT count(*) FROM pgqueue.task_limits") == [(0,)]
    with pytest.raises(NotRegistered):
        capp.control.rate_limit("no.such.task", "1/s")
    with pytest.raises(ValueError):
        capp.control.rate_limit(f"{__name__}.tick", "ten per minute")
