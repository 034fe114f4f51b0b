import re

import pytest

from pgqueue import sql


def test_every_query_has_a_kind_and_no_unfilled_placeholder():
    qs = sql.queries("pgqueue")
    assert {"enqueue_jobs", "claim_jobs", "finish_jobs", "get_job", "extend_leases"} <= set(qs)
    for q in qs.values():
        assert q.kind in ("one", "many", "none")
        assert "{schema}" not in q.text and "_channel}" not in q.text, q.name
        assert not q.text.lstrip().startswith("--")


def test_schema_is_a_quoted_identifier():
    text = sql.queries("other_schema")["claim_jobs"].text
    assert '"other_schema".jobs' in text
    assert '"pgqueue"' not in text


def test_channels_are_quoted_identifiers():
    text = sql.queries("pgqueue")["listen_jobs"].text
    assert text.strip().rstrip(";") == 'LISTEN "pgqueue.jobs"'


def test_parse_rejects_duplicates():
    text = "-- name: a :one\nSELECT 1;\n-- name: a :one\nSELECT 2;\n"
    try:
        sql.parse(text)
    except ValueError as exc:
        assert "twice" in str(exc)
    else:
        raise AssertionError("duplicate query names accepted")


def test_migrations_are_numbered_and_contiguous():
    from pgqueue.migrate import available

    versions = [m.version for m in available()]
    assert versions == list(range(1, len(versions) + 1))
    for m in available():
        assert re.fullmatch(r"\w+", m.name)


def test_optional_parts_are_kept_only_when_asked_for() -> None:
    body = "\n".join(["SELECT 1", "-- with: extra", ", 2", "-- end: extra",
                      "-- without: extra", ", 3", "-- end: extra", "-- a comment", "FROM t"])
    assert sql.select_parts(body, frozenset()) == "SELECT 1\n, 3\nFROM t"
    assert sql.select_parts(body, frozenset({"extra"})) == "SELECT 1\n, 2\nFROM t"


def test_an_unbalanced_part_is_an_error() -> None:
    with pytest.raises(ValueError, match="never ended"):
        sql.select_parts("SELECT 1\n-- with: extra\n, 2", frozenset())
    with pytest.raises(ValueError, match="closes no"):
        sql.select_parts("SELECT 1\n-- end: extra", frozenset())


def test_the_hot_queries_leave_their_parts_out_by_default() -> None:
    plain = sql.queries("pgqueue")["claim_jobs"].text
    aged = sql.variant("pgqueue", "claim_jobs", "aging").text
    assert "levels" not in plain and "levels" in aged
    finish = sql.queries("pgqueue")["finish_jobs"].text
    assert "workflow_groups" not in finish and "job_keep" not in finish
    assert "workflow_groups" in sql.variant("pgqueue", "finish_jobs", "workflow").text
    with pytest.raises(ValueError, match="no part"):
        sql.variant("pgqueue", "finish_jobs", "nonsense")
