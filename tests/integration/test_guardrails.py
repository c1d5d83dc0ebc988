"""Guardrails triggered for real: locks, the lock-timeout retries, the window, post-checks, approval, the ledger."""

import json
import threading
import time

import psycopg
import pytest

from tests.conftest import error_line, migration_files as files, run_cli, version

pytestmark = pytest.mark.integration


BASE = [
    ("202601010000_create_t", "create table t(id int primary key, v text);\ninsert into t select g, 'x' from generate_series(1, 50) g;\n", "drop table t;\n"),
]
ALTER_T = ("202601010100_alter_t", "alter table t add column w int;\n", "alter table t drop column w;\n")
SLEEP = ("202601010050_sleep", "select pg_sleep(2);\n", "select 1;\n")


def apply(dbs, root, *extra, env=None):
    return run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", *extra, root=root, env=env)


def events(result, name):
    return [json.loads(l) for l in result.stderr.splitlines() if f'"event": "{name}"' in l]


@pytest.fixture
def hold(dbs):
    """Open a connection that holds something for the length of a test."""
    conns = []

    def open_conn():
        conn = psycopg.connect(dbs.server.url(dbs.operational), autocommit=True, application_name="lock-holder")
        conns.append(conn)
        return conn

    yield open_conn
    for conn in conns:
        conn.close()


@pytest.mark.faults(scenario="golang-migrate lock held elsewhere", expected="exit 3 at once, naming the pid")
def test_advisory_lock_held_elsewhere_fails_fast_naming_the_holder(migrate_bin, dbs, project, hold):
    root = project({"operational": files(*BASE)})
    from migrate_wrapper.postgres.locks import advisory_lock_key
    from migrate_wrapper.config.dburl import DatabaseUrl

    key = advisory_lock_key(DatabaseUrl.parse(dbs.url("operational"), setting="DB_URL"), "public", "schema_migrations")
    holder = hold()
    holder.execute("select pg_advisory_lock(%s)", (key,))
    pid = holder.info.backend_pid
    started = time.monotonic()
    result = apply(dbs, root)
    assert result.returncode == 3
    assert time.monotonic() - started < 15
    line = error_line(result)
    assert line.startswith("error: pre-check failed: migration_lock:")
    assert f"pid {pid}" in line and "lock-holder" in line
    assert dbs.server.psql(dbs.operational, "select to_regclass('t') is null") == "t"


@pytest.mark.faults(scenario="transaction holds a needed table lock", expected="exit 3 naming the pid")
def test_transaction_holding_a_table_lock_fails_the_pre_check(migrate_bin, dbs, project, hold):
    root = project({"operational": files(*BASE, ALTER_T)})
    assert apply(dbs, root, "--log-format", "json").returncode == 0  # both steps; ALTER_T is rolled back next
    back = run_cli("rollback", "-c", "operational", "--env", str(dbs.env_file), "--version", ALTER_T[0], "--yes",
                   root=root)
    assert back.returncode == 0, back.output
    holder = hold()
    holder.execute("begin")
    holder.execute("select * from t limit 1")  # AccessShareLock, which ALTER TABLE's AccessExclusiveLock conflicts with
    pid = holder.info.backend_pid
    result = apply(dbs, root)
    assert result.returncode == 3
    line = error_line(result)
    assert "pre-check failed: blocking_locks:" in line and f"pid {pid}" in line and "AccessShareLock" in line
    holder.execute("rollback")
    assert version(dbs) == "202601010000"


def _poll(conn, sql, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.execute(sql).fetchone()[0]:
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {sql}")


MIGRATE_SLEEPING = "select count(*) > 0 from pg_stat_activity where application_name = 'db-migrate-cli' and query like '%pg_sleep%' and state = 'active'"
MIGRATE_WAITING = "select count(*) > 0 from pg_stat_activity where application_name = 'db-migrate-cli' and wait_event_type = 'Lock'"


def _take_lock_later(dbs, *, release_after_one_timeout):
    """Take a lock on t while golang-migrate runs the sleep step (after the pre-checks passed); keep it for good, or
    until golang-migrate has waited on it and timed out once."""
    def work():
        with psycopg.connect(dbs.server.url(dbs.operational), autocommit=True) as watcher, \
                psycopg.connect(dbs.server.url(dbs.operational), application_name="late-holder") as holder:
            _poll(watcher, MIGRATE_SLEEPING)
            holder.execute("lock table t in access share mode")
            if release_after_one_timeout:
                _poll(watcher, MIGRATE_WAITING)
                _poll(watcher, MIGRATE_WAITING.replace("count(*) > 0", "count(*) = 0"))
            else:
                time.sleep(8)
            holder.rollback()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


LOCK_ENV = {"MIGRATION_LOCK_TIMEOUT_MS": "300", "MIGRATION_LOCK_RETRY_WAIT_SECONDS": "0.3", "MIGRATION_LOCK_RETRIES": "3"}


@pytest.mark.faults(scenario="lock taken after the pre-checks", expected="3 tries, exit 1, clean")
def test_lock_taken_after_the_check_retries_then_leaves_a_clean_database(migrate_bin, dbs, project):
    root = project({"operational": files(*BASE)})
    assert apply(dbs, root).returncode == 0
    root = project({"operational": files(*BASE, SLEEP, ALTER_T)})
    holder = _take_lock_later(dbs, release_after_one_timeout=False)
    result = apply(dbs, root, env=LOCK_ENV)
    holder.join()
    assert result.returncode == 1, result.output
    line = error_line(result)
    assert "202601010100_alter_t could not take its lock after 3 tries" in line
    assert "late-holder" in line and "left clean at 202601010050_sleep" in line
    assert len(events(result, "lock_retry")) == 2
    assert version(dbs) == "202601010050"


@pytest.mark.faults(scenario="lock released during the retries", expected="retry succeeds, exit 0")
def test_lock_released_during_the_retries_succeeds(migrate_bin, dbs, project):
    root = project({"operational": files(*BASE)})
    assert apply(dbs, root).returncode == 0
    root = project({"operational": files(*BASE, SLEEP, ALTER_T)})
    holder = _take_lock_later(dbs, release_after_one_timeout=True)
    result = apply(dbs, root, "--format", "json",
                   env={**LOCK_ENV, "MIGRATION_LOCK_RETRY_WAIT_SECONDS": "1", "MIGRATION_LOCK_RETRIES": "4"})
    holder.join()
    assert result.returncode == 0, result.output
    retries = len(events(result, "lock_retry"))
    assert retries >= 1
    # The result document: the attempts that gave up are `retried`, the last is `done`, none is left unfinished.
    (run,) = json.loads(result.stdout)["components"]
    attempts = [s["status"] for s in run["steps"] if s["id"] == ALTER_T[0]]
    assert attempts == ["retried"] * retries + ["done"]
    assert version(dbs) == "202601010100"
    assert dbs.server.psql(dbs.operational, "select count(*) from information_schema.columns where table_name='t' and column_name='w'") == "1"


@pytest.mark.faults(scenario="time window exceeded mid-step", expected="exit 5, clean, state reported")
def test_window_exceeded_stops_cleanly_with_the_state(migrate_bin, dbs, project):
    root = project({"operational": files(*BASE, ("202601010100_slow", "create table s(id int);\nselect pg_sleep(60);\n", "drop table s;\n"))})
    started = time.monotonic()
    result = apply(dbs, root, env={"MIGRATION_WINDOW_SECONDS": "2", "MIGRATION_WINDOW_GRACE_SECONDS": "1",
                                   "MIGRATION_PROGRESS_SECONDS": "0.5"})
    assert time.monotonic() - started < 30
    assert result.returncode == 5, result.output
    line = error_line(result)
    assert "time window of 2s exceeded" in line and "finished 202601010000_create_t" in line
    assert "interrupted 202601010100_slow (rolled back whole)" in line
    assert "database at version 202601010000_create_t" in line
    assert version(dbs) == "202601010000"  # clean, at the previous version
    assert dbs.server.psql(dbs.operational, "select to_regclass('s') is null") == "t"
    assert events(result, "guardrail_exceeded")
    progress = events(result, "migration_progress")  # off a terminal, progress goes to the log
    assert progress and progress[0]["version"] == "202601010100_slow" and "window_left_s" in progress[0]


DELETE_ROWS = ("202601010100_purge", "delete from t where id > 10;\n", "select 1;\n")


def test_row_loss_is_shown_and_flagged(migrate_bin, dbs, project):
    root = project({"operational": files(*BASE)})
    assert apply(dbs, root).returncode == 0
    root = project({"operational": files(*BASE, DELETE_ROWS)})
    result = apply(dbs, root)
    assert result.returncode == 0, result.output
    (post,) = events(result, "migration_post_checks")
    rows = next(c for c in post["checks"] if c["name"] == "row_counts")
    assert rows["status"] == "warn"
    delta = next(d for d in rows["deltas"] if d["table"] == "public.t")
    assert (delta["before"], delta["after"], delta["delta"]) == (50, 10, -40)


def test_row_loss_is_rendered_for_people(migrate_bin, dbs, project):
    root = project({"operational": files(*BASE)})
    assert apply(dbs, root).returncode == 0
    root = project({"operational": files(*BASE, DELETE_ROWS)})
    result = apply(dbs, root, "--log-format", "text")
    assert result.returncode == 0, result.output
    line = next(l for l in result.stdout.splitlines() if "public.t" in l)
    assert "50" in line and "10" in line and "-40" in line and "LOST ROWS" in line


@pytest.mark.faults(scenario="rows deleted with --fail-on-row-loss", expected="exit 1 after the post-check")
def test_fail_on_row_loss_exits_1(migrate_bin, dbs, project):
    root = project({"operational": files(*BASE)})
    assert apply(dbs, root).returncode == 0
    root = project({"operational": files(*BASE, DELETE_ROWS)})
    result = apply(dbs, root, "--fail-on-row-loss")
    assert result.returncode == 1
    assert "post-check failed: row_counts" in error_line(result)


@pytest.mark.parametrize(
    ("env", "dry_run", "code", "message"),
    [
        ({"MIGRATION_ENVIRONMENT": "production"}, False, 4, "production changes need a second engineer's approval"),
        ({"MIGRATION_ENVIRONMENT": "production", "MIGRATION_AUTHOR": "Alice@x", "MIGRATION_APPROVED_BY": "alice@X"},
         False, 4, "the approver (alice@X) is the author"),
        ({"MIGRATION_ENVIRONMENT": "production", "MIGRATION_AUTHOR": "alice@x", "MIGRATION_APPROVED_BY": "bob@x"},
         False, 0, None),
        ({"MIGRATION_ENVIRONMENT": "production"}, True, 0, None),
        ({"MIGRATION_ENVIRONMENT": "staging"}, False, 0, None),
    ],
)
def test_approval_matrix(migrate_bin, dbs, env, dry_run, code, message):
    args = ["--dry-run"] if dry_run else []
    result = run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", *args, env=env)
    assert result.returncode == code, result.output
    if message:
        assert message in error_line(result)
        assert events(result, "approval_denied")
        assert dbs.server.psql(dbs.operational, "select to_regclass('schema_migrations') is null") == "t"
    elif env.get("MIGRATION_APPROVED_BY"):
        assert events(result, "approval_granted")


def test_approvers_file_is_enforced(migrate_bin, dbs, project, tmp_path):
    root = project({"operational": files(*BASE)})
    (root / "configs").mkdir()
    (root / "configs" / "approvers.yml").write_text("approvers:\n  - carol@x\n")
    env = {"MIGRATION_ENVIRONMENT": "production", "MIGRATION_AUTHOR": "alice@x", "MIGRATION_APPROVED_BY": "bob@x"}
    result = apply(dbs, root, env=env)
    assert result.returncode == 4 and "bob@x is not listed in configs/approvers.yml" in error_line(result)
    assert apply(dbs, root, env={**env, "MIGRATION_APPROVED_BY": "Carol@x"}).returncode == 0


def audit_rows(dbs):
    out = dbs.server.psql(dbs.operational, "select coalesce(json_agg(a order by started_at), '[]') from migration_meta.migration_audit a")
    return json.loads(out)


def test_audit_rows_for_success_and_failure_none_for_dry_run_or_refusal(migrate_bin, dbs, project):
    root = project({"operational": files(*BASE)})
    assert apply(dbs, root, "--dry-run").returncode == 0
    assert apply(dbs, root, env={"MIGRATION_ENVIRONMENT": "production"}).returncode == 4
    assert dbs.server.psql(dbs.operational, "select to_regclass('migration_meta.migration_audit') is null") == "t"

    ok = apply(dbs, root, env={"MIGRATION_AUTHOR": "alice@x", "MIGRATION_APPROVED_BY": "bob@x"})
    assert ok.returncode == 0
    root = project({"operational": files(*BASE, ("202601010100_bad", "select * from nonexist;\n", "select 1;\n"))})
    assert apply(dbs, root).returncode == 1
    first, second = audit_rows(dbs)
    assert first["outcome"] == "ok" and first["direction"] == "up" and first["to_version"] == "202601010000_create_t"
    assert first["author"] == "alice@x" and first["approver"] == "bob@x" and first["finished_at"]
    (step,) = first["steps"]
    assert step["id"] == "202601010000_create_t" and len(step["sha256"]) == 64 and step["duration_ms"] >= 0
    assert first["migrate_version"] == "4.19.1" and first["host"]
    assert second["outcome"] == "failed" and "nonexist" in second["error"] and second["steps"] == []


@pytest.mark.faults(scenario="applied file edited", expected="drift; exit 3 in production")
def test_edited_applied_file_is_drift(migrate_bin, dbs, project):
    root = project({"operational": files(*BASE)})
    assert apply(dbs, root).returncode == 0
    (root / "db/migrations/operational/202601010000_create_t.up.sql").write_text("create table t(id bigint);\n")
    status = run_cli("status", "-c", "operational", "--env", str(dbs.env_file), "--format", "json", root=root)
    drift = json.loads(status.stdout)["components"][0]["drift"]
    assert any(d["kind"] == "edited" and d["migration"] == "202601010000_create_t"
               and "202601010000_create_t was edited after it was applied" in d["message"] for d in drift)
    assert json.loads(status.stdout)["components"][0]["state"] == "drift"
    prod = apply(dbs, root, env={"MIGRATION_ENVIRONMENT": "production", "MIGRATION_AUTHOR": "a", "MIGRATION_APPROVED_BY": "b"})
    assert prod.returncode == 3 and "pre-check failed: checksums" in error_line(prod)


@pytest.mark.faults(scenario="file below the applied version", expected="drift; exit 3")
def test_out_of_order_file_is_drift_and_blocks_apply(migrate_bin, dbs, project):
    root = project({"operational": files(*BASE, ALTER_T)})
    assert apply(dbs, root).returncode == 0
    root = project({"operational": files(*BASE, ("202601010050_late", "create table late(id int);\n", "drop table late;\n"), ALTER_T)})
    status = run_cli("status", "-c", "operational", "--env", str(dbs.env_file), "--format", "json", root=root)
    drift = json.loads(status.stdout)["components"][0]["drift"]
    assert any(d["kind"] == "skipped" and "202601010050_late sorts below the applied version but was never applied"
               in d["message"] for d in drift)
    result = apply(dbs, root)
    assert result.returncode == 3 and "pre-check failed: files" in error_line(result)


def test_dry_run_writes_approval_evidence(migrate_bin, dbs, project, tmp_path):
    root = project({"operational": files(*BASE, ALTER_T)})
    evidence = tmp_path / "evidence.md"
    result = apply(dbs, root, "--dry-run", "--evidence", str(evidence), env={"MIGRATION_ENVIRONMENT": "production"})
    assert result.returncode == 0, result.output
    text = evidence.read_text()
    import hashlib

    up = root / "db/migrations/operational/202601010100_alter_t.up.sql"
    assert "Environment: `production`" in text and "Target version: `202601010100_alter_t`" in text
    assert hashlib.sha256(up.read_bytes()).hexdigest() in text
    assert "| blocking_locks | ok |" in text and "| connectivity | ok |" in text
    assert dbs.server.psql(dbs.operational, "select to_regclass('schema_migrations') is null") == "t"
    refused = apply(dbs, root, "--evidence", str(evidence))
    assert refused.returncode == 2 and "--evidence, --rehearse and --scratch-url go with --dry-run" in error_line(refused)


def test_dry_run_rehearsal_catches_what_only_a_real_server_sees(migrate_bin, dbs, project):
    bad_type = ("202601010200_retype", "alter table t alter column v type kilograms;\n", "select 1;\n")
    root = project({"operational": files(*BASE)})
    assert apply(dbs, root).returncode == 0
    before = dbs.server.dump_schema(dbs.operational)
    scratch = ["--dry-run", "--rehearse"]
    on = {"MIGRATION_SCRATCH_URL": dbs.server.url("postgres")}  # a password: never on the command line
    ok = apply(dbs, project({"operational": files(*BASE, ALTER_T)}), *scratch, "--log-format", "text", env=on)
    assert ok.returncode == 0, ok.output
    assert "202601010100_alter_t" in ok.stdout and "rehears" in ok.stdout.lower()
    bad = apply(dbs, project({"operational": files(*BASE, ALTER_T, bad_type)}), *scratch, env=on)
    assert bad.returncode == 1, bad.output
    assert "kilograms" in error_line(bad)
    assert dbs.server.dump_schema(dbs.operational) == before  # the target is only read


def test_drop_index_is_blocked_by_a_lock_on_its_table(migrate_bin, dbs, project, hold):
    with_index = ("202601010100_index_t", "create index t_v_idx on t (v);\n", "drop index t_v_idx;\n")
    drop_index = ("202601010200_drop_index", "drop index t_v_idx;\n", "create index t_v_idx on t (v);\n")
    root = project({"operational": files(*BASE, with_index)})
    assert apply(dbs, root).returncode == 0
    holder = hold()
    holder.execute("begin")
    holder.execute("select * from t limit 1")  # the file names only the index; the lock is on its table
    result = apply(dbs, project({"operational": files(*BASE, with_index, drop_index)}))
    assert result.returncode == 3
    assert "pre-check failed: blocking_locks:" in error_line(result) and f"pid {holder.info.backend_pid}" in error_line(result)
    holder.execute("rollback")
