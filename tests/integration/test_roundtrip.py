"""apply → status → rollback by version → status, for both components, with the real binary and server."""

import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def status_doc(dbs, component):
    result = run_cli("status", "--component", component, "--env", str(dbs.env_file), "--format", "json")
    assert result.returncode == 0, result.output
    (doc,) = json.loads(result.stdout)["components"]
    return doc


@pytest.mark.parametrize("component", ["operational", "analytics"])
def test_apply_status_rollback_status(migrate_bin, dbs, component):
    before = status_doc(dbs, component)
    assert before["version"] is None and before["applied"] == []
    ids = [m["id"] for m in before["pending"]]
    assert len(ids) >= 4

    applied = run_cli("apply", "--component", component, "--env", str(dbs.env_file), "--yes")
    assert applied.returncode == 0, applied.output
    finished = [json.loads(line) for line in applied.stderr.splitlines() if '"migration_step_finish"' in line]
    assert [r["version"] for r in finished] == ids
    assert all(r["duration_ms"] >= 0 for r in finished)

    after = status_doc(dbs, component)
    assert (after["version"], after["dirty"], after["pending"]) == (ids[-1], False, [])
    assert [m["id"] for m in after["applied"]] == ids

    rolled = run_cli("rollback", "--component", component, "--env", str(dbs.env_file), "--version", ids[2], "--yes")
    assert rolled.returncode == 0, rolled.output
    reverted = [json.loads(line)["version"] for line in rolled.stderr.splitlines() if '"migration_step_finish"' in line]
    assert reverted == list(reversed(ids[2:]))

    end = status_doc(dbs, component)
    assert end["version"] == ids[1] and not end["dirty"]
    assert [m["id"] for m in end["pending"]] == ids[2:]


def test_component_all_applies_each_in_order(migrate_bin, dbs):
    result = run_cli("apply", "--component", "all", "--env", str(dbs.env_file), "--yes")
    assert result.returncode == 0, result.output
    starts = [json.loads(line)["component"] for line in result.stderr.splitlines() if '"migration_start"' in line]
    assert starts == ["operational", "analytics"]
    assert dbs.server.psql(dbs.operational, "select count(*) from schema_migrations where not dirty") == "1"
    assert dbs.server.psql(dbs.analytics, "select to_regclass('events') is not null") == "t"


def test_status_and_dry_run_change_nothing(migrate_bin, dbs):
    before = {c: dbs.server.dump_schema(getattr(dbs, c)) for c in ("operational", "analytics")}
    assert run_cli("status", "--component", "all", "--env", str(dbs.env_file)).returncode == 0
    dry = run_cli("apply", "--component", "operational", "--env", str(dbs.env_file), "--dry-run", "--yes",
                  "--log-format", "text")
    assert dry.returncode == 0, dry.output
    assert "dry run" in dry.stdout and "CREATE TABLE accounts" in dry.stdout
    after = {c: dbs.server.dump_schema(getattr(dbs, c)) for c in ("operational", "analytics")}
    assert after == before
    assert dbs.server.psql(dbs.operational, "select to_regclass('schema_migrations') is null") == "t"

    # Also once something is applied: the dry run of the rest leaves the version and schema alone.
    assert run_cli("apply", "-c", "analytics", "--env", str(dbs.env_file), "--yes").returncode == 0
    dbs.server.psql(dbs.analytics, "update schema_migrations set version = 202611020930")
    frozen = dbs.server.dump_schema(dbs.analytics)
    dry = run_cli("apply", "-c", "analytics", "--env", str(dbs.env_file), "--dry-run")
    assert dry.returncode == 0, dry.output
    assert dbs.server.dump_schema(dbs.analytics) == frozen
    assert dbs.server.psql(dbs.analytics, "select version from schema_migrations") == "202611020930"


def test_apply_without_yes_and_without_terminal_refuses(migrate_bin, dbs):
    result = run_cli("apply", "--component", "operational", "--env", str(dbs.env_file))
    assert result.returncode == 2
    assert "refusing to run without --yes" in result.stderr
    assert dbs.server.psql(dbs.operational, "select to_regclass('schema_migrations') is null") == "t"


def test_nothing_pending_is_a_noop(migrate_bin, dbs):
    assert run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes").returncode == 0
    again = run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", "--log-format", "text")
    assert again.returncode == 0
    assert "nothing to apply" in again.stdout


def test_without_telemetry_the_audit_row_and_the_logs_share_the_runs_trace_id(migrate_bin, dbs):
    """The trace id is the run's own, not the tracer's: with no OTLP endpoint the ledger row still has one, the same
    the run's log records carry (it was NULL when only the tracer set it)."""
    applied = run_cli("apply", "--component", "operational", "--env", str(dbs.env_file), "--yes")
    assert applied.returncode == 0, applied.output
    records = [json.loads(line) for line in applied.stderr.splitlines() if line.startswith("{")]
    (run_id,) = {r["run_id"] for r in records if r.get("run_id")}
    (trace_id,) = {r["trace_id"] for r in records if r.get("run_id")}
    assert len(trace_id) == 32 and int(trace_id, 16) != 0
    ledger = dbs.server.psql(dbs.operational,
                             f"select trace_id from migration_meta.migration_audit where run_id = '{run_id}'")
    assert ledger == trace_id


def test_status_state_and_check_for_deploy_gates(migrate_bin, dbs):
    """status --check exits 0 only when up to date, clean and without drift; the JSON says the same state."""
    def check(*extra):
        return run_cli("status", "-c", "operational", "--env", str(dbs.env_file), "--check", *extra)

    pending = check("--format", "json")
    assert pending.returncode == 6, pending.output
    (doc,) = json.loads(pending.stdout)["components"]
    assert doc["state"] == "pending" and doc["version"] is None

    assert run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes").returncode == 0
    ok = check("--format", "json")
    assert ok.returncode == 0, ok.output
    (doc,) = json.loads(ok.stdout)["components"]
    assert doc["state"] == "ok" and isinstance(doc["version"], str)
    assert check("--log-format", "text").stdout.splitlines()[0] == "operational: OK — up to date"

    dbs.server.psql(dbs.operational, "update schema_migrations set dirty = true")
    dirty = check("--format", "json")
    assert dirty.returncode == 7 and json.loads(dirty.stdout)["components"][0]["state"] == "dirty"

    dbs.server.psql(dbs.operational, "update schema_migrations set dirty = false, version = 209901010000")
    drifted = check("--format", "json")
    assert drifted.returncode == 7
    (doc,) = json.loads(drifted.stdout)["components"]
    assert doc["state"] == "drift" and doc["version"] == "209901010000"
    assert [d["kind"] for d in doc["drift"]] == ["unknown_version"]
    assert run_cli("status", "-c", "operational", "--env", str(dbs.env_file)).returncode == 0  # without --check
