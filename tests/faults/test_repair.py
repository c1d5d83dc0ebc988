"""repair: a dirty database is settled from evidence (schemas built in scratch databases, the audit ledger), or
refused with the difference shown."""

import pytest

from tests.conftest import error_line, migration_files as files, run_cli, version

pytestmark = [pytest.mark.integration]

A = ("202601010000_a", "create table a(id int);\n", "drop table a;\n")
B_FAILS = ("202601010100_b", "create table b(id int);\nselect * from nonexist;\n", "drop table b;\n")
B_OK = ("202601010100_b", "create table b(id int);\n", "drop table b;\n")
B_PARTIAL = ("202601010100_b", "create table b1(id int);\ncommit;\ncreate table b2(id int);\nselect * from nonexist;\n",
             "drop table if exists b2;\ndrop table if exists b1;\n")
B_DATA = ("202601010100_b", "insert into a values (1);\nselect * from nonexist;\n", "delete from a;\n")




def cli(dbs, root, *args, env=None):
    return run_cli(*args, "-c", "operational", "--env", str(dbs.env_file), root=root, env=env)


def repair(dbs, root, env=None):
    return cli(dbs, root, "repair", "--yes", env={"MIGRATION_SCRATCH_URL": dbs.server.url("postgres"), **(env or {})})


@pytest.mark.faults(scenario="repair after a failed atomic step", expected="marked clean at the previous version")
def test_repair_marks_previous_version_when_the_step_rolled_back(migrate_bin, dbs, project, fault):
    root = project({"operational": files(A, B_FAILS)})
    assert cli(dbs, root, "apply", "--yes").returncode == 1
    assert version(dbs) == "202601010100 dirty"
    result = repair(dbs, root)
    fault.observed(f"exit {result.returncode}; now {version(dbs)}")
    assert result.returncode == 0, result.output
    assert version(dbs) == "202601010000"
    rows = dbs.server.psql(dbs.operational, "select direction || ':' || outcome || ':' || to_version from "
                           "migration_meta.migration_audit order by started_at")
    assert rows.splitlines()[-1] == "repair:ok:202601010000_a"


@pytest.mark.faults(scenario="repair after a step whose changes stayed", expected="marked clean at that version")
def test_repair_marks_the_dirty_version_when_its_changes_are_there(migrate_bin, dbs, project, fault):
    root = project({"operational": files(A, B_OK)})
    assert cli(dbs, root, "apply", "--yes").returncode == 0
    dbs.server.psql(dbs.operational, "update schema_migrations set dirty = true")  # as if killed after COMMIT
    result = repair(dbs, root)
    fault.observed(f"exit {result.returncode}; now {version(dbs)}")
    assert result.returncode == 0, result.output
    assert version(dbs) == "202601010100"


@pytest.mark.faults(scenario="repair after partial changes (own COMMIT)", expected="refused, exit 1, diff shown")
def test_repair_refuses_partial_changes_and_shows_them(migrate_bin, dbs, project, fault):
    root = project({"operational": files(A, B_PARTIAL)})
    assert cli(dbs, root, "apply", "--yes").returncode == 1
    assert dbs.server.psql(dbs.operational, "select to_regclass('b1') is not null") == "t"  # the COMMIT kept b1
    result = repair(dbs, root)
    fault.observed(f"exit {result.returncode}: {error_line(result)}")
    assert result.returncode == 1
    assert "not repaired: the live schema matches none of" in error_line(result)
    assert "b1" in result.stdout and result.stdout.count("\n+") >= 1
    assert "migrations up to 202601010000_a (the closest)" in result.stdout  # the diff is against the nearest
    assert version(dbs) == "202601010100 dirty"


@pytest.mark.faults(scenario="repair of a data-only step", expected="ledger + atomic file decide: previous version")
def test_repair_uses_the_ledger_when_the_schema_cannot_tell(migrate_bin, dbs, project, fault):
    root = project({"operational": files(A, B_DATA)})
    assert cli(dbs, root, "apply", "--yes").returncode == 1
    result = repair(dbs, root)
    fault.observed(f"exit {result.returncode}; now {version(dbs)}")
    assert result.returncode == 0, result.output
    assert version(dbs) == "202601010000"


def test_repair_of_a_clean_database_is_a_noop(migrate_bin, dbs, project):
    root = project({"operational": files(A)})
    assert cli(dbs, root, "apply", "--yes").returncode == 0
    result = cli(dbs, root, "repair", "--yes", "--log-format", "text", env={"MIGRATION_SCRATCH_URL": dbs.server.url("postgres")})
    assert result.returncode == 0 and "nothing to repair" in result.stdout


def test_repair_in_production_needs_approval(migrate_bin, dbs, project):
    root = project({"operational": files(A, B_FAILS)})
    assert cli(dbs, root, "apply", "--yes").returncode == 1
    result = repair(dbs, root, env={"MIGRATION_ENVIRONMENT": "production"})
    assert result.returncode == 4
    assert version(dbs) == "202601010100 dirty"
