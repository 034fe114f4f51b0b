"""pgqueue: a distributed task queue for Python with PostgreSQL as its only moving part."""

from pgqueue.app import App
from pgqueue.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    JobCancelled,
    JobNotFound,
    MigrationError,
    PgQueueError,
    TaskError,
    UnknownTask,
)
from pgqueue.job import JobInfo, JobState
from pgqueue.result import JobResult
from pgqueue.settings import Settings
from pgqueue.task import Task

__all__ = [
    "App",
    "ConfigurationError",
    "DatabaseUnavailable",
    "JobCancelled",
    "JobInfo",
    "JobNotFound",
    "JobResult",
    "JobState",
    "MigrationError",
    "PgQueueError",
    "Settings",
    "Task",
    "TaskError",
    "UnknownTask",
]
__version__ = "0.1.0"
