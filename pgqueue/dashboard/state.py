"""What :func:`~pgqueue.dashboard.factory.create_app` keeps on the application, read
back with its type: the one place handlers reach the Monitor and the templates."""

from __future__ import annotations

from starlette.requests import Request
from starlette.templating import Jinja2Templates

from pgqueue.monitor import Monitor


def monitor(request: Request) -> Monitor:
    found: Monitor = request.app.state.monitor
    return found


def templates(request: Request) -> Jinja2Templates:
    found: Jinja2Templates = request.app.state.templates
    return found
