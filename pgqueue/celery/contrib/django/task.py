"""``celery.contrib.django.task.DjangoTask``: a task that can wait for the transaction.

As in Celery 5.4, a Celery app made in a Django process (``DJANGO_SETTINGS_MODULE``
set) uses this class for its tasks unless given another ``task_cls``, so
``send_welcome_email.delay_on_commit(user.pk)`` from "First steps with Django"
works: the job is sent in ``transaction.on_commit``, and not at all if the
transaction rolls back. (pgqueue can also write the job inside the transaction
itself: ``apply_async(..., connection=...)``.)
"""

from __future__ import annotations

import functools
from typing import Any

from pgqueue.celery.task import Task


class DjangoTask(Task):
    abstract = True

    def delay_on_commit(self, *args: Any, **kwargs: Any) -> None:
        """``delay(*args, **kwargs)`` once the current transaction commits; returns None."""
        from django.db import transaction

        transaction.on_commit(functools.partial(self.delay, *args, **kwargs))

    def apply_async_on_commit(self, *args: Any, **kwargs: Any) -> None:
        """``apply_async(...)`` once the current transaction commits; returns None."""
        from django.db import transaction

        transaction.on_commit(functools.partial(self.apply_async, *args, **kwargs))
