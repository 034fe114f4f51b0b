"""How the dashboard answers: JSON for the API, a redirect back for a submitted form.

The actions are one set of handlers for both callers. A browser's form gets a 303
back to the page it came from (``next``) with a notice code; a script gets JSON
and a status code it can branch on.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from pgqueue.dashboard.paths import local
from pgqueue.monitor import to_json


class JSON(JSONResponse):
    """``to_json`` output, plus a fallback for the Decimal and UUID values that job
    arguments and results may decode to (written as strings, losing nothing)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(to_json(content), ensure_ascii=False, allow_nan=False,
                          default=str, separators=(",", ":")).encode("utf-8")


async def form(request: Request) -> dict[str, str]:
    """The urlencoded form fields, or {} for any other body.

    Parsed here rather than with ``request.form()``: our forms are a few short
    fields, and this saves a dependency on python-multipart.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return {}
    # Blank fields are kept: an input emptied on purpose says something (no limit).
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"),
                          keep_blank_values=True))


def with_notice(target: str, notice: str) -> str:
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "notice"]
    query.append(("notice", notice))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def action_result(request: Request, data: dict[str, Any], *, status: int = 200,
                        notice: str, default_next: str = "/") -> Response:
    """The answer to an action: JSON, or for a browser form a 303 back with a notice."""
    fields = await form(request)
    if "next" not in fields:
        return JSON(data, status_code=status)
    root = request.scope.get("root_path", "")
    return RedirectResponse(with_notice(local(fields["next"], root, default_next), notice),
                            status_code=303)


def error(message: str, status: int) -> JSON:
    return JSON({"error": message}, status_code=status)
