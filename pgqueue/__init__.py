"""pgqueue: a distributed task queue for Python with PostgreSQL as its only moving part."""

from pgqueue.app import App
from pgqueue.canvas import Chain, Chord, Group, Signature, chain, chord, group, signature
from pgqueue.context import JobContext
from pgqueue.errors import (
    ChordError,
    ConfigurationError,
    DatabaseUnavailable,
    JobCancelled,
    JobExpired,
    JobNotFound,
    MigrationError,
    PgQueueError,
    Retry,
    SoftTimeLimitExceeded,
    TaskError,
    TimeLimitExceeded,
    UnknownTask,
)
from pgqueue.group_result import GroupResult
from pgqueue.job import JobInfo, JobState
from pgqueue.progress import Progress
from pgqueue.result import JobResult
from pgqueue.settings import Settings
from pgqueue.task import Task

__all__ = [
    "App",
    "Chain",
    "Chord",
    "ChordError",
    "ConfigurationError",
    "DatabaseUnavailable",
    "Group",
    "GroupResult",
    "JobCancelled",
    "JobContext",
    "JobExpired",
    "JobInfo",
    "JobNotFound",
    "JobResult",
    "JobState",
    "MigrationError",
    "PgQueueError",
    "Progress",
    "Retry",
    "Settings",
    "Signature",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskError",
    "TimeLimitExceeded",
    "UnknownTask",
    "chain",
    "chord",
    "group",
    "signature",
]
__version__ = "0.2.0.dev0"
