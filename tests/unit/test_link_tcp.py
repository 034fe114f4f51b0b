"""The worker's links give up on a silent network (pgqueue.link.TCP_DEFAULTS), unless
the DSN says otherwise. The behaviour itself is tests/acceptance/test_cut_host.py's."""

from psycopg.conninfo import conninfo_to_dict

from pgqueue.link import TCP_DEFAULTS, with_tcp_defaults


def test_every_form_of_dsn_gets_the_tcp_defaults() -> None:
    for dsn in ("host=db.internal dbname=app user=u password='p w'",
                "postgresql://u:p%20w@db.internal:5433/app"):
        params = conninfo_to_dict(with_tcp_defaults(dsn))
        assert {k: params[k] for k in TCP_DEFAULTS} == TCP_DEFAULTS
        assert params["password"] == "p w" and params["host"] == "db.internal"


def test_what_the_dsn_sets_wins() -> None:
    dsn = "postgresql://u@db/app?keepalives=0&tcp_user_timeout=60000"
    params = conninfo_to_dict(with_tcp_defaults(dsn))
    assert params["keepalives"] == "0" and params["tcp_user_timeout"] == "60000"
    assert params["connect_timeout"] == TCP_DEFAULTS["connect_timeout"]


def test_a_dsn_that_does_not_parse_is_left_for_connect_to_report() -> None:
    assert with_tcp_defaults("not a dsn") == "not a dsn"
