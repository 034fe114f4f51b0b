import re

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
