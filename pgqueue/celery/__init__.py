"""``celery`` for pgqueue: Celery's top-level names, on PostgreSQL.

Migrating is ``s/from celery/from pgqueue.celery/`` plus the app line
(``Celery("proj", broker="postgresql://...")``); see docs/migrating-from-celery.md.
The canvas (``signature``, ``chain``, ``group``, ``chord``) is pgqueue's own,
which already takes Celery's forms.
"""

from pgqueue.canvas import chain, chord, group, signature
from pgqueue.celery import states
from pgqueue.celery.app import Celery, current_app, shared_task
from pgqueue.celery.task import Task

__all__ = ["Celery", "Task", "chain", "chord", "current_app", "group", "shared_task",
           "signature", "states"]
