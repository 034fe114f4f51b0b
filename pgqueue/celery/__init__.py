"""``celery`` for pgqueue: Celery's top-level names, on PostgreSQL.

Migrating is ``s/from celery/from pgqueue.celery/`` plus the app line; see
docs/migrating-from-celery.md.
"""

from pgqueue.celery.app import Celery, shared_task

__all__ = ["Celery", "shared_task"]
