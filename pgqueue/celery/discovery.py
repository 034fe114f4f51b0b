"""Finding a project's task modules: ``include``/``imports`` and ``autodiscover_tasks()``.

As in Celery: ``autodiscover_tasks()`` with no packages reads Django's
``INSTALLED_APPS`` (through the app registry, so ``AppConfig`` entries count),
setting Django up first when it isn't yet; each package's ``tasks`` module is
imported if it exists. A package without one is skipped; an error raised while
importing one is not hidden.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from collections.abc import Callable, Iterable
from types import ModuleType

log = logging.getLogger("pgqueue.celery")


def import_module(name: str) -> ModuleType:
    return importlib.import_module(name)


def is_django_process() -> bool:
    """Django is installed and this process names its settings (Celery's fixup test)."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return False
    return importlib.util.find_spec("django") is not None


def setup_django() -> None:
    """Set Django up if this is a Django process that hasn't yet (a worker, beat): what
    Celery's Django fixup does, so that task modules may import models."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return
    try:
        import django
        from django.apps import apps
    except ImportError:
        return
    if not apps.ready and not apps.loading:
        django.setup()


def django_packages() -> list[str]:
    """The installed Django apps' packages; none when the project isn't a Django one."""
    try:
        from django.conf import settings
    except ImportError:
        return []
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return []
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()
    return [config.name for config in apps.get_app_configs()]


def discover(packages: Iterable[str] | Callable[[], Iterable[str]] | None,
             related_name: str = "tasks") -> list[str]:
    """Import ``<package>.<related_name>`` for each package; the modules imported."""
    if callable(packages):
        packages = packages()
    names = list(packages) if packages is not None else django_packages()
    found: list[str] = []
    for package in names:
        if related_name:
            importlib.import_module(package)  # a package that can't be imported is an error
        target = f"{package}.{related_name}" if related_name else package
        try:
            importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name != target:
                raise
            log.debug("autodiscover: %s has no %s module", package, related_name)
            continue
        found.append(target)
    return found
