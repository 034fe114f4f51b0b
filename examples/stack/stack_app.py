"""The App of the docker-compose stack: every example's tasks and schedules in one App.

A worker serves one App (``--app stack_app:app``), but each example is a module
of its own with its own ``App()``, so that it runs alone as its README says. This
module gathers their tasks and schedules into one App, so that the stack's CPU
worker, I/O worker, scheduler and dashboard all know every task. The tasks keep
their own example's App for enqueueing (the fan-out in thumbnails and csv_import),
which is the same database: every App reads ``PGQ_DSN``.

``python stack_app.py`` creates every example's tables (the stack runs it once,
after ``pgq migrate``). The examples' directories must be on ``PYTHONPATH``, as the
Dockerfile sets it.
"""

from __future__ import annotations

from types import ModuleType

import cleanup_app
import csv_import_app
import reports_app
import signup_app
import thumbnails_app

from pgqueue import App

EXAMPLES: tuple[ModuleType, ...] = (signup_app, thumbnails_app, csv_import_app, reports_app,
                                    cleanup_app)

app = App()
for example in EXAMPLES:
    for name, task in example.app.tasks.items():
        if name in app.tasks:  # two examples must not claim the same task name
            raise ValueError(f"task {name!r} is defined by two examples "
                             f"({app.tasks[name].fn.__module__}, {example.__name__})")
        app.tasks[name] = task
    app.schedules.update(example.app.schedules)


def create_tables(dsn: str) -> None:
    """Create every example's tables (each does CREATE ... IF NOT EXISTS)."""
    for example in EXAMPLES:
        example.create_tables(dsn)


if __name__ == "__main__":
    create_tables(app.dsn())
    print(f"tables of {', '.join(e.__name__ for e in EXAMPLES)}: ready")
