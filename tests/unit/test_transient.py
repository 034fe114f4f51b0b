"""Which database refusals the recorder treats as "try again", not as the row's fault."""

import psycopg

from pgqueue.worker.recorder import transient


def test_deadlocks_and_timeouts_are_transient():
    assert transient(psycopg.errors.DeadlockDetected())
    assert transient(psycopg.errors.SerializationFailure())
    assert transient(psycopg.errors.LockNotAvailable())
    assert transient(psycopg.errors.QueryCanceled())
    assert not transient(psycopg.errors.CheckViolation())
    assert not transient(psycopg.errors.UntranslatableCharacter())
    assert not transient(ValueError("not from the database"))
