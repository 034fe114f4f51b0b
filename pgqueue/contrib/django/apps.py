"""The Django app ``pgqueue.contrib.django``: what it does when Django starts and migrates.

With ``"pgqueue.contrib.django"`` in ``INSTALLED_APPS``:

- every installed app's ``tasks`` module is imported at start-up, so a worker
  knows the ``@app.task`` and ``@task`` functions declared there;
- ``manage.py pgq_worker`` and ``manage.py pgq_migrate`` exist;
- ``manage.py migrate`` also brings pgqueue's schema up to date (so Django's
  test runner creates it in test databases too);
- ``manage.py check`` checks ``PGQUEUE`` and the database it names;
- when Django opens its maintenance connection, which it does only to create or
  drop a database (the test runner's set-up and tear-down), pgqueue's pool in
  this process is closed, so it never keeps a test database busy (it reopens
  when next used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules

from pgqueue.contrib.django import conf
from pgqueue.contrib.django.application import get_app

if TYPE_CHECKING:
    from pgqueue.app import App

# The alias of the connection Django opens to create and drop databases
# (BaseDatabaseWrapper._nodb_cursor, "specifically for test db creation/deletion").
NO_DB_ALIAS = "__no_db__"


def migrate_schema(sender: AppConfig, using: str, verbosity: int = 1, **kwargs: Any) -> None:
    """post_migrate: apply pgqueue's pending migrations to the database Django just migrated."""
    from pgqueue.migrate import migrate, migrate_dsn

    app = get_app()
    if using != app.database:
        return
    if app.dsn_from_django:
        # On Django's connection: under the test runner that is the test database.
        connection = connections[using]
        connection.ensure_connection()
        applied = migrate(connection.connection, app.settings.schema)
    else:
        applied = migrate_dsn(app.dsn(), app.settings.schema)
    stdout = kwargs.get("stdout")
    if applied and verbosity >= 1 and stdout is not None:
        stdout.write(f"  Applied pgqueue migrations to schema {app.settings.schema}: "
                     f"{', '.join(m.filename for m in applied)}\n")


def release_databases(sender: Any, connection: Any, **kwargs: Any) -> None:
    """connection_created: before Django creates or drops a database (the test runner's
    set-up and tear-down), close pgqueue's pool, whose connections would keep it busy:
    "database ... is being accessed by other users"."""
    if connection.alias == NO_DB_ALIAS:
        close_pools(get_app())


def close_pools(app: App) -> None:
    """Close pgqueue's connection pool in this process (it reopens when next used).

    An async pool belongs to the event loop that opened it, which closes it
    (``await app.async_client.close()``) before it ends.
    """
    app.close()


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """PGQUEUE is valid, and names a PostgreSQL database (without connecting to it)."""
    try:
        config = conf.load()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="pgqueue.E002")]
    if config.settings.dsn and not config.use_django_connection:
        return []  # pgqueue has a DSN of its own and doesn't touch Django's connection
    if config.database not in connections:
        return [checks.Error(
            f"PGQUEUE['DATABASE'] is {config.database!r}, which is not in DATABASES",
            id="pgqueue.E003")]
    vendor = connections[config.database].vendor
    if vendor != "postgresql":
        return [checks.Error(
            f"pgqueue needs PostgreSQL, and DATABASES[{config.database!r}] is {vendor}",
            hint="point PGQUEUE['DATABASE'] at a PostgreSQL alias",
            id="pgqueue.E004")]
    return []


class PgQueueConfig(AppConfig):
    name = "pgqueue.contrib.django"
    label = "pgqueue"  # the default, "django", would read as Django itself
    verbose_name = "pgqueue"

    def ready(self) -> None:
        checks.register(check_settings)
        post_migrate.connect(migrate_schema, sender=self)
        connection_created.connect(release_databases, dispatch_uid="pgqueue.release_databases")
        # Like the admin's admin.py: tasks register themselves when their module is imported.
        autodiscover_modules("tasks")
