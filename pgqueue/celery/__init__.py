"""``celery`` for pgqueue: Celery's top-level names, on PostgreSQL.

Migrating is ``s/from celery/from pgqueue.celery/`` plus the app line
(``Celery("proj", broker="postgresql://...")``); see docs/migrating-from-celery.md.
The canvas (``signature``, ``chain``, ``group``, ``chord``) takes Celery's options
and hands back Celery's result handles (:mod:`pgqueue.celery.canvas`).
"""

from pgqueue.celery import states
from pgqueue.celery.app import Celery
from pgqueue.celery.canvas import Signature, chain, chord, group, signature, subtask
from pgqueue.celery.shared import current_app, shared_task
from pgqueue.celery.task import Task, current_task

__all__ = ["Celery", "Signature", "Task", "chain", "chord", "current_app", "current_task", "group",
           "shared_task", "signature", "states", "subtask"]
