"""Interruptions, kills, restarts and races: every one ends clean or precisely reported — never a silent half-state,
a hang, or a run reported as a success."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, child_env, error_line, migration_files as files, run_cli, version
from tests.faults.runs import finish, spawn, wait_for_sleep

pytestmark = [pytest.mark.integration]

CREATE_T = ("202601010000_create_t", "create table t(id int);\n", "drop table t;\n")
SLOW = ("202601010100_slow", "create table slow(id int);\nselect pg_sleep(3);\n", "drop table slow;\n")
AFTER = ("202601010200_after", "create table after_slow(id int);\n", "drop table after_slow;\n")


@pytest.mark.faults(scenario="Ctrl-C during a step", expected="step finishes, exit 130, clean")
def test_ctrl_c_finishes_the_running_step_and_reports(migrate_bin, dbs, project, fault):
    root = project({"operational": files(CREATE_T, SLOW, AFTER)})
    proc = spawn(dbs, root, "-c", "operational")
    wait_for_sleep(dbs)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    fault.observed(f"exit {code}: {error_line(err)}")
    assert code == 130
    assert "interrupted: finished 202601010000_create_t, 202601010100_slow; stopped before 202601010200_after" in err
    assert error_line(err).endswith("; the database is clean: fix the cause, then run apply (or the rollback) again")
    assert version(dbs) == "202601010100"
    assert dbs.server.psql(dbs.operational, "select to_regclass('after_slow') is null") == "t"
    # The Ctrl-C was acknowledged at once, before the running step ended and the run reported its state.
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    stopping = [i for i, r in enumerate(records) if r["event"] == "migration_stopping"]
    assert [records[i]["msg"] for i in stopping] == ["stopping after the running step; Ctrl-C again to cancel it"]
    (slow_done,) = [i for i, r in enumerate(records)
                    if r["event"] == "migration_step_finish" and r["version"] == "202601010100_slow"]
    assert stopping[0] < slow_done  # said while the step still ran, not after it


@pytest.mark.faults(scenario="SIGTERM during a step", expected="like Ctrl-C: exit 130, clean")
def test_sigterm_behaves_like_ctrl_c(migrate_bin, dbs, project, fault):
    root = project({"operational": files(CREATE_T, SLOW, AFTER)})
    proc = spawn(dbs, root, "-c", "operational")
    wait_for_sleep(dbs)
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    fault.observed(f"exit {code}: {error_line(err)}")
    assert code == 130 and version(dbs) == "202601010100"


@pytest.mark.faults(scenario="two Ctrl-C during a step", expected="statement cancelled, rolled back, exit 130")
def test_second_ctrl_c_cancels_the_statement(migrate_bin, dbs, project, fault):
    root = project({"operational": files(CREATE_T, SLOW, AFTER)})
    proc = spawn(dbs, root, "-c", "operational")
    wait_for_sleep(dbs)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    fault.observed(f"exit {code}: {error_line(err)}")
    assert code == 130
    assert time.monotonic() - started < 2.8  # did not wait for the 3 s sleep to end
    assert "interrupted 202601010100_slow (rolled back whole)" in err
    assert version(dbs) == "202601010000"
    assert dbs.server.psql(dbs.operational, "select to_regclass('slow') is null") == "t"


@pytest.mark.faults(scenario="wrapper killed with -9", expected="migrate dies too; next run explains")
def test_kill_9_takes_golang_migrate_along_and_the_next_run_explains(migrate_bin, dbs, project, fault):
    root = project({"operational": files(CREATE_T, SLOW, AFTER)})
    proc = spawn(dbs, root, "-c", "operational")
    wait_for_sleep(dbs)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert children, "golang-migrate child not found"
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in children):
        time.sleep(0.05)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()
             and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]]
    assert not alive, "golang-migrate outlived the wrapper"
    time.sleep(3.5)  # the server finishes the sleep it was running, then notices the client is gone
    again = run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", root=root)
    fault.observed(f"exit {again.returncode}: {error_line(again.stderr)}")
    assert again.returncode == 3
    line = error_line(again.stderr)
    assert "pre-check failed: dirty: database is dirty at version 202601010100" in line
    assert "never finished (killed?)" in line


@pytest.mark.faults(scenario="PostgreSQL restarted mid-apply", expected="exit 1 with the state, never success")
def test_server_restart_mid_apply_is_reported_not_success(migrate_bin, project, tmp_path, fault):
    script = ROOT / "scripts/dev/local-postgres.sh"
    env = {**os.environ, "LOCAL_PG_DIR": str(tmp_path / "pg"), "MIGRATE_ENV_FILE": str(tmp_path / "migrate.env")}
    subprocess.run([str(script), "start"], env=env, check=True, capture_output=True, timeout=180, stdin=subprocess.DEVNULL)
    try:
        root = project({"operational": files(CREATE_T, SLOW, AFTER)})
        env_file = tmp_path / "migrate.env"
        proc = subprocess.Popen(
            [sys.executable, "-m", "migrate_wrapper", "apply", "-c", "operational", "--env", str(env_file), "--yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env(root=root),
        )
        url = [l.split("=", 1)[1] for l in env_file.read_text().splitlines() if l.startswith("DB_URL=")][0]
        deadline = time.monotonic() + 30
        with psycopg.connect(url, autocommit=True) as conn:
            while not conn.execute("select count(*) > 0 from pg_stat_activity where query like '%pg_sleep%' "
                                   "and application_name = 'db-migrate-cli'").fetchone()[0]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        subprocess.run([str(script), "stop"], env=env, check=True, capture_output=True, timeout=60)
        subprocess.run([str(script), "start"], env=env, check=True, capture_output=True, timeout=120)
        out, err = proc.communicate(timeout=60)
        fault.observed(f"exit {proc.returncode}: {error_line(err)}")
        assert "Traceback" not in out + err
        assert proc.returncode == 1
        assert "202601010100_slow failed" in error_line(err) or "state is unknown" in error_line(err)
        assert '"outcome": "ok"' not in err
    finally:
        subprocess.run([str(script), "destroy"], env=env, capture_output=True, timeout=120)


@pytest.mark.faults(scenario="server down", expected="exit 3 connectivity at once")
def test_server_down_is_a_quick_connectivity_failure(tmp_path, fault):
    env_file = tmp_path / "migrate.env"
    env_file.write_text("DB_URL=postgres://u:Canary-Pw-x@127.0.0.1:1/db?sslmode=disable\n")
    started = time.monotonic()
    result = run_cli("apply", "-c", "operational", "--env", str(env_file), "--yes")
    fault.observed(f"exit {result.returncode}: {error_line(result.stderr)}")
    assert result.returncode == 3 and time.monotonic() - started < 10
    assert "pre-check failed: connectivity: cannot connect to postgres://u:***@127.0.0.1:1/db" in result.stderr


@pytest.mark.faults(scenario="golang-migrate killed externally", expected="exit 1, the step's fate proved")
def test_golang_migrate_killed_externally(migrate_bin, dbs, project, fault):
    root = project({"operational": files(CREATE_T, SLOW, AFTER)})
    proc = spawn(dbs, root, "-c", "operational")
    wait_for_sleep(dbs)
    for pid in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    code, _, err = finish(proc)
    fault.observed(f"exit {code}: {error_line(err)}")
    assert code == 1
    # The server abandons the dead client's statement (client_connection_check_interval): its transaction aborted,
    # which pg_xact_status proves, so the previous version is marked clean — and the database agrees.
    assert "202601010100_slow (rolled back whole): its transaction" in error_line(err)
    assert "aborted (pg_xact_status)" in error_line(err)
    assert "database now at version 202601010000_create_t" in error_line(err)
    assert version(dbs) == "202601010000"
    assert dbs.server.psql(dbs.operational, "select to_regclass('slow') is null") == "t"


@pytest.mark.faults(scenario="statement timeout", expected="exit 1 naming the step")
def test_statement_timeout_is_a_clear_failure(migrate_bin, dbs, project, fault):
    root = project({"operational": files(CREATE_T, SLOW)})
    result = run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", root=root,
                     env={"MIGRATION_STATEMENT_TIMEOUT_MS": "500"})
    fault.observed(f"exit {result.returncode}: {error_line(result.stderr)}")
    assert result.returncode == 1
    assert "202601010100_slow failed" in error_line(result.stderr) and "statement timeout" in error_line(result.stderr)


@pytest.mark.faults(scenario="N applies of one component at once", expected="one applies, others exit 3")
@pytest.mark.parametrize("n", [2, 5, 10])
def test_concurrent_applies_one_wins(migrate_bin, dbs, project, fault, n):
    slowish = ("202601010100_slowish", "create table slowish(id int);\nselect pg_sleep(1);\n", "drop table slowish;\n")
    root = project({"operational": files(CREATE_T, slowish, AFTER)})
    procs = [spawn(dbs, root, "-c", "operational") for _ in range(n)]
    results = [finish(p, timeout=90) for p in procs]
    codes = sorted(code for code, _, _ in results)
    fault.observed(f"exit codes {codes}")
    assert codes == [0] + [3] * (n - 1), [(c, error_line(e) if c else "") for c, _, e in results]
    for code, _, err in results:
        if code == 3:
            assert "pre-check failed: migration_lock" in error_line(err)
    steps = json.loads(dbs.server.psql(
        dbs.operational,
        "select coalesce(json_agg(s->>'id'), '[]') from migration_meta.migration_audit, jsonb_array_elements(steps) s"))
    assert sorted(steps) == ["202601010000_create_t", "202601010100_slowish", "202601010200_after"]  # each once
    outcomes = dbs.server.psql(dbs.operational, "select string_agg(outcome, ',') from migration_meta.migration_audit")
    assert outcomes == "ok"  # the losers never started changing anything: no row, and never a 'failed' one
    assert version(dbs) == "202601010200"


@pytest.mark.faults(scenario="two components side by side", expected="both apply")
def test_different_components_run_side_by_side(migrate_bin, dbs, fault):
    procs = [spawn(dbs, ROOT, "-c", c) for c in ("operational", "analytics")]
    codes = [finish(p)[0] for p in procs]
    fault.observed(f"exit codes {codes}")
    assert codes == [0, 0]
