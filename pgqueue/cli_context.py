"""What every ``pgq`` command shares: the group's options (DSN, schema) and how errors read."""

from __future__ import annotations

from typing import Any, NoReturn

import click

from pgqueue.app import App
from pgqueue.loader import load_app


class Ctx:
    def __init__(self, dsn: str | None, schema: str | None) -> None:
        self.dsn = dsn
        self.schema = schema

    def app(self, path: str | None = None, **settings: Any) -> App:
        app = load_app(path) if path else App()
        app.configure(dsn=self.dsn, schema=self.schema, **settings)
        return app


def fail(exc: Exception) -> NoReturn:
    raise click.ClickException(str(exc)) from exc
