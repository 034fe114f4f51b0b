"""Runs one claimed job and returns its Outcome; never raises for a job's own failure.

``async def`` tasks run on the worker's event loop; plain functions run in the
worker's thread pool. Decoding the arguments, finding the task and encoding the
result all happen here, so any of them failing fails that job, with a traceback,
and nothing else.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pgqueue import encoding
from pgqueue.errors import UnknownTask
from pgqueue.job import ClaimedJob
from pgqueue.worker.outcome import Failed, Outcome, Succeeded, error_from

if TYPE_CHECKING:
    from pgqueue.task import Task


class Executor:
    def __init__(self, tasks: dict[str, Task[Any, Any]], threads: ThreadPoolExecutor,
                 app_path: str | None) -> None:
        self.tasks = tasks
        self.threads = threads
        self.app_path = app_path

    def _task(self, name: str) -> Task[Any, Any]:
        task = self.tasks.get(name)
        if task is None:
            registered = ", ".join(sorted(self.tasks)) or "none"
            hint = f"--app {self.app_path}" if self.app_path else "--app module:app"
            raise UnknownTask(
                f"unknown task {name!r} (registered: {registered}); is the worker started "
                f"with the app that defines it ({hint}), and is it imported there?"
            )
        return task

    async def execute(self, job: ClaimedJob) -> Outcome:
        try:
            task = self._task(job.task)
            args = encoding.loads(job.args_json)
            kwargs = encoding.loads(job.kwargs_json)
            if task.is_async:
                value = await task.fn(*args, **kwargs)
            else:
                loop = asyncio.get_running_loop()
                call = functools.partial(task.fn, *args, **kwargs)
                value = await loop.run_in_executor(self.threads, call)
            try:
                return Succeeded(encoding.dumps(value))
            except TypeError as exc:
                raise TypeError(f"task {job.task!r} returned a value pgqueue can't store: "
                                f"{exc}") from exc
        except Exception as exc:
            return Failed(error_from(exc))
