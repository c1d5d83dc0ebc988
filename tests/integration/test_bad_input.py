"""Bad input: one clear line, the documented exit code, no traceback, and the database untouched."""

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from tests.conftest import ROOT, child_env, error_lines, invoke

pytestmark = pytest.mark.integration

UP = "202611010900_create_accounts"


def untouched(dbs):
    return dbs.server.psql(dbs.operational, "select to_regclass('schema_migrations') is null") == "t"


def one_error_line(result):
    errors = error_lines(result)
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_missing_env_file(tmp_path):
    result = invoke("status", "-c", "operational", "--env", str(tmp_path / "missing.env"))
    assert result.returncode == 2
    assert "does not exist" in one_error_line(result)


def test_unknown_component(dbs):
    result = invoke("apply", "-c", "billing", "--env", str(dbs.env_file), "--yes")
    assert result.returncode == 2
    assert "unknown component 'billing'" in one_error_line(result)


def test_component_from_the_selector(migrate_bin, dbs):
    with dbs.env_file.open("a") as f:
        f.write("MIGRATION_COMPONENT=analytics\n")
    result = invoke("status", "--env", str(dbs.env_file), "--format", "json")
    assert result.returncode == 0, result.output
    assert [c["component"] for c in json.loads(result.stdout)["components"]] == ["analytics"]


def test_all_with_a_missing_url_runs_nothing(migrate_bin, dbs):
    text = dbs.env_file.read_text()
    dbs.env_file.write_text("\n".join(l for l in text.splitlines() if not l.startswith("ANALYTICS_URL")) + "\n")
    result = invoke("apply", "-c", "all", "--env", str(dbs.env_file), "--yes")
    assert result.returncode == 2
    assert "ANALYTICS_URL is not set" in one_error_line(result)
    assert untouched(dbs)


def test_malformed_env_line(dbs):
    with dbs.env_file.open("a") as f:
        f.write("this line is wrong\n")
    result = invoke("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes")
    assert result.returncode == 2
    assert "cannot parse this line" in one_error_line(result)
    assert untouched(dbs)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("202611010900_create_acounts", "202611010900 is 202611010900_create_accounts, not 202611010900_create_acounts"),
        ("209912310000_future", "209912310000_future is not applied to operational; applied versions: 2026"),
        ("$(touch /tmp/pwned); x", "is not a migration id"),
    ],
)
def test_rollback_refuses_bad_versions(migrate_bin, dbs, version, message):
    assert invoke("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes").returncode == 0
    before = dbs.server.dump_schema(dbs.operational)
    result = invoke("rollback", "-c", "operational", "--env", str(dbs.env_file), "--version", version, "--yes")
    assert result.returncode == 2
    assert message in one_error_line(result)
    assert dbs.server.dump_schema(dbs.operational) == before
    assert not os.path.exists("/tmp/pwned")


def test_rollback_of_all_components_is_refused(dbs):
    result = invoke("rollback", "-c", "all", "--env", str(dbs.env_file), "--version", UP, "--yes")
    assert result.returncode == 2
    assert "rollback takes one component" in one_error_line(result)


def test_wrong_password_is_a_connectivity_failure_without_the_password(migrate_bin, dbs):
    dbs.env_file.write_text(f"DB_URL={dbs.server.url(dbs.operational, user='canary', password='Canary-Pw-wrong')}\n")
    result = invoke("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes")
    assert result.returncode == 3
    line = one_error_line(result)
    assert line.startswith("error: pre-check failed: connectivity: cannot connect to postgres://canary:***@127.0.0.1")
    assert "Canary-Pw-wrong" not in result.output


def test_migrate_bin_that_is_not_golang_migrate(dbs, tmp_path):
    fake = tmp_path / "migrate"
    fake.write_text("#!/bin/sh\necho 'hello'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    result = invoke("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", env={"MIGRATE_BIN": str(fake)})
    assert result.returncode == 2
    assert "is not golang-migrate" in one_error_line(result)
    assert untouched(dbs)


def test_migrate_bin_missing(dbs, tmp_path):
    result = invoke("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes",
                     env={"MIGRATE_BIN": str(tmp_path / "nope")})
    assert result.returncode == 2
    assert "is not an executable file" in one_error_line(result)


@pytest.mark.faults(scenario="failing SQL, then a rerun", expected="exit 1 one line; rerun exit 3 dirty")
def test_failing_migration_is_one_clear_line_and_leaves_dirty(migrate_bin, dbs, project):
    root = project({"operational": {
        "202601010000_a.up.sql": "create table a(id int);\n", "202601010000_a.down.sql": "drop table a;\n",
        "202601010100_bad.up.sql": "-- boom\ncreate table c(id int);\nselect * from nonexist;\n",
        "202601010100_bad.down.sql": "drop table c;\n",
    }})
    result = invoke("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", root=root)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "202601010100_bad failed: relation \"nonexist\" does not exist" in line
    assert "(line 3)" in line and "version 202601010100_bad (dirty)" in line
    assert line.endswith("; run scripts/db/repair.sh --component operational --env <file>: it marks the right version "
                         "clean from the evidence, or says what to decide (runbook: Dirty database)")  # the next step
    assert "create table c" not in result.stderr.split("error: ")[-1]  # no file dump
    # The next run refuses with the dirty pre-check and the recovery command.
    again = invoke("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", root=root)
    assert again.returncode == 3
    assert "pre-check failed: dirty: database is dirty at version 202601010100" in one_error_line(again)
    assert "repair.sh --component operational" in again.stderr and "force 202601010000" in again.stderr


def test_missing_migrations_folder_or_project_file(dbs, tmp_path):
    result = invoke("status", "-c", "operational", "--env", str(dbs.env_file), root=tmp_path)
    assert result.returncode == 2
    assert "migrate-wrapper.toml does not exist" in one_error_line(result)
    shutil.copy(ROOT / "migrate-wrapper.toml", tmp_path / "migrate-wrapper.toml")  # declares folders not there
    result = invoke("status", "-c", "operational", "--env", str(dbs.env_file), root=tmp_path)
    assert result.returncode == 2
    assert "components.operational.migrations: db/migrations/operational is not a directory" in one_error_line(result)




def test_help_documents_exit_codes():
    result = invoke("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # the help wraps lines anywhere
    assert "3 pre-check failed" in text and "5 time window exceeded" in text and "130 interrupted" in text


def test_a_run_builds_only_its_command_yet_parses_and_helps_as_the_whole_app():
    """cli/main.py registers only the command the words name (Typer builds every command on each start): through
    the console entry, each command's help, a usage error and an unknown name read exactly as the whole app says."""
    from migrate_wrapper.cli.main import app

    from tests.conftest import run_cli

    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    assert len(names) >= 10
    for args in [[name, "--help"] for name in names] + [["--project-dir", str(ROOT), "status", "--bogus"],
                                                         ["stauts"], ["apply", "--log-format", "xml"]]:
        whole, alone = invoke(*args), run_cli(*args)

        def words(result) -> tuple:  # the program's name and the terminal's width differ between the two
            return (result.returncode, *(" ".join(text.replace("python -m migrate_wrapper", "migrate-wrapper").split())
                                         for text in (result.stdout, result.stderr)))

        assert words(alone) == words(whole), args


def test_the_project_is_found_upwards_or_named_with_project_dir(dbs, project, tmp_path):
    root = project({"operational": {f"{UP}.up.sql": "create table a(id int);\n", f"{UP}.down.sql": "drop table a;\n"}})
    below = root / "db" / "migrations"
    env = child_env({"MIGRATE_WRAPPER_ROOT": ""})
    for cwd, args in ((below, []), (tmp_path.parent, ["--project-dir", str(root)])):
        proc = subprocess.run([sys.executable, "-m", "migrate_wrapper", *args, "status", "-c", "operational", "--env",
                               str(dbs.env_file), "--format", "json"], capture_output=True, text=True, cwd=cwd,
                              env=env, timeout=60, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["components"][0]["pending"][0]["id"] == UP
    wrong = subprocess.run([sys.executable, "-m", "migrate_wrapper", "--project-dir", str(tmp_path), "status"],
                           capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert wrong.returncode == 2 and "holds no migrate-wrapper.toml" in wrong.stderr


@pytest.mark.parametrize("outcome", ["pre-check failed", "usage error"])
def test_json_log_format_keeps_stderr_pure_json_when_a_command_fails(migrate_bin, dbs, outcome):
    """`2>&1 | jq` must work exactly when it matters: the final error is a JSON record (command_error) with the exit
    code, not a plain line after the records."""
    if outcome == "usage error":
        args = ["apply", "-c", "billing", "--env", str(dbs.env_file), "--yes", "--log-format", "json"]
    else:  # a dirty database: the dirty pre-check fails, exit 3, after the run's own records
        dbs.server.psql(dbs.operational, "create table schema_migrations (version bigint primary key, dirty boolean "
                        "not null); insert into schema_migrations values (202611010900, true)")
        args = ["apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", "--log-format", "json"]
    result = invoke(*args)
    assert result.returncode in (2, 3)
    records = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    final = records[-1]
    assert final["event"] == "command_error" and final["level"] == "ERROR"  # as every other record has it
    assert final["exit_code"] == result.returncode and final["outcome"] in ("refused", "guardrail")
    text = invoke(*args[:-1], "text")
    assert text.returncode == result.returncode
    assert text.stderr.strip().splitlines()[-1] == f"error: {final['msg']}"
