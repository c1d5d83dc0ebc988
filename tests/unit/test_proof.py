"""The pieces of proof that need no database: 64-bit transaction ids, golang-migrate's own statements, which files
can be partly applied, and what a verdict rests on when golang-migrate's output already says it."""

import pytest

from migrate_wrapper.model.evidence import COMMITTED, NOT_RUN, ROLLED_BACK, UNKNOWN, StepEvidence
from migrate_wrapper.runtime import proof
from migrate_wrapper.sql import sqlinfo
from migrate_wrapper.config.dburl import DatabaseUrl
from migrate_wrapper.golang_migrate.output import MigrateFailure


@pytest.mark.parametrize(("xid32", "xmax", "full"), [
    (733, 733, 733),  # a running transaction at the snapshot's xmax
    (700, 733, 700),
    (5, (3 << 32) + 10, (3 << 32) + 5),  # same epoch
    (2**32 - 5, (3 << 32) + 10, (2 << 32) + 2**32 - 5),  # just before the wrap: the previous epoch
    (5, (3 << 32) + 2**32 - 3, (4 << 32) + 5),  # just after the wrap: the next epoch
])
def test_full_transaction_ids_cross_the_wraparound(xid32, xmax, full):
    assert proof.full_xid(xid32, xmax) == full


def test_golang_migrates_own_statements_quote_as_lib_pq_does():
    marks = proof.bookkeeping("my schema", 'odd"table')
    assert 'TRUNCATE "my schema"."odd""table"' in marks
    assert 'INSERT INTO "my schema"."odd""table" (version, dirty) VALUES ($1, $2)' in marks


@pytest.mark.parametrize(("sql", "atomic"), [
    ("create table a(id int);\ninsert into a values (1);\n", True),
    ("do $$ begin perform 1; end $$;\n", True),
    ("call fill();\n", False),
    ("do $$ begin insert into a values (1); commit; end $$;\n", False),
    ("select dblink_exec('dbname=x', 'insert into a values (1)');\n", False),
    ("vacuum a;\n", False),
    ("create database other;\n", False),
    ("reindex database x;\n", False),
    ("begin;\ncreate table a(id int);\ncommit;\n", True),  # wrapped whole
    ("create table a(id int);\ncommit;\ninsert into a values (1);\n", False),
    ("create index concurrently i on a(id);\n", False),
])
def test_anything_that_can_commit_on_its_own_is_not_atomic(sql, atomic):
    assert sqlinfo.analyse(sql).atomic is atomic


def test_multi_statement_mode_makes_every_multi_statement_file_partial(tmp_path):
    path = tmp_path / "1_x.up.sql"
    path.write_text("create table a(id int);\ninsert into a values (1);\n")
    plain = DatabaseUrl.parse("postgres://u@h/db", setting="DB_URL")
    multi = DatabaseUrl.parse("postgres://u@h/db?x-multi-statement=true", setting="DB_URL")
    assert proof.not_atomic(plain, path) is None
    assert "one by one" in proof.not_atomic(multi, path)


def _step(**kw):
    return StepEvidence(id="2_seed", version=2, direction="up", dirty_version=2, before_version=1,
                        path=None, **kw)


def test_verdicts_from_golang_migrates_output():
    body = MigrateFailure("migration_failed", "canceling statement due to user request")
    mark = MigrateFailure("set_version", "golang-migrate could not record the version: lock timeout")
    lost = MigrateFailure("no_answer", "driver: bad connection")
    settle = lambda step, failure, partial=None: proof.settle(None, step, failure, partial=partial, wait=0)  # noqa: E731
    assert settle(_step(started=False), body).kind == NOT_RUN
    assert settle(_step(started=True), body).kind == ROLLED_BACK
    assert settle(_step(started=True), mark).kind == COMMITTED
    assert settle(_step(started=True, body_done=True), None).kind == COMMITTED
    assert settle(_step(started=True), body, partial="it has its own BEGIN/COMMIT").kind == UNKNOWN
    assert settle(_step(started=True), mark, partial="it has CALL").kind == UNKNOWN
    # A lost answer proves nothing: with no backend or transaction seen, the verdict is unknown.
    assert settle(_step(started=True), lost).kind == UNKNOWN


def test_evidence_is_tied_to_the_very_dirty_mark():
    assert proof.same_mark(_step(mark_xmin=50), 50)
    assert not proof.same_mark(_step(mark_xmin=50), 70)  # the mark was written again since
    assert proof.same_mark(_step(xid=60), 50)  # the body began after the mark
    assert not proof.same_mark(_step(xid=40), 50)  # an older run's transaction
    assert not proof.same_mark(_step(), 50)
    assert StepEvidence.from_json(_step(xid=7).to_json()).xid == 7
    assert StepEvidence.from_json({"id": "x"}) is None


class _Conn:
    """Answers the witness's one query with a row as pg_stat_activity would give it."""

    def __init__(self, row):
        self.row = row

    def execute(self, sql, params=None):
        return self

    def fetchone(self):
        return self.row


MARKS = proof.bookkeeping("public", "schema_migrations")
BODY = "insert into a values (1),(2),(3);\nselect pg_sleep(2);\n"


def _row(query, state, xid="900", pid=41, started="t0"):
    return (pid, started, xid, query, "1000", state)


def test_a_look_takes_the_bodys_transaction_only_from_the_bodys_own_text():
    step = _step(started=True)
    assert proof.look(_Conn(_row("select 1", "active")), 1, MARKS, step, BODY) is False  # someone else's text
    assert step.pid is None and step.xid is None
    assert proof.look(_Conn(_row(BODY[:20], "active")), 1, MARKS, step, BODY) is True  # a truncated query text
    assert (step.pid, step.xid) == (41, 900)


def test_an_idle_commit_is_not_golang_migrate_past_the_body():
    # Between the dirty mark's COMMIT and the body's arrival the backend is idle with query COMMIT.
    step = _step(started=True)
    proof.look(_Conn(_row(BODY, "active")), 1, MARKS, step, BODY)
    assert proof.look(_Conn(_row("COMMIT", "idle", xid=None)), 1, MARKS, step, BODY) is False
    assert not step.body_done
    assert proof.look(_Conn(_row('TRUNCATE "public"."schema_migrations"', "active", xid=None)), 1, MARKS, step,
                      BODY) is True
    assert step.body_done


def test_a_backend_first_seen_at_bookkeeping_or_another_backend_teaches_nothing():
    step = _step(started=True)
    assert proof.look(_Conn(_row('TRUNCATE "public"."schema_migrations"', "active")), 1, MARKS, step, BODY) is False
    assert step.pid is None and not step.body_done
    proof.look(_Conn(_row(BODY, "active")), 1, MARKS, step, BODY)
    other = _row('TRUNCATE "public"."schema_migrations"', "active", pid=77, started="t9")  # a raw migrate, later
    assert proof.look(_Conn(other), 1, MARKS, step, BODY) is False
    assert (step.pid, step.body_done) == (41, False)


@pytest.mark.parametrize(("sql", "shown"), [
    ("select 'CARD-4111' as pan from a where id <> 42", "select $1 as pan from a where id <> $2"),
    ("SELECT 1 /* hunter2 */ -- note\n, 2", "SELECT $1 , $2"),  # comments may hold anything
    ("PREPARE p AS SELECT 'secret'", "(PREPARE statement: its text is not shown)"),
    ("CREATE SERVER s FOREIGN DATA WRAPPER w OPTIONS (password 'pw')", "statement: its text is not shown"),
    ("COPY a FROM PROGRAM 'curl secret'", "(COPY statement: its text is not shown)"),
    ("ALTER SYSTEM SET primary_conninfo = 'password=pw'", "statement: its text is not shown"),
    ("select 'cut sho", "(query not shown: it does not parse"),
])
def test_another_sessions_sql_shows_no_literal_comment_or_utility_text(sql, shown):
    assert shown in sqlinfo.shown_query(sql)
    for secret in ("CARD", "hunter2", "secret", "pw'", "cut sho"):
        assert secret not in sqlinfo.shown_query(sql)
