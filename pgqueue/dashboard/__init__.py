"""The web dashboard: watch queues, workers and jobs live, and fix failed jobs from a browser.

``create_app(app)`` builds the Starlette application; ``serve(app)`` runs it with
uvicorn and refuses to listen beyond loopback without authentication;
``pgq dashboard`` (:mod:`pgqueue.dashboard.command`) is the command line. Every
number shown comes from :class:`pgqueue.monitor.Monitor`.

Starlette, Jinja2 and uvicorn come with the ``dashboard`` extra
(``pip install -e '.[dashboard]'``). They are imported lazily, so ``pgq`` and
the ``dashboard`` command's ``--help`` work without them.
"""

from typing import Any

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from pgqueue.dashboard.factory import create_app

        return create_app
    if name == "serve":
        from pgqueue.dashboard.server import serve

        return serve
    raise AttributeError(name)
