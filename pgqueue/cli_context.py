"""What every ``pgq`` command shares: the group's options (DSN, schema, app) and how
errors read."""

from __future__ import annotations

from typing import Any, NoReturn

import click

from pgqueue import redact
from pgqueue.app import App
from pgqueue.loader import resolve_app


class Ctx:
    def __init__(self, dsn: str | None, schema: str | None, app_path: str | None = None) -> None:
        self.dsn = dsn
        self.schema = schema
        self.app_path = app_path  # `pgq -A proj ...`: the default for every command
        self.resolved_path: str | None = None  # module:attribute of the App loaded

    def app(self, path: str | None = None, **settings: Any) -> App:
        path = path or self.app_path
        if path:
            app, self.resolved_path = resolve_app(path)
        else:
            app = App()
        app.configure(dsn=self.dsn, schema=self.schema, **settings)
        return app


def fail(exc: Exception) -> NoReturn:
    raise click.ClickException(redact.scrub(str(exc))) from exc
