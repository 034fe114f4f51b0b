"""Passwords out of every message: :func:`redact_dsn` for a DSN shown on purpose,
:func:`scrub` for any text that may quote one (an exception from psycopg, a log line).

A DSN's password can reach text in many shapes: a URL (``postgresql://u:p@h/db``,
percent-encoded or not), ``password=secret`` or ``password='se cret'`` in a libpq
key=value string, and, when the DSN doesn't parse, in pieces that psycopg quotes
back (``missing "=" after "cret"``, ``invalid percent-encoded token: "p%zz"``).
So both are done twice over: by pattern (anything shaped like a password in a DSN
is masked, whoever's it is) and by value (each password pgqueue was configured
with, in every form it may be written, is replaced wherever it appears).
:class:`pgqueue.settings.Settings` remembers its DSNs' passwords here as it is
built; ``PGPASSWORD`` and ``~/.pgpass`` never pass through pgqueue at all.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, unquote

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

MASK = "***"
# Fragments shorter than this are not replaced by value (they would garble text);
# the patterns still mask them where they stand in a DSN.
MIN_SECRET = 3

# scheme://user:PASSWORD@ (the user part has no ':', '/' or '@'; the password no '@').
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s:/@'\"]*:)([^\s@/'\"]+|[^@]*?)(@)")
# password=VALUE in key=value form or a URL's query string: quoted, or up to a space/&.
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&]*)", re.IGNORECASE)
# After password=, an unparseable key=value DSN may go on in words up to the next key.
_KV_TAIL = re.compile(r"\bpassword\s*=\s*(.*?)(?=\s+\w+\s*=|$)", re.IGNORECASE | re.DOTALL)

_lock = threading.Lock()
_remembered: set[str] = set()


def _masked(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    return _KV_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}", text)


def redact_dsn(dsn: str) -> str:
    """The DSN with its password masked, in whatever form it was written (one that
    doesn't parse loses everything from ``password=`` up to the next key)."""
    try:
        conninfo_to_dict(dsn)
    except ProgrammingError:
        dsn = _KV_TAIL.sub(f"password={MASK}", dsn)
    return _masked(dsn)


def secrets(dsn: str) -> set[str]:
    """Every form in which this DSN's password may turn up in a message."""
    found: set[str] = set()
    try:
        password = conninfo_to_dict(dsn).get("password")
        if password:
            found.add(str(password))
    except ProgrammingError:  # doesn't parse: take what the patterns see
        pass
    for m in _URL_PASSWORD.finditer(dsn):
        found.update({m.group(2), unquote(m.group(2))})
    for m in _KV_PASSWORD.finditer(dsn):
        value = m.group(2)
        found.update({value, value.strip("'").replace("\\'", "'").replace("\\\\", "\\")})
    for m in _KV_TAIL.finditer(dsn):
        found.add(m.group(1).strip())
        found.update(m.group(1).replace("'", " ").split())
    found.update({quote(s, safe="") for s in list(found)})
    return {s for s in found if len(s) >= MIN_SECRET}


# Loggers whose records may quote a DSN, filtered where the record is made, so an
# application's own handlers (not only `pgq`'s) get them scrubbed.
_LOGGERS = ("psycopg", "psycopg.pool", "pgqueue", "pgqueue.worker", "pgqueue.services",
            "pgqueue.dashboard", "pgqueue.scheduler", "pgqueue.maintenance", "pgqueue.waiters")


def remember(*dsns: str | None) -> None:
    """Keep these DSNs' passwords, for :func:`scrub` to replace wherever they appear."""
    new = set().union(*(secrets(d) for d in dsns if d))
    if new - _remembered:
        with _lock:
            _remembered.update(new)
            for name in _LOGGERS:
                logger = logging.getLogger(name)
                if not any(isinstance(f, RedactingFilter) for f in logger.filters):
                    logger.addFilter(RedactingFilter())


def scrub(text: str, *dsns: str | None) -> str:
    """``text`` with every password masked: those shaped as one in a DSN, those of
    ``dsns``, and those remembered from the settings."""
    values = set(_remembered).union(*(secrets(d) for d in dsns if d))
    for value in sorted(values, key=len, reverse=True):  # longest first: no half-masking
        text = text.replace(value, MASK)
    return _masked(text)


class RedactingFilter(logging.Filter):
    """On a handler: each record's message, scrubbed, before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if scrub(text) != text:  # a traceback that quotes a password: keep it scrubbed
                clean = f"{clean}\n{scrub(text)}"
                record.exc_info = None
                record.exc_text = None
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to each handler of ``logger`` (the root's)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
