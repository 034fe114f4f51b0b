"""Finds the user's App from ``--app myproj.tasks:app`` (or ``PGQ_APP``)."""

from __future__ import annotations

import importlib
import os
import sys

from pgqueue.app import App
from pgqueue.errors import ConfigurationError


def load_app(path: str) -> App:
    """Import ``module:attribute`` (or ``module``, holding one App) and return the App."""
    module_name, _, attr = path.partition(":")
    # Like `python -m`, let `pgq worker --app tasks:app` find tasks.py in this directory.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(
                f"can't import {module_name!r} for --app {path}: no such module on the path "
                f"(run pgq from your project's directory, or set PYTHONPATH)"
            ) from None
        raise
    if attr:
        app = getattr(module, attr, None)
        if not isinstance(app, App):
            raise ConfigurationError(f"{module_name}.{attr} is not a pgqueue App "
                                     f"(found {type(app).__name__})")
        return app
    apps = [v for v in vars(module).values() if isinstance(v, App)]
    if len(apps) != 1:
        raise ConfigurationError(
            f"module {module_name!r} holds {len(apps)} pgqueue Apps; name one: "
            f"--app {module_name}:app"
        )
    return apps[0]
