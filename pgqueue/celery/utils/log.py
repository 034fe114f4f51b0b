"""``celery.utils.log``: ``get_task_logger(__name__)``, ``get_logger``.

A task logger is a child of ``celery.task`` (as in Celery), so configuring that
logger (or the root) configures every task's; pgqueue's worker logging
(``pgq worker -l INFO``) configures the root logger.
"""

from __future__ import annotations

import logging

task_logger = logging.getLogger("celery.task")
worker_logger = logging.getLogger("celery.worker")


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


class TaskFilter(logging.Filter):
    """Gives each record ``task_id`` and ``task_name`` (``???`` outside a task), so
    Celery's task log format (``%(task_name)s[%(task_id)s]: %(message)s``) works."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pgqueue.celery import request

        current = request.current()
        record.task_id = (current.id if current is not None else None) or "???"
        record.task_name = (current.task if current is not None else None) or "???"
        return True


_FILTER = TaskFilter()


def get_task_logger(name: str) -> logging.Logger:
    """A logger for a tasks module: ``logger = get_task_logger(__name__)``; its records
    carry the running task's ``task_id`` and ``task_name``."""
    if name in ("celery.task", "celery"):
        raise RuntimeError(f"logger name {name!r} is reserved for Celery's own loggers")
    logger = logging.getLogger(name)
    if logger.parent is logging.root:  # a top-level name: put it under celery.task
        logger.parent = task_logger
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
