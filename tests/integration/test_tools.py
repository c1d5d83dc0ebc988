"""docs, validate-schema, smoke-test and measure-window with the real binary and server: green on the shipped tree,
red (with the reason) after the changes they exist to catch; scratch databases always dropped; targets untouched."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import CANARY_PASSWORD, ROOT, child_env, error_line, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch_env(pg):
    """The scratch server through the canary role, so every run also proves its password leaks nowhere."""
    return {"MIGRATION_SCRATCH_URL": pg.url("postgres", user="canary", password=CANARY_PASSWORD)}


def scratch_databases(pg) -> str:
    return pg.psql("postgres", "select string_agg(datname, ',') from pg_database where datname like 'mw_scratch_%'")



def copy_project(tmp_path):
    """The shipped migrations, docs, plan and classification in a root of the test's own, to change freely."""
    root = tmp_path / "project"
    for part in ("db/migrations", "db/schema", "db/smoke", "configs"):
        shutil.copytree(ROOT / part, root / part)
    shutil.copy(ROOT / "migrate-wrapper.toml", root / "migrate-wrapper.toml")
    return root


def test_validate_schema_is_green_on_the_shipped_tree(migrate_bin, pg, scratch_env):
    result = run_cli("validate-schema", env=scratch_env)
    assert result.returncode == 0, result.output
    assert "in sync: db/schema/operational.md, db/schema/analytics.md, db/migrations/migrations.md" in result.stdout
    assert scratch_databases(pg) is None or scratch_databases(pg) == ""


def test_validate_schema_red_after_an_added_column_then_after_an_unclassified_one(migrate_bin, pg, scratch_env,
                                                                                  tmp_path):
    root = copy_project(tmp_path)
    folder = root / "db/migrations/operational"
    (folder / "202612010900_add_orders_note.up.sql").write_text(
        "-- Add orders.note\nALTER TABLE orders ADD COLUMN note text;\n")
    (folder / "202612010900_add_orders_note.down.sql").write_text("ALTER TABLE orders DROP COLUMN note;\n")
    classification = root / "configs/data-classification.yml"
    classified = classification.read_text().replace(
        "          total_cents: {classification: confidential}\n",
        "          total_cents: {classification: confidential}\n          note: {classification: internal}\n")
    assert classified != classification.read_text()
    classification.write_text(classified)

    stale = run_cli("validate-schema", "--component", "operational", env=scratch_env, root=root)
    assert stale.returncode == 1, stale.output
    assert "+| `note` | text | yes |  | internal |  |" in stale.stdout  # the unified diff, on stdout
    assert "+| 202612010900 | `add_orders_note` | Add orders.note |" in stale.stdout
    assert "--- a/db/schema/operational.md" in stale.stdout and "+++ b/db/migrations/migrations.md" in stale.stdout
    assert error_line(stale) == (
        "error: validate-schema: out of date: db/schema/operational.md, db/migrations/migrations.md "
        "(regenerate with `migrate-wrapper docs`)")

    written = run_cli("docs", "--component", "operational", env=scratch_env, root=root)
    assert written.returncode == 0, written.output
    assert run_cli("validate-schema", "-c", "operational", env=scratch_env, root=root).returncode == 0

    # Now the column's entry goes: docs may be regenerated, but the gap is named and fails the check.
    classification.write_text(classified.replace("          note: {classification: internal}\n", ""))
    assert run_cli("docs", "-c", "operational", env=scratch_env, root=root).returncode == 0
    gap = run_cli("validate-schema", "-c", "operational", env=scratch_env, root=root)
    assert gap.returncode == 1, gap.output
    assert "classification: unclassified column operational.orders.note" in gap.stdout
    assert "1 classification problem(s): unclassified column operational.orders.note" in error_line(gap)
    assert not scratch_databases(pg)


def test_a_migration_that_fails_in_the_scratch_database_names_it_and_leaves_no_scratch(migrate_bin, pg, scratch_env,
                                                                                        tmp_path):
    root = copy_project(tmp_path)
    (root / "db/migrations/analytics/202612010930_broken.up.sql").write_text("-- Broken\nALTER TABLE nope ADD x int;\n")
    (root / "db/migrations/analytics/202612010930_broken.down.sql").write_text("SELECT 1;\n")
    result = run_cli("docs", "-c", "analytics", env=scratch_env, root=root)
    assert result.returncode == 1, result.output
    assert "building analytics in a scratch database: 202612010930_broken failed" in error_line(result)
    assert 'relation "nope" does not exist' in error_line(result)
    assert not scratch_databases(pg)


def test_the_embedded_postgresql_is_the_fallback_scratch_server(migrate_bin, pg, tmp_path_factory):
    """No --scratch-url, no MIGRATION_SCRATCH_URL: `local-postgres.sh start` on its state directory (here the one
    this session's server lives in, so nothing new is started)."""
    state = next(p.parent for p in tmp_path_factory.getbasetemp().glob("pg*/port")
                 if p.read_text().strip() == str(pg.port))
    result = run_cli("validate-schema", "-c", "analytics", env={"LOCAL_PG_DIR": str(state)})
    assert result.returncode == 0, result.output
    assert not scratch_databases(pg)


def test_smoke_test_green_after_apply_and_after_rollback_red_after_a_hand_change(migrate_bin, dbs, scratch_env):
    env_file = str(dbs.env_file)
    for component in ("operational", "analytics"):
        assert run_cli("apply", "-c", component, "--env", env_file, "--yes").returncode == 0
    after_apply = run_cli("smoke-test", "-c", "all", "--env", env_file, env=scratch_env)
    assert after_apply.returncode == 0, after_apply.output
    passed = "smoke test passed (connectivity ok; dirty ok; ledger ok; schema ok; queries ok)"
    assert after_apply.stdout.count(passed) == 2
    checks = [json.loads(line) for line in after_apply.stderr.splitlines() if '"migration_smoke_checks"' in line]
    assert [c["result"] for c in checks] == ["ok", "ok"]

    rolled = run_cli("rollback", "-c", "operational", "--env", env_file, "--yes",
                     "--version", "202611040900_index_orders_account_placed_at")
    assert rolled.returncode == 0, rolled.output
    after_rollback = run_cli("smoke-test", "-c", "operational", "--env", env_file, "--log-format", "text",
                             env=scratch_env)
    assert after_rollback.returncode == 0, after_rollback.output
    assert "live schema equals the migrations up to 202611030900_create_order_lines" in after_rollback.stdout
    assert "3 read-only queries ok, 2 skipped" in after_rollback.stdout

    dbs.server.psql(dbs.operational, "alter table orders add column note text")
    altered = run_cli("smoke-test", "-c", "operational", "--env", env_file, env=scratch_env)
    assert altered.returncode == 1, altered.output
    assert altered.stdout.count("+| `note` | text | yes |  |  |") == 1  # the diff, once
    assert error_line(altered).startswith(
        "error: smoke test of operational failed: schema: live schema differs from the migrations up to "
        "202611030900_create_order_lines")

    # A version moved behind the ledger's back: the ledger check names the run that left it elsewhere.
    dbs.server.psql(dbs.operational, "alter table orders drop column note")
    dbs.server.psql(dbs.operational, "update schema_migrations set version = 202611020900")
    moved = run_cli("smoke-test", "-c", "operational", "--env", env_file, env=scratch_env)
    assert moved.returncode == 1
    assert "ledger: at 202611020900_create_orders, but the last successful run (rollback" in error_line(moved)
    assert "left 202611030900_create_order_lines" in error_line(moved)
    assert not scratch_databases(dbs.server)


def test_measure_window_reports_every_step_and_leaves_the_target_byte_for_byte(migrate_bin, dbs, scratch_env,
                                                                                tmp_path):
    env_file = str(dbs.env_file)
    assert run_cli("apply", "-c", "analytics", "--env", env_file, "--yes").returncode == 0
    dbs.server.psql(dbs.analytics, "insert into events (event_type, occurred_at) values ('account.created', now())")
    assert run_cli("rollback", "-c", "analytics", "--env", env_file, "--yes",
                   "--version", "202611040930_create_daily_event_rollups").returncode == 0
    before = {name: dbs.server.dump(name) for name in (dbs.operational, dbs.analytics)}  # schema and data

    report = tmp_path / "window.json"
    measured = run_cli("measure-window", "-c", "analytics", "--env", env_file, "--report", str(report),
                       env=scratch_env)
    assert measured.returncode == 0, measured.output
    doc = json.loads(report.read_text())
    pending = ["202611040930_create_daily_event_rollups", "202611050930_create_refresh_daily_event_rollups"]
    assert (doc["outcome"], doc["pending"]) == ("ok", pending)
    assert doc["from_version"] == "202611030930_index_events_type_occurred_at"
    assert [(p["name"], p["direction"]) for p in doc["phases"]] == [("apply", "up"), ("rollback", "down"),
                                                                   ("reapply", "up")]
    assert [[s["id"] for s in p["steps"]] for p in doc["phases"]] == [pending, pending[::-1], pending]
    assert all(p["wall_ms"] > 0 and not p["exceeded"] for p in doc["phases"])
    assert "result: within the window" in measured.stdout and report.with_suffix(".md").read_text() in measured.stdout

    # docs and validate-schema never touch a target; measure-window only reads it.
    assert run_cli("docs", "--env", env_file, env=scratch_env, root=copy_project(tmp_path)).returncode == 0
    assert run_cli("validate-schema", "--env", env_file, env=scratch_env).returncode == 0
    assert {name: dbs.server.dump(name) for name in (dbs.operational, dbs.analytics)} == before
    assert not scratch_databases(dbs.server)


def test_measure_window_exits_5_when_a_direction_exceeds_the_window(migrate_bin, dbs, scratch_env, project,
                                                                   tmp_path):
    root = project({"operational": {
        "202601010000_create_t.up.sql": "CREATE TABLE t (id int);\n",
        "202601010000_create_t.down.sql": "DROP TABLE t;\n",
        "202601020000_slow.up.sql": "-- Slow\nSELECT pg_sleep(3);\n",
        "202601020000_slow.down.sql": "SELECT 1;\n",
    }})
    # The target at the first migration, as golang-migrate would have left it.
    dbs.server.psql(dbs.operational, "create table t (id int); create table schema_migrations "
                    "(version bigint primary key, dirty boolean not null); insert into schema_migrations "
                    "values (202601010000, false)")
    report = tmp_path / "window.json"
    result = run_cli("measure-window", "-c", "operational", "--env", str(dbs.env_file), "--report", str(report),
                     root=root, env={**scratch_env, "MIGRATION_WINDOW_SECONDS": "1"})
    assert result.returncode == 5, result.output
    doc = json.loads(report.read_text())
    assert doc["outcome"] == "exceeded" and [p["name"] for p in doc["phases"]] == ["apply"]
    assert doc["phases"][0]["exceeded"] and doc["phases"][0]["wall_ms"] < 3000  # stopped at the window, not after
    assert "error: rehearsal of operational: apply took longer than the time window of 1s" in error_line(result)
    assert not scratch_databases(dbs.server)


def test_production_never_uses_the_target_as_the_scratch_server(migrate_bin, dbs):
    result = run_cli("measure-window", "-c", "operational", "--env", str(dbs.env_file),
                     env={"MIGRATION_ENVIRONMENT": "production", "MIGRATION_SCRATCH_URL": dbs.url("operational")})
    assert result.returncode == 2, result.output
    assert "refusing to use the production target postgres://canary:***@" in error_line(result)


def test_sigterm_mid_rehearsal_still_drops_the_scratch_database(migrate_bin, dbs, scratch_env, project):
    root = project({"operational": {
        "202601010000_slow.up.sql": "-- Slow\nSELECT pg_sleep(2);\n",
        "202601010000_slow.down.sql": "SELECT 1;\n",
    }})
    env = child_env({**scratch_env, "MIGRATE_BIN": str(migrate_bin)}, root=root)
    proc = subprocess.Popen([sys.executable, "-m", "migrate_wrapper", "measure-window", "-c", "operational",
                             "--env", str(dbs.env_file), "--report", str(root / "r.json")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not scratch_databases(dbs.server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scratch_databases(dbs.server), "the rehearsal never created its scratch database"
    time.sleep(0.3)  # golang-migrate is inside pg_sleep now
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert error_line(stderr) == "error: interrupted" and "Traceback" not in stderr
    assert not scratch_databases(dbs.server)
