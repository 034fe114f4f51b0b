"""Finds the user's App from ``--app`` / ``-A`` (or ``PGQ_APP``), the way Celery finds its app.

``module:attribute`` names it. A bare name is looked up as Celery does: ``proj``
is the module ``proj``'s ``app`` or ``celery`` attribute (when that is not a
module), else, for a package, the same in ``proj.celery`` (``proj/celery.py``, the
layout Celery's Django guide uses), else the one App the module holds.
``proj.celery.app`` (a dotted path ending in an attribute) works too.

A Celery app (:class:`pgqueue.celery.Celery`) is finalized once found: its task
modules are imported (``include``, ``autodiscover_tasks()``) and its
``beat_schedule`` declared, as a Celery worker does when it starts.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from pgqueue.app import App
from pgqueue.errors import ConfigurationError


def load_app(path: str) -> App:
    """Import ``module:attribute`` (or a name Celery's ``-A`` takes) and return the App."""
    return resolve_app(path)[0]


def resolve_app(path: str) -> tuple[App, str]:
    """The App and its ``module:attribute`` path (what child processes import again)."""
    # Like `python -m`, let `pgq worker --app tasks:app` find tasks.py in this directory.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, colon, attr = path.partition(":")
    if colon:
        module = _import(module_name, path)
        app = getattr(module, attr, None)
        if not isinstance(app, App):
            raise ConfigurationError(f"{module_name}.{attr} is not a pgqueue App "
                                     f"(found {type(app).__name__})")
        return _ready(app), path
    try:
        module = _import(module_name, path)
    except ConfigurationError:
        parent, _, attr = module_name.rpartition(".")
        if not parent:
            raise
        module = _import(parent, path)  # proj.celery.app: the attribute app of proj.celery
        app = getattr(module, attr, None)
        if not isinstance(app, App):
            raise
        return _ready(app), f"{parent}:{attr}"
    app, where = _find(module, path)
    return _ready(app), where


def _find(module: ModuleType, path: str) -> tuple[App, str]:
    name = module.__name__
    for attr in ("app", "celery"):
        found = getattr(module, attr, None)
        if isinstance(found, App):
            return found, f"{name}:{attr}"
    if getattr(module, "__path__", None) is not None:  # a package: its celery.py, as Celery
        try:
            sub = importlib.import_module(f"{name}.celery")
        except ModuleNotFoundError as exc:
            if exc.name != f"{name}.celery":
                raise
        else:
            return _find(sub, path)
    apps = [(k, v) for k, v in vars(module).items() if isinstance(v, App)]
    if len(apps) != 1:
        raise ConfigurationError(
            f"module {name!r} holds {len(apps)} pgqueue Apps and no 'app' or 'celery'; name "
            f"one: --app {name}:app")
    return apps[0][1], f"{name}:{apps[0][0]}"


def _import(module_name: str, path: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(
                f"can't import {module_name!r} for --app {path}: no such module on the path "
                f"(run pgq from your project's directory, or set PYTHONPATH)"
            ) from None
        raise


def _ready(app: App) -> App:
    finalize = getattr(app, "finalize", None)
    if callable(finalize):
        finalize()
    return app
