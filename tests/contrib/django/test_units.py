"""The integration's pure parts, without a database: settings, DSNs, error paths, options."""

from __future__ import annotations

import click
import pytest

pytest.importorskip("django", reason="Django is not installed (pip install -e '.[django]')")
from django.core.exceptions import ImproperlyConfigured
from psycopg.conninfo import conninfo_to_dict

from pgqueue.contrib.django.commands import click_args
from pgqueue.contrib.django.conf import database_dsn, read_config


def test_pgqueue_keys_map_onto_settings_and_win_over_the_environment() -> None:
    config = read_config({"QUEUES": ["default", "emails"], "CONCURRENCY": 4,
                          "DATABASE": "jobs"},
                         environ={"PGQ_CONCURRENCY": "9", "PGQ_POOL": "processes",
                                  "PGQ_DSN": "postgresql://elsewhere/db"})
    s = config.settings
    assert (s.queues, s.concurrency, s.pool) == (("default", "emails"), 4, "processes")
    assert s.dsn is None  # built from DATABASES later; PGQ_DSN never points Django elsewhere
    assert (config.database, config.use_django_connection) == ("jobs", True)


@pytest.mark.parametrize(("conf", "message"), [
    ({"QUEUE": ["x"]}, "unknown key(s) QUEUE; the keys are"),
    ({"QUEUES": ["no spaces"]}, "PGQUEUE: invalid queue name 'no spaces'"),
    ({"CONCURRENCY": 0}, "PGQUEUE: concurrency must be at least 1"),
    ({"USE_DJANGO_CONNECTION": "yes"}, "must be an alias of DATABASES"),
])
def test_bad_pgqueue_settings_say_what_is_wrong(conf: dict[str, object], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace(
            ")", r"\)")):
        read_config(conf, environ={})


def test_the_dsn_is_built_from_databases() -> None:
    dsn = database_dsn("default", {
        "NAME": "shop", "USER": "app", "PASSWORD": "s3cret", "HOST": "db.internal",
        "PORT": 6432,
        "OPTIONS": {"sslmode": "require", "connect_timeout": 5,
                    "pool": {"min_size": 2}, "server_side_binding": True},
    })
    assert conninfo_to_dict(dsn) == {"dbname": "shop", "user": "app", "password": "s3cret",
                                     "host": "db.internal", "port": "6432",
                                     "sslmode": "require", "connect_timeout": "5"}
    with pytest.raises(ImproperlyConfigured, match="set PGQUEUE\\['DSN'\\]"):
        database_dsn("default", {"NAME": "shop", "OPTIONS": {"no_such_libpq_option": "1"}})


def test_errors_get_the_import_path_django_expects() -> None:
    pytest.importorskip("pgqueue.contrib.django._compat", exc_type=ImportError)
    from pgqueue.contrib.django.tasks_backend import exception_path

    tb = ("Traceback (most recent call last):\n  ...\n"
          "shop.payments.PaymentDeclined: card declined\n")
    assert exception_path("PaymentDeclined", tb) == "shop.payments.PaymentDeclined"
    assert exception_path("ZeroDivisionError",
                          "...\nZeroDivisionError: division by zero\n") == (
        "builtins.ZeroDivisionError")
    assert exception_path("TimeLimitExceeded", "") == "pgqueue.errors.TimeLimitExceeded"
    assert exception_path("WorkerLost", "") == "WorkerLost"  # unknown: left as recorded


def test_django_options_become_the_pgq_command_line() -> None:
    @click.command()
    @click.option("-Q", "--queues")
    @click.option("-c", "--concurrency", type=int)
    @click.option("-B", "--beat", is_flag=True, default=None)
    @click.option("-A", "--app", "app_path")
    def worker(**_: object) -> None: ...

    options = {"queues": "emails", "concurrency": 4, "beat": True, "app_path": "x:y",
               "verbosity": 1}
    assert click_args(worker, options, frozenset({"app_path"})) == [
        "--queues", "emails", "--concurrency", "4", "--beat"]
    assert click_args(worker, {"beat": None}) == []
