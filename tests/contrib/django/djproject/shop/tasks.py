"""Tasks of both APIs, found by autodiscovery: pgqueue's ``@app.task`` and Django's ``@task``."""

from __future__ import annotations

import asyncio
from typing import Any

from pgqueue.contrib.django import app
from tests.contrib.django.djproject.shop.models import Signup


@app.task(queue="emails")
def welcome(signup_id: int) -> str:
    """pgqueue's API; writes through the ORM in the worker."""
    Signup.objects.filter(pk=signup_id).update(welcomed=True)
    return Signup.objects.get(pk=signup_id).email


try:
    from django.tasks import task
except ImportError:
    try:
        from django_tasks import task
    except ImportError:  # no task API: the tests that need one skip
        task = None


class PaymentDeclined(Exception):
    pass


if task is not None:

    @task
    def add(a: int, b: int) -> int:
        return a + b

    @task
    def divide(a: float, b: float) -> float:
        return a / b

    @task
    def charge(cents: int) -> None:
        raise PaymentDeclined(f"card declined for {cents} cents")

    @task(takes_context=True)
    def whoami(context: Any) -> dict[str, Any]:
        return {"id": context.task_result.id, "attempt": context.attempt}

    @task
    async def shout(text: str) -> str:
        await asyncio.sleep(0)
        return text.upper()

    @task(queue_name="emails", priority=10)
    def welcome_by_django(signup_id: int) -> str:
        Signup.objects.filter(pk=signup_id).update(welcomed=True)
        return Signup.objects.get(pk=signup_id).email
