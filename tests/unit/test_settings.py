import pytest

from pgqueue import ConfigurationError, Settings


def test_defaults():
    s = Settings()
    assert s.schema == "pgqueue" and s.queues == ("default",) and s.concurrency == 10


def test_from_env_and_overrides():
    env = {"PGQ_DSN": "postgresql://x/y", "PGQ_QUEUES": "a, b", "PGQ_CONCURRENCY": "3"}
    s = Settings.from_env(env, concurrency=7, schema=None)
    assert s.dsn == "postgresql://x/y"
    assert s.queues == ("a", "b")
    assert s.concurrency == 7  # an argument beats the environment


@pytest.mark.parametrize("kwargs, message", [
    ({"schema": "Robert'); drop"}, "schema"),
    ({"queues": ""}, "queues"),
    ({"concurrency": 0}, "concurrency"),
    ({"pool": "gevent"}, "pool"),
    ({"lease_seconds": 5, "heartbeat_interval": 4}, "twice"),
])
def test_invalid_settings_say_what_to_fix(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        Settings(**kwargs)


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigurationError, match="PGQ_CONCURRENCY"):
        Settings.from_env({"PGQ_CONCURRENCY": "many"})
