"""Retry rules as pure functions: no database, no sleeping."""

import random
import uuid

import pytest

from pgqueue.job import ClaimedJob, JobError, JobState
from pgqueue.outcome import (
    Cancelled,
    Failed,
    RetryRequested,
    Succeeded,
    TimedOut,
    decide,
)
from pgqueue.retry import RetryPolicy

ERR = JobError("OSError", "disk", "tb")


def job(attempt: int, max_attempts: int) -> ClaimedJob:
    return ClaimedJob(1, "t", "q", attempt, max_attempts, uuid.uuid4(), "[]", "{}")


def test_no_retries_by_default():
    assert decide(job(1, 1), Failed(ERR, retryable=False)).state is JobState.FAILED


def test_retryable_failure_is_requeued_until_attempts_run_out():
    policy = RetryPolicy(max_retries=2, default_retry_delay=7, retry_jitter=False)
    first = decide(job(1, 3), Failed(ERR, retryable=True), policy)
    assert first.state is JobState.QUEUED and first.retry_in == 7 and first.error == ERR
    assert decide(job(2, 3), Failed(ERR, True), policy).state is JobState.QUEUED
    assert decide(job(3, 3), Failed(ERR, True), policy).state is JobState.FAILED


def test_budget_of_zero_means_the_workers_policy():
    policy = RetryPolicy(max_retries=1)
    assert decide(job(1, 0), Failed(ERR, True), policy).state is JobState.QUEUED
    assert decide(job(2, 0), Failed(ERR, True), policy).state is JobState.FAILED


def test_autoretry_for_narrows_what_is_retried():
    policy = RetryPolicy(max_retries=3, autoretry_for=(OSError,))
    assert policy.retries_on(FileNotFoundError())
    assert not policy.retries_on(ValueError())
    assert RetryPolicy(max_retries=3).retries_on(ValueError())
    assert not RetryPolicy().retries_on(OSError())


def test_exponential_backoff_with_cap_and_jitter():
    policy = RetryPolicy(max_retries=10, retry_backoff=2, retry_backoff_max=20,
                         retry_jitter=False)
    assert [policy.delay(a) for a in range(1, 6)] == [2, 4, 8, 16, 20]
    jittered = RetryPolicy(max_retries=10, retry_backoff=True, retry_backoff_max=600)
    rng = random.Random(1)
    for attempt in range(1, 8):
        assert 2 ** (attempt - 1) / 2 <= jittered.delay(attempt, rng) <= 2 ** (attempt - 1)


def test_self_retry_uses_its_countdown_and_may_raise_the_limit():
    out = decide(job(1, 1), RetryRequested(ERR, countdown=10), RetryPolicy())
    assert out.state is JobState.FAILED  # no retries allowed: retry() can't exceed them
    out = decide(job(1, 1), RetryRequested(ERR, countdown=10, max_retries=2))
    assert out.state is JobState.QUEUED and out.retry_in == 10


def test_timeouts_retry_only_when_the_task_has_retries():
    assert decide(job(1, 1), TimedOut(ERR)).state is JobState.FAILED
    assert decide(job(1, 2), TimedOut(ERR), RetryPolicy(max_retries=1)).state is JobState.QUEUED


def test_success_and_cancel_are_final():
    assert decide(job(1, 5), Succeeded("1")).state is JobState.SUCCEEDED
    assert decide(job(1, 5), Cancelled()).state is JobState.CANCELLED


def test_policy_validation():
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
