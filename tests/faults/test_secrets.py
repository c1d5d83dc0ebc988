"""Secrets reach no command line, log line, span or error: not the database password (golang-migrate gets it through
its environment), not another session's SQL literals, not a value expanded from the environment."""

import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import CANARY_FORMS, CANARY_PASSWORD, ROOT, child_env, error_line, migration_files as files, run_cli
from tests.faults.runs import finish, spawn, wait_for_sleep
from tests.telemetry.receivers import HttpReceiver

pytestmark = [pytest.mark.integration]

A = ("202601010000_a", "create table a(id int);\n", "drop table a;\n")
B_FAILS = ("202601010300_b", "create table b(id int);\nselect * from nonexist;\n", "drop table b;\n")
SLOW = ("202601010200_slow", "create table slow(id int);\nselect pg_sleep(2);\n", "drop table slow;\n")


def cli(dbs, root, *args, env=None):
    return run_cli(*args, "--env", str(dbs.env_file), root=root, env=env)


def argv_recorder(tmp_path) -> tuple[str, Path]:
    """A golang-migrate that writes down each command line it was given, then is the real one."""
    log = tmp_path / "argv.log"
    shim = tmp_path / "migrate"
    shim.write_text(f'#!/usr/bin/env bash\nprintf "%s " "$@" >> {log}\nprintf "\\n" >> {log}\n'
                    f'exec {ROOT / ".tools/bin/migrate"} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return str(shim), log


@pytest.mark.faults(scenario="password on golang-migrate's command line", expected="never, in any command")
def test_no_golang_migrate_command_line_carries_the_password(migrate_bin, dbs, project, tmp_path, fault):
    shim, log = argv_recorder(tmp_path)
    scratch = dbs.server.url("postgres", user="canary", password=CANARY_PASSWORD)
    dbs.env_file.write_text(dbs.env_file.read_text() + f"MIGRATION_SCRATCH_URL={scratch}\n")
    env = {"MIGRATE_BIN": shim}
    root = project({"operational": files(A, SLOW)})
    assert cli(dbs, root, "apply", "-c", "operational", "--dry-run", "--yes", "--rehearse", env=env).returncode == 0
    assert cli(dbs, root, "apply", "-c", "operational", "--yes", env=env).returncode == 0
    assert cli(dbs, root, "docs", "-c", "operational", env=env).returncode == 0  # scratch builds
    assert cli(dbs, root, "rollback", "-c", "operational", "--version", SLOW[0], "--yes", env=env).returncode == 0
    root = project({"operational": files(A, SLOW, B_FAILS)})
    assert cli(dbs, root, "apply", "-c", "operational", "--yes", env=env).returncode == 1  # dirty at b
    assert cli(dbs, root, "repair", "-c", "operational", "--yes", env=env).returncode == 0  # golang-migrate force
    lines = log.read_text().splitlines()
    calls = [line for line in lines if "-database" in line]
    fault.observed(f"{len(calls)} golang-migrate calls recorded, none with the password")
    assert len(calls) >= 8  # apply, force, rehearsal and docs builds, apply, rollback
    for line in calls:
        assert not any(form in line for form in CANARY_FORMS), line
        assert "password" not in line.lower()
    ledger = dbs.server.psql(dbs.operational, "select coalesce(string_agg(t::text, E'\\n'), '') "
                             "from migration_meta.migration_audit t")
    assert ledger and not any(form in ledger for form in CANARY_FORMS)  # nor in an audit row


@pytest.mark.faults(scenario="every process's command line during a run", expected="no secret in any of them")
def test_no_process_command_line_carries_the_password_during_a_run(migrate_bin, dbs, project, fault):
    root = project({"operational": files(A, SLOW)})
    proc = spawn(dbs, root, "-c", "operational")
    wait_for_sleep(dbs)
    seen = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        seen += 1
        assert not any(form in cmdline for form in CANARY_FORMS), cmdline
    code, _, _ = finish(proc)
    fault.observed(f"{seen} command lines read mid-run; exit {code}")
    assert code == 0


def test_a_password_in_scratch_url_on_the_command_line_is_refused(dbs, project):
    url = dbs.server.url("postgres", user="canary", password=CANARY_PASSWORD)
    result = cli(dbs, project({"operational": files(A)}), "docs", "-c", "operational", "--scratch-url", url)
    assert result.returncode == 2
    line = error_line(result)
    assert "--scratch-url" in line and "MIGRATION_SCRATCH_URL" in line


@pytest.mark.faults(scenario="another session's SQL in the blocking_locks reason", expected="literals never shown")
def test_other_sessions_sql_is_normalised_everywhere(migrate_bin, dbs, project, tmp_path, fault):
    root = project({"operational": files(A)})
    assert cli(dbs, root, "apply", "-c", "operational", "--yes").returncode == 0
    root = project({"operational": files(A, ("202601010100_alter", "alter table a add column x int;\n",
                                             "alter table a drop column x;\n"))})
    card = "CARD-4111-1111-1111-1111"
    receiver = HttpReceiver()
    log_file = tmp_path / "run.log"
    try:
        with psycopg.connect(dbs.server.url(dbs.operational)) as holder:
            holder.execute("lock table a in access share mode")
            holder.execute(f"select '{card}' as pan, count(*) from a where id <> 42")
            result = cli(dbs, root, "apply", "-c", "operational", "--yes", "--log-file", str(log_file),
                         env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
            holder.rollback()
        exported = receiver.bodies_text()
    finally:
        receiver.close()
    line = error_line(result)
    fault.observed(f"exit {result.returncode}: {line}")
    assert result.returncode == 3 and "pre-check failed: blocking_locks" in line
    assert "select $1 as pan, count(*) from a where id <> $2" in line  # the shape, for the operator
    for text in (result.stdout, result.stderr, log_file.read_text(), exported):
        assert card not in text and "4111-1111" not in text  # not bare "4111": a span's nanosecond time may hold it


def test_env_file_values_are_literal(dbs, project, pg):
    password = "Pw${MWX_EXPANDED}x$HOME"
    pg.psql("postgres", f"create role literal login password '{password}'")
    try:
        url = pg.url(dbs.operational, user="literal", password=password)
        dbs.env_file.write_text(f"DB_URL={url}\n")
        result = cli(dbs, project({"operational": files(A)}), "status", "-c", "operational",
                     env={"MWX_EXPANDED": "zzz"})
        assert result.returncode == 0, result.output
    finally:
        pg.psql("postgres", "drop role literal")


def test_the_environment_overriding_the_file_is_said_in_the_plan(migrate_bin, dbs, project):
    root = project({"operational": files(A)})
    other = dbs.url("operational").replace("sslmode=disable", "sslmode=disable&application_name=from-env")
    result = cli(dbs, root, "apply", "-c", "operational", "--dry-run", "--yes", "--log-format", "text",
                 env={"DB_URL": other})
    assert result.returncode == 0, result.output
    assert "DB_URL comes from the environment, not the --env file" in result.stdout
    records = cli(dbs, root, "apply", "-c", "operational", "--dry-run", "--yes", env={"DB_URL": other})
    start = next(json.loads(l) for l in records.stderr.splitlines() if '"migration_start"' in l)
    assert start["overridden"] == ["DB_URL"]
    same = cli(dbs, root, "apply", "-c", "operational", "--dry-run", "--yes", "--log-format", "text",
               env={"DB_URL": dbs.url("operational")})
    assert "comes from the environment" not in same.stdout  # the same value overrides nothing


@pytest.mark.faults(scenario="a 20 MB migration in a dry run", expected="not parsed, a warning; memory bounded")
def test_a_huge_file_is_not_parsed_and_memory_stays_bounded(dbs, project, fault):
    root = project({"operational": files(A)})
    folder = root / "db/migrations/operational"
    row = b"insert into a values (1); -- " + b"x" * 200 + b"\n"
    (folder / "202601010100_huge.up.sql").write_bytes(row * (20 * 1024 * 1024 // len(row)))
    (folder / "202601010100_huge.down.sql").write_bytes(b"delete from a;\n")
    code = ("import resource, subprocess, sys\n"
            f"p = subprocess.run([sys.executable, '-m', 'migrate_wrapper', 'apply', '-c', 'operational', '--env', "
            f"{str(dbs.env_file)!r}, '--dry-run', '--yes'], capture_output=True, text=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            "sys.stderr.write(p.stderr)\nsys.exit(p.returncode)\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=child_env(root=root), stdin=subprocess.DEVNULL)
    peak_mb = int(proc.stdout.strip().splitlines()[-1]) / 1024
    fault.observed(f"exit {proc.returncode}, peak {peak_mb:.0f} MB, {time.monotonic() - started:.0f} s")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "202601010100_huge.up.sql" in proc.stderr and "not analysed" in proc.stderr
    assert peak_mb < 100
