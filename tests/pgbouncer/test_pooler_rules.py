"""Which connections count as pooled, and where LISTEN and the leader lock go (no database)."""

from __future__ import annotations

from pgqueue import pooler
from pgqueue.client import connect_kwargs
from pgqueue.link import leader_link, listen_link, worker_link
from pgqueue.settings import Settings


def test_why_pooled() -> None:
    assert pooler.why_pooled(prepared=False) == pooler.PREPARED_OFF
    assert pooler.why_pooled(prepared=True, told_pid=7, server_pid=8) == pooler.SHOWS_POOLER
    assert pooler.why_pooled(prepared=True, told_pid=7, server_pid=7) is None
    assert pooler.why_pooled(prepared=True) is None


def test_prepared_statements_off_reaches_the_connection_kwargs() -> None:
    assert connect_kwargs(False)["prepare_threshold"] is None
    assert "prepare_threshold" not in connect_kwargs(True)
    assert connect_kwargs(False, application_name="x")["application_name"] == "x"


def test_listen_and_leader_links_use_the_direct_dsn_when_given() -> None:
    pooled = Settings(dsn="host=pool", prepared_statements=False)
    direct = pooled.with_(listen_dsn="host=db")
    lead = direct.with_(leader_dsn="host=lead")
    assert (listen_link(lambda: "host=pool", pooled).direct, worker_link("host=pool", "claim",
            direct).direct) == (False, False)
    assert listen_link(lambda: "host=pool", direct).dsn == "host=db"
    assert listen_link(lambda: "host=pool", direct).direct
    assert leader_link("host=pool", pooled).dsn == "host=pool"
    assert leader_link("host=pool", direct).dsn == "host=db"
    assert leader_link("host=pool", lead).dsn == "host=lead"
    assert not worker_link("host=pool", "claim", pooled).prepared
