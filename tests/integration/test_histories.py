"""Histories in the shapes real golang-migrate projects have (written here, for this project): each goes through the
runbook's steps — measure-window, status, a dry run, apply, smoke-test, rollback by its own ids, apply again, lint —
and each schema is compared with what raw golang-migrate makes of the same folder (pg_dump --schema-only)."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest

from tests.conftest import ROOT, error_line, run_cli

pytestmark = pytest.mark.integration


def _seq(width: int, count: int) -> dict[str, str]:
    files = {}
    for i in range(1, count + 1):
        v = f"{i:0{width}d}" if width else str(i)
        files[f"{v}_create_t{i}.up.sql"] = f"CREATE TABLE t{i} (id bigint PRIMARY KEY, v text);\n"
        files[f"{v}_create_t{i}.down.sql"] = f"DROP TABLE t{i};\n"
    return files


def _hundreds(count: int = 150) -> dict[str, str]:
    """Many files of some size: a long header and a wide table each (~20 KB)."""
    files = {}
    header = "".join(f"-- {'note ' * 14}{n}\n" for n in range(220))
    for i in range(1, count + 1):
        columns = ",\n".join(f"  c{j} text" for j in range(40))
        files[f"{i:03d}_wide_{i}.up.sql"] = f"{header}CREATE TABLE wide_{i} (\n  id bigint PRIMARY KEY,\n{columns}\n);\n"
        files[f"{i:03d}_wide_{i}.down.sql"] = f"DROP TABLE wide_{i};\n"
    return files


HISTORIES = {
    "hundreds of files of ~20 KB": _hundreds(),
    "sequential ids without padding": _seq(0, 12),  # 10_, 11_, 12_ sort after 9_ for golang-migrate
    "zero-padded ids": _seq(4, 5),
    "timestamps with hyphens": {
        "20240826120919_create-users.up.sql": "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);\n",
        "20240826120919_create-users.down.sql": "DROP TABLE users;\n",
        "20240901083000_add-users-name.up.sql": "ALTER TABLE users ADD COLUMN name text;\n",
        "20240901083000_add-users-name.down.sql": "ALTER TABLE users DROP COLUMN name;\n",
        "20241002170501_seed-admin.up.sql": "INSERT INTO users (email, name) VALUES ('admin@example.com', 'admin');\n",
        "20241002170501_seed-admin.down.sql": "DELETE FROM users WHERE email = 'admin@example.com';\n",
    },
    "a history from version 0": {
        "0_init.up.sql": "CREATE SCHEMA app;\nCREATE TABLE app.settings (k text PRIMARY KEY, v text);\n",
        "0_init.down.sql": "DROP SCHEMA app CASCADE;\n",
        "1_flags.up.sql": "CREATE TABLE app.flags (name text PRIMARY KEY);\n",
        "1_flags.down.sql": "DROP TABLE app.flags;\n",
    },
    "own transactions": {
        "1_wrapped.up.sql": "BEGIN;\nCREATE TABLE orders (id bigint PRIMARY KEY);\nCREATE TABLE items (id bigint);\nCOMMIT;\n",
        "1_wrapped.down.sql": "BEGIN;\nDROP TABLE items;\nDROP TABLE orders;\nCOMMIT;\n",
        "2_outside.up.sql": "CREATE TABLE audit (id bigint);\nBEGIN;\nALTER TABLE orders ADD COLUMN total numeric;\nCOMMIT;\n",
        "2_outside.down.sql": "ALTER TABLE orders DROP COLUMN total;\nDROP TABLE audit;\n",
    },
    "concurrent index, DO blocks, functions, extensions, golang-migrate's own table": {
        "1_base.up.sql": "CREATE EXTENSION IF NOT EXISTS citext;\nCREATE TABLE accounts (id bigint PRIMARY KEY, "
                         "email citext);\n",
        "1_base.down.sql": "DROP TABLE accounts;\nDROP EXTENSION IF EXISTS citext;\n",
        "2_index.up.sql": "CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);\n",
        "2_index.down.sql": "DROP INDEX CONCURRENTLY IF EXISTS accounts_email_idx;\n",
        "3_logic.up.sql": "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN NEW;\n"
                          "END $$;\nDO $$ BEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nobody_x') "
                          "THEN\n    RAISE NOTICE 'no role';\n  END IF;\nEND $$;\n",
        "3_logic.down.sql": "DROP FUNCTION touch();\n",
        "4_note.up.sql": "COMMENT ON TABLE schema_migrations IS 'managed by golang-migrate';\n",
        "4_note.down.sql": "COMMENT ON TABLE schema_migrations IS NULL;\n",
    },
}


@pytest.fixture
def databases(pg):
    names = []

    def make() -> str:
        name = f"h_{uuid.uuid4().hex[:10]}"
        pg.psql("postgres", f"create database {name}")
        names.append(name)
        return name

    yield make
    for name in names:
        pg.psql("postgres", f"drop database if exists {name} with (force)")


def _committed(root):
    """The history is on main: what an adopting team has (lint judges only what a change adds)."""
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "history"]):
        subprocess.run(["git", "-C", str(root), "-c", "user.name=T", "-c", "user.email=t@example.com",
                        "-c", "commit.gpgsign=false", *args], check=True, capture_output=True, timeout=30)


def _schema(pg, database: str) -> str:
    """pg_dump --schema-only, less the wrapper's own audit schema (the one thing it adds)."""
    return pg.dump(database, "--schema-only", "--exclude-schema=migration_meta")


@pytest.mark.parametrize("shape", list(HISTORIES), ids=list(HISTORIES))
def test_every_runbook_step_on_a_history_in_its_own_ids(migrate_bin, pg, databases, project, tmp_path, shape):
    files = HISTORIES[shape]
    root = project({"operational": files})
    shutil.copy(ROOT / ".squawk.toml", root / ".squawk.toml")  # so the dry run's lint pre-check really runs
    _committed(root)
    folder = root / "db/migrations/operational"
    wrapped, raw = databases(), databases()
    env_file = tmp_path / "history.env"
    env_file.write_text(f"DB_URL={pg.url(wrapped)}\nMIGRATION_ENVIRONMENT=dev\nMIGRATION_SCRATCH_URL={pg.url('postgres')}\n")

    def cli(*args):
        result = run_cli(*args, "-c", "operational", "--env", str(env_file), root=root)
        return result

    rehearsal = cli("measure-window")  # the runbook's step 2, on the empty target: every file rehearsed
    assert rehearsal.returncode == 0, rehearsal.output

    def raw_migrate(*command):
        return subprocess.run([str(migrate_bin), "-path", str(folder), "-database", pg.url(raw), *command],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    status = cli("status", "--format", "json")
    assert status.returncode == 0, status.output
    ids = [m["id"] for m in json.loads(status.stdout)["components"][0]["pending"]]
    expected = sorted({name.rsplit(".", 2)[0] for name in files}, key=lambda i: int(i.split("_", 1)[0]))
    assert ids == expected  # numeric order, ids as written
    dry = cli("apply", "--dry-run", "--yes")
    assert dry.returncode == 0, dry.output
    assert "lint not run" not in dry.output  # judged: what it would run, less the house naming rule (history)
    assert cli("apply", "--yes").returncode == 0
    assert raw_migrate("up").returncode == 0
    assert _schema(pg, wrapped) == _schema(pg, raw)
    assert cli("status", "--format", "json").returncode == 0
    smoke = cli("smoke-test")  # the runbook's step 5: the live schema is what the history builds
    assert smoke.returncode == 0, smoke.output
    # Roll back by the history's own id (the second migration and all after it), as status prints it.
    back = cli("rollback", "--version", ids[1], "--yes")
    assert back.returncode == 0, back.output
    assert raw_migrate("down", str(len(ids) - 1)).returncode == 0
    assert _schema(pg, wrapped) == _schema(pg, raw)
    # And by the bare version, all the way back.
    assert cli("rollback", "--version", ids[0].split("_", 1)[0], "--yes").returncode == 0
    assert raw_migrate("down", "1").returncode == 0
    assert _schema(pg, wrapped) == _schema(pg, raw)
    again = cli("apply", "--yes")
    assert again.returncode == 0, again.output
    assert raw_migrate("up").returncode == 0
    assert _schema(pg, wrapped) == _schema(pg, raw)
    lint = run_cli("lint", "-c", "operational", root=root)
    assert lint.returncode == 0, lint.stdout  # the history on main is not judged again


def test_an_up_only_history_applies_and_is_never_rolled_back_past(migrate_bin, pg, databases, project, tmp_path):
    files = {"1_a.up.sql": "CREATE TABLE a (id int);\n", "2_b.up.sql": "CREATE TABLE b (id int);\n"}
    root = project({"operational": files})
    env_file = tmp_path / "history.env"
    env_file.write_text(f"DB_URL={pg.url(databases())}\n")
    dry = run_cli("apply", "-c", "operational", "--env", str(env_file), "--dry-run", "--yes", "--log-format",
                  "text", root=root)
    assert dry.returncode == 0, dry.output
    assert "up-only" in dry.stdout
    assert run_cli("apply", "-c", "operational", "--env", str(env_file), "--yes", root=root).returncode == 0
    status = run_cli("status", "-c", "operational", "--env", str(env_file), "--log-format", "text", root=root)
    assert "2_b has no down file" in status.stdout
    refused = run_cli("rollback", "-c", "operational", "--env", str(env_file), "--version", "2_b", "--yes", root=root)
    assert refused.returncode == 3
    assert "2_b has no down file" in refused.stderr


def test_a_broken_down_file_fails_the_rollback_and_repair_settles_it_from_the_ledger(migrate_bin, pg, databases,
                                                                                     project, tmp_path):
    files = {"1_a.up.sql": "CREATE TABLE a (id int);\n", "1_a.down.sql": "DROP TABLE a;\n",
             "2_b.up.sql": "CREATE TABLE b (id int);\n", "2_b.down.sql": "DROP TABLE b_misspelt;\n"}
    root = project({"operational": files})
    folder = root / "db/migrations/operational"
    wrapped, raw = databases(), databases()
    env_file = tmp_path / "history.env"
    env_file.write_text(f"DB_URL={pg.url(wrapped)}\nMIGRATION_SCRATCH_URL={pg.url('postgres')}\n")

    def cli(*args):
        return run_cli(*args, "-c", "operational", "--env", str(env_file), root=root)

    assert cli("apply", "--yes").returncode == 0
    failed = cli("rollback", "--version", "2_b", "--yes")
    assert failed.returncode == 1
    line = error_line(failed)
    assert "2_b failed" in line and "it rolled back whole" in line
    # The down step from 2 leaves golang-migrate's mark at 1: the hint must say 2 (the step rolled back), not 0.
    again = cli("apply", "--yes")
    assert again.returncode == 3 and "force 2" in again.stderr and "force -1" not in again.stderr
    assert cli("repair", "--yes").returncode == 0
    for command in (["up"], ["down", "1"], ["force", "2"]):  # raw golang-migrate, settled by hand as repair did
        subprocess.run([str(migrate_bin), "-path", str(folder), "-database", pg.url(raw), *command],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert _schema(pg, wrapped) == _schema(pg, raw)
    assert pg.psql(wrapped, "select version::text || dirty::text from schema_migrations") == "2false"


def test_a_begin_without_commit_fails_as_in_golang_migrate_and_is_never_called_settled(migrate_bin, pg, databases,
                                                                                      project, tmp_path):
    # lib/pq refuses golang-migrate's version update inside the file's open transaction: raw golang-migrate fails
    # too, dirty. The wrapper must not claim to know what became of the file.
    files = {"1_open.up.sql": "BEGIN;\nCREATE TABLE opened (id bigint);\n", "1_open.down.sql": "DROP TABLE opened;\n"}
    root = project({"operational": files})
    wrapped, raw = databases(), databases()
    env_file = tmp_path / "history.env"
    env_file.write_text(f"DB_URL={pg.url(wrapped)}\n")
    result = run_cli("apply", "-c", "operational", "--env", str(env_file), "--yes", root=root)
    line = error_line(result)
    assert result.returncode == 1
    assert "unknown whether it committed" in line or "has its own BEGIN/COMMIT" in line
    assert "marked clean" not in line
    subprocess.run([str(migrate_bin), "-path", str(root / "db/migrations/operational"), "-database", pg.url(raw), "up"],
                   capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    for database in (wrapped, raw):
        assert pg.psql(database, "select version::text || dirty::text from schema_migrations") == "1true"
