"""A private Postgres for local use, started when no DSN is configured.

It runs from the binaries of the ``pgserver`` package (the ``embedded`` extra:
``pip install -e '.[embedded]'`` in pgqueue's checkout), listens on a Unix socket
only, keeps its data under ``PGQ_HOME`` (``./.pgqueue`` by default) and is shared
by every process that points at the same directory: the worker in one terminal,
your script in another.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

from pgqueue.errors import ConfigurationError

log = logging.getLogger("pgqueue")
_lock = threading.Lock()
_started: dict[Path, str] = {}


def data_dir(home: str) -> Path:
    return Path(home).expanduser().resolve() / "pgdata"


def ensure_server(home: str) -> str:
    """Start (or join) the embedded server under ``home``; returns its DSN."""
    path = data_dir(home)
    with _lock:
        if path in _started:
            return _started[path]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError:
            raise ConfigurationError(
                "no database configured: set PGQ_DSN=postgresql://user@host/dbname, or "
                "install the embedded Postgres for local use: pip install -e '.[embedded]' "
                "in pgqueue's checkout"
            ) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(path)  # type: ignore[attr-defined]
        dsn: str = server.get_uri()
        log.warning(
            "PGQ_DSN is not set; using an embedded Postgres with its data in %s "
            "(set PGQ_DSN to use your own server)", path,
        )
        _started[path] = dsn
        return dsn
