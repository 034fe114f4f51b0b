"""Which ticks are due: cron and intervals, time zones, DST, missed-tick policies. Pure."""

import datetime as dt

import pytest

from pgqueue import App
from pgqueue.schedule import Rule, due_ticks, next_after

UTC = dt.UTC


def t(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_cron_in_utc():
    rule = Rule(cron="*/15 * * * *")
    assert next_after(rule, t(2026, 1, 1, 10, 7)) == t(2026, 1, 1, 10, 15)
    assert due_ticks(rule, t(2026, 1, 1, 10, 0), t(2026, 1, 1, 10, 15)) == [t(2026, 1, 1, 10, 15)]


def test_cron_in_a_time_zone():
    rule = Rule(cron="0 3 * * *", tz="Europe/Paris")  # 03:00 in Paris is 02:00 UTC in winter
    assert next_after(rule, t(2026, 1, 10, 0, 0)) == t(2026, 1, 10, 2, 0)
    assert next_after(rule, t(2026, 7, 10, 0, 0)) == t(2026, 7, 10, 1, 0)  # summer: UTC+2


def test_dst_spring_forward_fires_once():
    rule = Rule(cron="30 2 * * *", tz="Europe/Paris")  # 02:30 does not exist on 2026-03-29
    ticks = due_ticks(rule, t(2026, 3, 28, 12, 0), t(2026, 3, 30, 12, 0), "all",
                      dt.timedelta(days=3))
    assert ticks == [t(2026, 3, 29, 1, 30), t(2026, 3, 30, 0, 30)]


def test_dst_fall_back_fires_once():
    rule = Rule(cron="30 2 * * *", tz="Europe/Paris")  # 02:30 happens twice on 2026-10-25
    ticks = due_ticks(rule, t(2026, 10, 24, 12, 0), t(2026, 10, 26, 12, 0), "all",
                      dt.timedelta(days=3))
    assert ticks == [t(2026, 10, 25, 0, 30), t(2026, 10, 26, 1, 30)]


def test_every_is_aligned_to_the_epoch():
    rule = Rule(every=dt.timedelta(seconds=30))
    assert next_after(rule, t(2026, 1, 1, 0, 0, 10)) == t(2026, 1, 1, 0, 0, 30)
    assert next_after(rule, t(2026, 1, 1, 0, 0, 30)) == t(2026, 1, 1, 0, 1, 0)


def test_missed_tick_policies():
    rule = Rule(every=dt.timedelta(minutes=1))
    since, now = t(2026, 1, 1, 0, 0), t(2026, 1, 1, 0, 10, 5)  # ten ticks missed
    assert due_ticks(rule, since, now, "latest") == [t(2026, 1, 1, 0, 10)]
    assert due_ticks(rule, since, now, "skip") == [t(2026, 1, 1, 0, 10)]  # 5 s late: on time
    assert due_ticks(rule, since, t(2026, 1, 1, 0, 10, 45), "skip") == []  # too late
    assert len(due_ticks(rule, since, now, "all")) == 10
    window = due_ticks(rule, since, now, "all", dt.timedelta(minutes=3))
    assert window == [t(2026, 1, 1, 0, 8), t(2026, 1, 1, 0, 9), t(2026, 1, 1, 0, 10)]
    assert due_ticks(rule, t(2026, 1, 1, 0, 10), now) == []  # nothing new


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one"),
    ({"cron": "* * *"}, "invalid cron"),
    ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
    ({"every": dt.timedelta(0)}, "positive"),
])
def test_rule_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Rule(**kwargs)


def test_declaring_schedules_in_code():
    app = App("postgresql://unused/db")

    @app.periodic(cron="0 3 * * *", tz="Europe/Paris")
    @app.task(queue="maintenance")
    def cleanup(days: int = 30) -> None: ...

    @app.task
    def ping() -> None: ...

    app.add_periodic("ping-often", ping, every=dt.timedelta(seconds=30), args=(1,),
                     catch_up="skip")
    assert app.schedules["cleanup"].queue == "maintenance"
    assert app.schedules["cleanup"].rule.tz == "Europe/Paris"
    assert app.schedules["ping-often"].args_json == "[1]"
    with pytest.raises(ValueError, match="catch_up"):
        app.add_periodic("bad", ping, every=dt.timedelta(seconds=1), catch_up="some")
