"""The Jinja2 environment: where templates live, and the filters that format numbers,
ages and times the same way on every page.

Every page shows times in UTC (the database's clock and the API's), labelled so.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from pgqueue.dashboard import csrf, windows
from pgqueue.dashboard.params import STATES
from pgqueue.dashboard.paths import segment
from pgqueue.monitor_rows import RawValue
from pgqueue.progress import Progress

HERE = Path(__file__).resolve().parent

# Messages an action may ask the next page to show (`?notice=`): a fixed set, so a
# crafted link can't make the dashboard display text of an attacker's choosing.
NOTICES = {
    "retried": "Job queued again.",
    "not-retryable": "Only a failed or cancelled job can be retried.",
    "cancelled": "Job cancelled.",
    "stopping": "The job is running: its worker was told to stop it.",
    "not-cancellable": "Only a queued or running job can be cancelled.",
    "retried-failed": "Failed jobs of the task queued again.",
    "paused": "Queue paused: workers take no new jobs from it.",
    "resumed": "Queue resumed.",
    "limits-set": "Queue limits set: workers apply them within a heartbeat.",
    "schedule-paused": "Schedule paused.",
    "schedule-resumed": "Schedule resumed.",
    "triggered": "Schedule triggered: a job was enqueued.",
    "logged-out": "Logged out.",
}


def age(seconds: float | None) -> str:
    """3s, 4m 05s, 2h 03m, 3d 04h: two units are enough to read at a glance."""
    if seconds is None:
        return "—"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def span(seconds: float) -> str:
    """A chart bucket's width: 10 s, 1 min, 24 min, 2 h 48 min."""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600 or (s < 7200 and s % 3600):
        return f"{s // 60} min"
    return f"{s // 3600} h" + (f" {s % 3600 // 60} min" if s % 3600 else "")


def runtime(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.1f} ms"
    return f"{ms / 1000:.2f} s"


def when(value: dt.datetime | None) -> Markup:
    """A UTC timestamp, with the exact ISO time in a tooltip."""
    if value is None:
        return Markup("—")
    utc = value.astimezone(dt.UTC)
    return Markup('<time datetime="{iso}" title="{iso}">{text}</time>').format(
        iso=utc.isoformat(), text=utc.strftime("%Y-%m-%d %H:%M:%S"))


def between(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None or end is None:
        return "—"
    return runtime((end - start).total_seconds() * 1000)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def amount(value: float) -> str:
    """A progress count: 1,234 or 17.5 (floats to at most two decimals)."""
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def percent(progress: Progress) -> int:
    """Whole percent done, rounded down (99.9% is not yet 100) and kept within 0-100."""
    fraction = progress.fraction
    return 0 if fraction is None else int(min(max(fraction, 0.0), 1.0) * 100)


def progress_short(progress: Progress | None) -> str:
    """A job list's cell: 42% with a total, the count done without one, blank with none."""
    if progress is None:
        return ""
    if progress.fraction is None:
        return amount(progress.done)
    return f"{percent(progress)}%"


_SCALARS = (str, int, float, bool, type(None))


def summary(value: Any, limit: int = 160) -> str:
    """A value on one line (progress meta), cut at ``limit`` characters: a flat dict
    as ``file: a.csv · rows: 17000``, anything else as compact JSON."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict) and all(isinstance(v, _SCALARS) for v in value.values()):
        text = " · ".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}"
                          for k, v in value.items())
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str,
                          separators=(", ", ": "))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def local_input(value: dt.datetime | None) -> str:
    """A time as ``<input type=datetime-local>`` wants it (in UTC, no offset)."""
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")


def _context(request: Request) -> dict[str, Any]:
    auth = request.app.state.auth
    return {
        "root": request.scope.get("root_path", ""),
        "csrf_token": csrf.token(request.scope),
        "csrf_field": csrf.FIELD,
        "can_logout": auth.token is not None,
        "states": STATES,
        "window_choices": list(windows.CHOICES),
        "notice": NOTICES.get(request.query_params.get("notice", "")),
        "path": request.url.path,
    }


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # everything shown (arguments, tracebacks) is untrusted text
        undefined=jinja2.StrictUndefined,  # a typo in a template fails a test, not silently
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(age=age, span=span, runtime=runtime, when=when, pretty=pretty,
                       local_input=local_input, amount=amount, percent=percent,
                       progress_short=progress_short, summary=summary,
                       segment=segment)  # a name in a path: one segment, "/" as %2F
    env.globals.update(between=between)
    env.tests.update(raw=lambda value: isinstance(value, RawValue))
    return Jinja2Templates(env=env, context_processors=[_context])
