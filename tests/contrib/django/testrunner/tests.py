"""The project's own tests, run by Django's test runner (``manage.py test``), never by
pytest: each enqueues a job and opens pgqueue's pools, as tests of a real project do."""

import asyncio

from django.test import TestCase, TransactionTestCase

from pgqueue.contrib.django import get_app
from tests.contrib.django.djproject.shop import tasks


class InTransaction(TestCase):
    def test_enqueue_and_read_back(self) -> None:
        result = tasks.add.enqueue(2, 3)
        self.assertEqual(tasks.add.get_backend().get_result(result.id), result)


class Committed(TransactionTestCase):
    def test_enqueue_and_wait_on_pgqueues_pools(self) -> None:
        job = tasks.welcome.delay(1)
        with self.assertRaises(TimeoutError):  # no worker: waits on a pooled LISTEN
            job.get(timeout=0.2)

    def test_enqueue_from_async_code(self) -> None:
        async def go() -> int:
            try:
                return (await get_app().send_task_async("shop.nothing")).id
            finally:  # an async pool is closed by the loop that opened it
                await get_app().async_client.close()

        self.assertGreater(asyncio.run(go()), 0)
