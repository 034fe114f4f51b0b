"""pgqueue: a distributed task queue for Python with PostgreSQL as its only moving part."""

from pgqueue.app import App
from pgqueue.context import JobContext
from pgqueue.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    JobCancelled,
    JobNotFound,
    MigrationError,
    PgQueueError,
    Retry,
    SoftTimeLimitExceeded,
    TaskError,
    TimeLimitExceeded,
    UnknownTask,
)
from pgqueue.job import JobInfo, JobState
from pgqueue.progress import Progress
from pgqueue.result import JobResult
from pgqueue.settings import Settings
from pgqueue.task import Task

__all__ = [
    "App",
    "ConfigurationError",
    "DatabaseUnavailable",
    "JobCancelled",
    "JobContext",
    "JobInfo",
    "JobNotFound",
    "JobResult",
    "JobState",
    "MigrationError",
    "PgQueueError",
    "Progress",
    "Retry",
    "Settings",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskError",
    "TimeLimitExceeded",
    "UnknownTask",
]
__version__ = "0.1.0"
