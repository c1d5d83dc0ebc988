"""What the wrapper says about a database after a stopped, killed or raced run is what the database holds: a step is
called committed or rolled back only with proof, no data step runs twice, and no run goes past its plan."""

import json
import os
import random
import re
import signal
import stat
import subprocess
import time

import psycopg
import pytest

from migrate_wrapper.postgres.locks import advisory_lock_key
from migrate_wrapper.config.dburl import DatabaseUrl
from tests.conftest import ROOT, error_line, migration_files as files, run_cli, version
from tests.faults.runs import finish, migrate_children, spawn, wait_for_sleep

pytestmark = [pytest.mark.integration]

A = ("202601010000_a", "create table a(id int);\n", "drop table a;\n")
SEED = ("202601010100_seed", "insert into a values (1),(2),(3);\nselect pg_sleep(2);\n", "delete from a;\n")


def rows(dbs) -> int:
    return int(dbs.server.psql(dbs.operational, "select count(*) from a"))


def cli(dbs, root, *args, env=None):
    return run_cli(*args, "-c", "operational", "--env", str(dbs.env_file), root=root, env=env)


def repair(dbs, root, *args):
    return cli(dbs, root, "repair", "--yes", *args, env={"MIGRATION_SCRATCH_URL": dbs.server.url("postgres")})


def assert_report_is_the_database(dbs, line):
    """The state an error line ends with is the state in the database."""
    found = re.findall(r"database (?:now )?at version ([^\s;]+)( \(dirty\))?(?:;|$)", line)
    assert found, line
    label, dirty = found[-1][0], bool(found[-1][1])
    state = version(dbs)
    expected = "" if label == "none" else label.split("_", 1)[0] + (" dirty" if dirty else "")
    assert state == expected, (line, state)


def audit(dbs, sql):
    return dbs.server.psql(dbs.operational, f"select {sql} from migration_meta.migration_audit order by started_at")


@pytest.mark.faults(scenario="window stop while the clean mark waits for a reader",
                    expected="seed proved committed, never re-run")
def test_a_window_stop_after_the_body_committed_is_never_called_rolled_back(migrate_bin, dbs, project, fault):
    root = project({"operational": files(A, SEED)})
    env = {"MIGRATION_WINDOW_SECONDS": "9", "MIGRATION_WINDOW_GRACE_SECONDS": "2", "MIGRATION_LOCK_TIMEOUT_MS": "30000"}
    proc = spawn(dbs, root, "-c", "operational", env=env)
    wait_for_sleep(dbs)
    with psycopg.connect(dbs.server.url(dbs.operational)) as reader:  # a backup's long read of the version table
        reader.execute("select count(*) from schema_migrations")
        code, _, err = finish(proc, timeout=90)
        fault.observed(f"exit {code}: {error_line(err)}")
        reader.rollback()
    line = error_line(err)
    assert code == 5
    assert "rolled back" not in line
    assert "interrupted 202601010100_seed (committed): its body had returned" in line
    assert_report_is_the_database(dbs, line)
    assert rows(dbs) == 3
    if version(dbs).endswith("dirty"):  # the reader still held the table when the mark was tried: repair does it
        result = repair(dbs, root)
        assert result.returncode == 0, result.output
        assert "(audit ledger)" in result.output
    assert version(dbs) == "202601010100"
    again = cli(dbs, root, "apply", "--yes")
    assert again.returncode == 0, again.output
    assert rows(dbs) == 3


@pytest.mark.faults(scenario="golang-migrate stopped (SIGSTOP) across the deadline",
                    expected="committed step proved and marked, exit 5")
def test_a_stopped_golang_migrate_whose_step_committed_is_reported_committed(migrate_bin, dbs, project, fault):
    b = ("202601010100_b", "create table b(id int);\nselect pg_sleep(1);\n", "drop table b;\n")
    root = project({"operational": files(A, b)})
    proc = spawn(dbs, root, "-c", "operational", env={"MIGRATION_WINDOW_SECONDS": "4",
                                                      "MIGRATION_WINDOW_GRACE_SECONDS": "1"})
    wait_for_sleep(dbs)
    time.sleep(0.3)  # long enough for the witness to see the step's transaction
    for pid in migrate_children(proc):
        os.kill(pid, signal.SIGSTOP)
    code, _, err = finish(proc, timeout=60)
    line = error_line(err)
    fault.observed(f"exit {code}: {line}")
    assert code == 5
    assert "interrupted 202601010100_b (committed)" in line and "committed (pg_xact_status)" in line
    assert_report_is_the_database(dbs, line)
    assert version(dbs) == "202601010100"
    assert cli(dbs, root, "apply", "--yes").returncode == 0  # nothing left to do: no "relation already exists"


@pytest.mark.faults(scenario="kill -9 of golang-migrate in a data-only step",
                    expected="proved rolled back (dead client abandoned); rows once")
def test_kill_9_of_golang_migrate_in_a_data_step(migrate_bin, dbs, project, fault):
    root = project({"operational": files(A, SEED)})
    proc = spawn(dbs, root, "-c", "operational")
    wait_for_sleep(dbs)
    time.sleep(1.2)
    for pid in migrate_children(proc):
        os.kill(pid, signal.SIGKILL)
    code, _, err = finish(proc)
    line = error_line(err)
    fault.observed(f"exit {code}: {line}")
    assert code == 1
    assert "202601010100_seed (rolled back whole): its transaction" in line
    assert_report_is_the_database(dbs, line)
    assert rows(dbs) == 0
    assert cli(dbs, root, "apply", "--yes").returncode == 0
    assert rows(dbs) == 3


@pytest.mark.faults(scenario="kill -9 of the wrapper in a data-only step, then repair",
                    expected="repair judges the ledger's transaction; rows once")
@pytest.mark.parametrize("dead_client_check", ["on", "off"])
def test_repair_after_the_wrapper_was_killed_in_a_data_step(migrate_bin, dbs, project, fault, dead_client_check):
    root = project({"operational": files(A, SEED)})
    if dead_client_check == "off":  # as on PostgreSQL < 14: the server finishes and commits the dead client's step
        dbs.env_file.write_text(dbs.env_file.read_text().replace("sslmode=disable",
                                                                 "sslmode=disable&client_connection_check_interval=0"))
    proc = spawn(dbs, root, "-c", "operational")
    wait_for_sleep(dbs)
    time.sleep(1.2)
    proc.kill()
    proc.communicate(timeout=30)
    result = repair(dbs, root)
    fault.observed(f"exit {result.returncode}; now {version(dbs)}, {rows(dbs)} rows")
    assert result.returncode == 0, result.output
    assert "(audit ledger)" in result.output
    if dead_client_check == "off":
        assert rows(dbs) == 3 and version(dbs) == "202601010100"
    else:
        assert rows(dbs) == 0 and version(dbs) == "202601010000"
    assert cli(dbs, root, "apply", "--yes").returncode == 0
    assert rows(dbs) == 3
    decided = audit(dbs, "evidence->>'decided_by'").splitlines()[-1]
    assert decided == "ledger"


@pytest.mark.faults(scenario="kill -9 loop over a data-only step", expected="no row ever twice; every report true")
def test_kill_9_loop_never_runs_a_data_step_twice(migrate_bin, dbs, project, fault):
    root = project({"operational": files(A, SEED)})
    rng = random.Random(1234)
    seen = []
    for i in range(6):
        proc = spawn(dbs, root, "-c", "operational")
        time.sleep(rng.uniform(0.3, 2.6))
        victims = migrate_children(proc) if i % 2 == 0 else []
        if victims:  # golang-migrate dies; the wrapper lives to judge the step
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            code, _, err = finish(proc)
            if code != 0:
                assert_report_is_the_database(dbs, error_line(err))
        else:  # the wrapper dies (golang-migrate with it): repair judges from the ledger
            proc.kill()
            proc.communicate(timeout=30)
        if version(dbs).endswith("dirty"):
            result = repair(dbs, root)
            if result.returncode != 0:  # no proof: the operator looks at the data and decides
                assert "--assume" in result.output, result.output
                result = repair(dbs, root, "--assume", "committed" if rows(dbs) == 3 else "rolled-back")
            assert result.returncode == 0, result.output
        final = cli(dbs, root, "apply", "--yes")
        assert final.returncode == 0, final.output
        seen.append(rows(dbs))
        assert rows(dbs) == 3, seen
        assert cli(dbs, root, "rollback", "--version", A[0], "--yes").returncode == 0
    fault.observed(f"rows after each round: {seen}")


TEN = [(f"2026010100{i:02d}_t{i}", f"create table t{i}(id int);\n" + ("select pg_sleep(1);\n" if i == 6 else ""),
        f"drop table t{i};\n") for i in range(1, 11)]


@pytest.mark.faults(scenario="apply and rollback started together",
                    expected="serialised: never both at once, none past its plan")
@pytest.mark.parametrize("gap", [0.0, 0.3])
def test_an_apply_and_a_rollback_never_run_at_once_nor_past_their_plans(migrate_bin, dbs, project, fault, gap):
    root = project({"operational": files(*TEN[:5])})
    assert cli(dbs, root, "apply", "--yes").returncode == 0
    root = project({"operational": files(*TEN)})
    apply = spawn(dbs, root, "-c", "operational")
    time.sleep(gap)
    rollback = spawn(dbs, root, "-c", "operational", "--version", TEN[0][0], command="rollback")
    (a_code, _, a_err), (r_code, _, r_err) = finish(apply), finish(rollback)
    fault.observed(f"apply exit {a_code}, rollback exit {r_code}")
    assert {a_code, r_code} <= {0, 3} and 0 in (a_code, r_code), (a_err[-400:], r_err[-400:])
    for code, err in ((a_code, a_err), (r_code, r_err)):
        if code == 3:  # it overlapped the other, which held the run lock: it did nothing
            assert "another migrate-wrapper run is in progress" in error_line(err)
    runs = json.loads(dbs.server.psql(dbs.operational, """
        select json_agg(json_build_array(direction, from_version, to_version, steps, started_at, finished_at)
                        order by started_at) from migration_meta.migration_audit"""))[1:]  # after the set-up's
    ids = [t[0] for t in TEN]
    for (direction, start, end, steps, _, _) in runs:  # each ran exactly the plan it printed, read under the lock
        lo = ids.index(start) + 1 if start else 0
        hi = ids.index(end) + 1 if end else 0
        planned = ids[lo:hi] if direction == "up" else list(reversed(ids[hi:lo]))
        assert [s["id"] for s in steps] == planned, (direction, start, end, steps)
    for earlier, later in zip(runs, runs[1:]):
        assert earlier[5] <= later[4], runs  # never at the same time
    last_end = runs[-1][2]
    assert version(dbs) == (last_end.split("_")[0] if last_end else "")


def _shim(tmp_path, body: str) -> str:
    """A golang-migrate that does something first, as another tool or operator might while the wrapper starts."""
    path = tmp_path / "migrate"
    path.write_text("#!/usr/bin/env bash\nreal=" + str(ROOT / ".tools/bin/migrate") + "\n"
                    'url=""; moving=""; prev=""\n'
                    'for a in "$@"; do [ "$prev" = "-database" ] && url="$a"; '
                    'case "$a" in up|down) moving=1;; esac; prev="$a"; done\n'
                    + body + '\nexec "$real" "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.mark.faults(scenario="database moved back between plan and golang-migrate",
                    expected="unplanned step cancelled, exit 1 naming it")
def test_a_step_outside_the_plan_is_stopped_and_named(migrate_bin, dbs, project, tmp_path, fault):
    t1 = ("202601010100_t1", "create table t1(id int);\n", "drop table t1;\n")
    t2 = ("202601010200_t2", "create table t2(id int);\nselect pg_sleep(2);\n", "drop table t2;\n")
    t3 = ("202601010300_t3", "create table t3(id int);\n", "drop table t3;\n")
    t4 = ("202601010400_t4", "create table t4(id int);\n", "drop table t4;\n")
    root = project({"operational": files(t1, t2)})
    assert cli(dbs, root, "apply", "--yes").returncode == 0
    root = project({"operational": files(t1, t2, t3, t4)})
    flag = tmp_path / "moved"
    shim = _shim(tmp_path, f'if [ -n "$moving" ] && [ ! -e {flag} ]; then touch {flag}; '
                           f'"$real" -path "{root}/db/migrations/operational" -database "$url" down 1 >/dev/null 2>&1; fi')
    result = cli(dbs, root, "apply", "--yes", env={"MIGRATE_BIN": shim})
    line = error_line(result.stderr)
    fault.observed(f"exit {result.returncode}: {line}")
    assert result.returncode == 1
    assert "golang-migrate ran 202601010200_t2 (up), which this run did not plan" in line
    assert_report_is_the_database(dbs, line)
    for table in ("t3", "t4"):  # the planned steps never ran behind the unplanned one
        assert dbs.server.psql(dbs.operational, f"select to_regclass('{table}') is null") == "t"


@pytest.mark.faults(scenario="golang-migrate's lock taken just before it starts", expected="exit 3, no failed row")
def test_a_lost_golang_migrate_lock_is_exit_3_without_a_failed_row(migrate_bin, dbs, project, tmp_path, fault):
    root = project({"operational": files(A)})
    url = DatabaseUrl.parse(dbs.url("operational"), setting="DB_URL")
    key = advisory_lock_key(url, "public", "schema_migrations")
    locker = dbs.server.url(dbs.operational)
    shim = _shim(tmp_path, f'if [ -n "$moving" ]; then psql -X -q "{locker}" -c "select pg_advisory_lock({key})" '
                           '-c "select pg_sleep(4)" >/dev/null 2>&1 & sleep 1; fi')
    result = cli(dbs, root, "apply", "--yes", env={"MIGRATE_BIN": shim, "MIGRATION_LOCK_TIMEOUT_MS": "500"})
    line = error_line(result.stderr)
    fault.observed(f"exit {result.returncode}: {line}")
    assert result.returncode == 3
    assert "pre-check failed: migration_lock" in line
    assert "failed" not in audit(dbs, "outcome").splitlines()


@pytest.mark.faults(scenario="status during a healthy run", expected="says a run is in progress, not only dirty")
def test_status_during_a_run_names_the_run(migrate_bin, dbs, project, fault):
    slow = ("202601010100_slow", "create table slow(id int);\nselect pg_sleep(2);\n", "drop table slow;\n")
    root = project({"operational": files(A, slow)})
    proc = spawn(dbs, root, "-c", "operational")
    wait_for_sleep(dbs)
    text = cli(dbs, root, "status", "--log-format", "text")
    document = json.loads(cli(dbs, root, "status", "--format", "json").stdout)["components"][0]
    finish(proc)
    fault.observed(next(l for l in text.stdout.splitlines() if l.startswith("RUNNING")))
    assert text.returncode == 0
    assert "RUNNING:   a migrate-wrapper run is in progress" in text.stdout and "do not repair" in text.stdout
    assert "DIRTY" not in text.stdout
    assert document["dirty"] is True and "in progress" in document["running"]
    after = json.loads(cli(dbs, root, "status", "--format", "json").stdout)["components"][0]
    assert after["running"] is None and after["dirty"] is False


@pytest.mark.faults(scenario="a CALL that commits, interrupted", expected="never called rolled back; left dirty")
def test_a_procedure_that_commits_is_not_called_rolled_back(migrate_bin, dbs, project, fault):
    proc_sql = ("create procedure fill() language plpgsql as $$ begin insert into a values (1); commit; "
                "perform pg_sleep(3); insert into a values (2); end $$;\n")
    root = project({"operational": files((A[0], A[1] + proc_sql, "drop procedure fill();\n" + A[2]),
                                         ("202601010100_fill", "call fill();\n", "delete from a;\n"))})
    proc = spawn(dbs, root, "-c", "operational")
    wait_for_sleep(dbs, pattern="call fill%")
    time.sleep(0.3)  # past the procedure's first COMMIT
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # the second cancels the running statement
    code, _, err = finish(proc)
    line = error_line(err)
    fault.observed(f"exit {code}: {line}")
    assert code == 130
    assert "rolled back" not in line and "unknown whether it committed" in line and "CALL" in line
    assert version(dbs) == "202601010100 dirty"
    assert rows(dbs) == 1  # the procedure's own COMMIT kept its first row


@pytest.mark.faults(scenario="data-only step left dirty by raw golang-migrate", expected="repair refuses; --assume")
def test_repair_takes_the_operators_word_only_where_nothing_proves_it(migrate_bin, dbs, project, fault):
    root = project({"operational": files(A, SEED)})
    folder = root / "db/migrations/operational"
    url = dbs.server.url(dbs.operational) + "&client_connection_check_interval=0"
    raw = subprocess.Popen([str(migrate_bin), "-path", str(folder), "-database", url, "up"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.2)  # inside the seed's 2 s
    raw.kill()
    raw.wait()
    time.sleep(1.5)  # the server finishes the dead client's statement and commits it
    assert version(dbs) == "202601010100 dirty" and rows(dbs) == 3
    refused = repair(dbs, root)
    fault.observed(f"exit {refused.returncode}: {error_line(refused.stderr)}")
    assert refused.returncode == 1
    assert "changes data only" in error_line(refused.stderr) and "--assume committed" in error_line(refused.stderr)
    assert version(dbs) == "202601010100 dirty"  # untouched
    accepted = repair(dbs, root, "--assume", "committed")
    assert accepted.returncode == 0, accepted.output
    assert version(dbs) == "202601010100"
    assert audit(dbs, "evidence->>'decided_by' || ':' || (evidence->>'assume')").splitlines()[-1] == \
        "operator:committed"
    assert cli(dbs, root, "apply", "--yes").returncode == 0 and rows(dbs) == 3


def test_an_assumption_against_the_evidence_is_refused(migrate_bin, dbs, project):
    root = project({"operational": files(A, ("202601010100_b", "insert into a values (1);\nselect * from nonexist;\n",
                                             "delete from a;\n"))})
    assert cli(dbs, root, "apply", "--yes").returncode == 1  # the body failed: proved rolled back, in the ledger
    result = repair(dbs, root, "--assume", "committed")
    assert result.returncode == 2
    assert "--assume committed contradicts the evidence" in error_line(result.stderr)
    assert version(dbs) == "202601010100 dirty"
