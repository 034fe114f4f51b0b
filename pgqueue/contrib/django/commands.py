"""Django management commands made from ``pgq``'s own click commands.

``manage.py pgq_worker -Q emails -c 4`` runs exactly ``pgq worker -Q emails -c 4``,
with the DSN and schema from Django's settings and the app
``pgqueue.contrib.django.worker:app``. The options are read off the click
command, so they are defined once, in :mod:`pgqueue.cli`, and their checks and
error messages are pgq's own.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, ClassVar

import click
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pgqueue import cli
from pgqueue.contrib.django.application import get_app


def _long(param: click.Option) -> str:
    return next((o for o in param.opts if o.startswith("--")), param.opts[0])


def add_option(parser: CommandParser, param: click.Option) -> None:
    """Declare one click option on Django's argparse parser; click parses the value later."""
    kwargs: dict[str, Any] = {"dest": param.name, "default": None,
                              # argparse formats help with %: keep pgq's text as it is.
                              "help": (param.help or "").replace("%", "%%")}
    if param.is_flag:
        kwargs.update(action="store_const", const=True)
    else:
        kwargs["metavar"] = param.metavar or (param.name or "value").upper()
    try:
        parser.add_argument(*param.opts, **kwargs)
    except argparse.ArgumentError:  # a short option Django already uses (-v): long one only
        parser.add_argument(_long(param), **kwargs)


def click_args(command: click.Command, options: Mapping[str, Any],
               skip: frozenset[str] = frozenset()) -> list[str]:
    """The command line that gives ``command`` the options Django parsed (those given)."""
    args: list[str] = []
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in skip:
            continue
        value = options.get(param.name or "")
        if value is None or value is False:
            continue
        args += [_long(param)] if param.is_flag else [_long(param), str(value)]
    return args


class PgqCommand(BaseCommand):
    """Runs the ``pgq`` subcommand ``pgq_command`` with Django's configuration."""

    pgq_command: ClassVar[str]
    # Options the wrapper sets itself (click parameter name -> command-line arguments).
    fixed: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def _click(self) -> click.Command:
        return cli.main.commands[self.pgq_command]

    def add_arguments(self, parser: CommandParser) -> None:
        for param in self._click().params:
            if isinstance(param, click.Option) and param.name not in self.fixed:
                add_option(parser, param)

    def handle(self, *args: Any, **options: Any) -> None:
        app = get_app()
        argv = ["--dsn", app.dsn(), "--schema", app.settings.schema]
        if options.get("verbosity", 1) >= 2:
            argv.append("--verbose")
        argv.append(self.pgq_command)
        for fixed in self.fixed.values():
            argv += fixed
        argv += click_args(self._click(), options, frozenset(self.fixed))
        try:
            cli.main.main(args=argv, prog_name="pgq", standalone_mode=False)
        except click.ClickException as exc:
            raise CommandError(exc.format_message()) from exc
        except click.Abort as exc:
            raise CommandError("aborted") from exc
