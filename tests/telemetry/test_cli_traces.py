"""Spans and metrics of real CLI runs (real golang-migrate, real PostgreSQL) as a real OTLP receiver gets them."""

from __future__ import annotations

import json

import pytest

from migrate_wrapper import __version__
from migrate_wrapper.postgres import ledger
from tests.conftest import migration_files, run_cli
from tests.telemetry.conftest import OTLP_SECRET, assert_no_secrets, json_records, otel_env

pytestmark = pytest.mark.integration

LEDGER = f"{ledger.SCHEMA}.{ledger.TABLE}"
RUN_ATTRIBUTES = ("migration.component", "migration.direction", "migration.version", "migration.duration_ms",
                  "migration.dry_run", "migration.environment", "db.system", "server.address", "db.namespace")


def pending_ids(dbs, component: str) -> list[str]:
    result = run_cli("status", "--component", component, "--env", str(dbs.env_file), "--format", "json")
    assert result.returncode == 0, result.output
    (doc,) = json.loads(result.stdout)["components"]
    return [m["id"] for m in doc["pending"]]


def only(spans, name):
    matches = [s for s in spans if s.name == name]
    assert len(matches) == 1, [s.name for s in spans]
    return matches[0]


def assert_run_attributes(span, dbs, component, direction, dry_run):
    for key in RUN_ATTRIBUTES:
        assert key in span.attributes, (span.name, key, span.attributes)
    a = span.attributes
    assert a["migration.component"] == component
    assert a["migration.direction"] == direction
    assert a["migration.dry_run"] is dry_run
    assert a["migration.environment"] == "dev"
    assert a["db.system"] == "postgresql"
    assert a["server.address"] == dbs.server.host
    assert a["db.namespace"] == getattr(dbs, component)
    assert a["migration.duration_ms"] >= 0
    assert "migration.approved_by" not in a  # not set in this environment
    assert not any("canary" in str(v) for v in a.values())  # the DB user name goes nowhere either


def test_apply_trace_metrics_and_log_ids(migrate_bin, dbs, receiver):
    ids = pending_ids(dbs, "operational")
    result = run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes",
                     env=otel_env(receiver.url))
    assert result.returncode == 0, result.output

    spans = receiver.spans()
    root = only(spans, "migration.apply")
    assert root.parent_id == ""
    assert {s.trace_id for s in spans} == {root.trace_id}  # one trace for the run
    assert_run_attributes(root, dbs, "operational", "up", False)
    assert root.attributes["migration.version"] == ids[-1]
    assert root.attributes["migration.version.reached"] == ids[-1] and root.attributes["migration.dirty"] is False
    assert root.attributes["migration.outcome"] == "ok"
    assert root.attributes["migration.plan"] == ids
    assert root.status_code == 1
    assert root.resource["service.name"] == "db-migrate-cli"
    assert root.resource["service.version"] == __version__

    records = json_records(result.stderr)
    checks = only(spans, "migration.pre_checks")
    assert checks.parent_id == root.span_id
    events = [attrs for name, attrs in checks.events if name == "migration.check"]
    (logged,) = [r for r in records if r["event"] == "migration_pre_checks"]
    assert [e["migration.check.name"] for e in events] == [c["name"] for c in logged["checks"]]  # each check an event
    assert {"connectivity", "files", "dirty"} <= {e["migration.check.name"] for e in events}
    assert {e["migration.check.status"] for e in events} == {"ok"}
    assert all(e["migration.check.reason"] for e in events)

    steps = [s for s in spans if s.name == "migration.step"]
    assert [s.attributes["migration.version"] for s in steps] == ids  # one per migration, in order
    for step in steps:
        assert step.parent_id == root.span_id
        assert_run_attributes(step, dbs, "operational", "up", False)
        assert step.status_code != 2

    # The header arrived with every request; the metrics too, with their attributes.
    assert all(h.get("x-api-key") == OTLP_SECRET for h in receiver.headers("traces") + receiver.headers("metrics"))
    assert receiver.headers("metrics")
    points = receiver.points()
    assert {"migration.run.duration", "migration.step.duration", "migration.runs",
            "migration.rows_changed"} <= receiver.metric_names()
    (runs,) = [p for p in points if p.metric == "migration.runs"]
    assert runs.value == 1
    assert runs.attributes == {"migration.component": "operational", "migration.direction": "up",
                               "migration.environment": "dev", "migration.command": "apply",
                               "migration.outcome": "ok"}
    (step_hist,) = [p for p in points if p.metric == "migration.step.duration"]
    assert step_hist.count == len(ids) and step_hist.unit == "s"  # OpenTelemetry's unit for durations
    (run_hist,) = [p for p in points if p.metric == "migration.run.duration"]
    root_seconds = (root.end_ns - root.start_ns) / 1e9
    assert run_hist.unit == "s" and 0 < run_hist.value <= root_seconds * 1.5  # seconds, not milliseconds
    assert points[0].resource["service.name"] == "db-migrate-cli"

    post = only(spans, "migration.post_checks")
    assert post.parent_id == root.span_id and post.start_ns >= steps[-1].start_ns
    assert "row_counts" in [a["migration.check.name"] for n, a in post.events if n == "migration.check"]
    assert post.attributes["migration.rows_changed"] == root.attributes["migration.rows_changed"] == 0  # empty tables

    # Log records carry the ids of the span they belong to.
    assert {r["trace_id"] for r in records if r.get("run_id")} == {root.trace_id}
    starts = [r for r in records if r["event"] == "migration_start"]
    assert starts[0]["span_id"] == root.span_id
    finished = [r for r in records if r["event"] == "migration_step_finish"]
    assert [r["span_id"] for r in finished] == [s.span_id for s in steps]
    assert [r["event"] for r in records if r["span_id"] == checks.span_id] == ["migration_pre_checks"]
    assert [r for r in records if r["event"] == "migration_finish"][0]["span_id"] == root.span_id
    assert not [r for r in records if r["event"] == "telemetry_export_failed"]

    # The audit ledger recorded the run's trace id (run.trace_id, which the root span took).
    (run_id,) = {r["run_id"] for r in records if r.get("run_id")}
    ledger_trace = dbs.server.psql(dbs.operational, f"select trace_id from {LEDGER} where run_id = '{run_id}'")
    assert ledger_trace == root.trace_id

    assert_no_secrets(receiver.bodies_text(), result.stdout, result.stderr)


def test_dry_run_and_service_name_override(migrate_bin, dbs, receiver):
    result = run_cli("apply", "-c", "analytics", "--env", str(dbs.env_file), "--dry-run", "--yes",
                     env=otel_env(receiver.url, OTEL_SERVICE_NAME="migrations-ci"))
    assert result.returncode == 0, result.output
    spans = receiver.spans()
    root = only(spans, "migration.apply")
    assert root.attributes["migration.dry_run"] is True
    assert root.attributes["migration.outcome"] == "dry_run"
    assert_run_attributes(root, dbs, "analytics", "up", True)
    assert root.resource["service.name"] == "migrations-ci"
    assert only(spans, "migration.pre_checks").parent_id == root.span_id
    assert not [s for s in spans if s.name == "migration.step"]  # nothing ran
    (runs,) = [p for p in receiver.points() if p.metric == "migration.runs"]
    assert runs.attributes["migration.outcome"] == "ok"  # a dry run counts as ok
    assert_no_secrets(receiver.bodies_text(), result.stdout, result.stderr)


def test_rollback_trace(migrate_bin, dbs, receiver):
    ids = pending_ids(dbs, "analytics")
    assert run_cli("apply", "-c", "analytics", "--env", str(dbs.env_file), "--yes").returncode == 0
    assert not receiver.received  # no endpoint, nothing sent

    result = run_cli("rollback", "-c", "analytics", "--env", str(dbs.env_file), "--version", ids[2], "--yes",
                     env=otel_env(receiver.url))
    assert result.returncode == 0, result.output
    spans = receiver.spans()
    root = only(spans, "migration.rollback")
    assert_run_attributes(root, dbs, "analytics", "down", False)
    assert root.attributes["migration.version"] == ids[1]  # the target: where the rollback ends
    assert root.attributes["migration.from_version"] == ids[-1]
    steps = [s for s in spans if s.name == "migration.step"]
    assert [s.attributes["migration.version"] for s in steps] == list(reversed(ids[2:]))
    assert all(s.parent_id == root.span_id and s.attributes["migration.direction"] == "down" for s in steps)
    assert only(spans, "migration.pre_checks").parent_id == root.span_id
    (runs,) = [p for p in receiver.points() if p.metric == "migration.runs"]
    assert runs.attributes["migration.direction"] == "down"
    assert runs.attributes["migration.command"] == "rollback"
    assert_no_secrets(receiver.bodies_text(), result.stdout, result.stderr)


def test_otel_settings_from_the_env_file(migrate_bin, dbs, receiver):
    with dbs.env_file.open("a") as f:
        f.write(f"OTEL_EXPORTER_OTLP_ENDPOINT={receiver.url}\nOTEL_EXPORTER_OTLP_HEADERS=x-api-key={OTLP_SECRET}\n"
                "OTEL_SERVICE_NAME=from-env-file\n")
    result = run_cli("status", "-c", "all", "--env", str(dbs.env_file))  # nothing OTEL_* in the process env
    assert result.returncode == 0, result.output
    roots = [s for s in receiver.spans() if s.name == "migration.status"]
    assert [r.attributes["migration.component"] for r in roots] == ["operational", "analytics"]
    assert len({r.trace_id for r in roots}) == 2  # one trace per run
    assert all(r.resource["service.name"] == "from-env-file" for r in roots)
    assert all(r.attributes["migration.version"] == "none" for r in roots)  # nothing applied yet
    assert all(h.get("x-api-key") == OTLP_SECRET for h in receiver.headers("traces"))
    assert_no_secrets(receiver.bodies_text(), result.stdout, result.stderr)


def test_pre_check_failure_is_an_error_with_an_event(migrate_bin, dbs, receiver):
    assert run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes").returncode == 0
    dbs.server.psql(dbs.operational, "update schema_migrations set dirty = true")
    result = run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", env=otel_env(receiver.url))
    assert result.returncode == 3, result.output

    spans = receiver.spans()
    root = only(spans, "migration.apply")
    assert root.status_code == 2 and "pre-check failed: dirty" in root.status_message
    assert root.attributes["migration.outcome"] == "guardrail"
    failed = root.event("pre_check_failed")
    assert failed["migration.check.name"] == "dirty"
    exception = root.event("exception")
    assert exception["exception.type"] == "PreCheckFailed"
    checks = only(spans, "migration.pre_checks")
    assert checks.status_code == 2 and checks.attributes["migration.check.result"] == "fail"
    assert not [s for s in spans if s.name == "migration.step"]
    (runs,) = [p for p in receiver.points() if p.metric == "migration.runs"]
    assert runs.attributes["migration.outcome"] == "guardrail"
    assert_no_secrets(receiver.bodies_text(), result.stdout, result.stderr)


def test_grpc_protocol(migrate_bin, dbs, grpc_receiver):
    ids = pending_ids(dbs, "operational")
    result = run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes",
                     env=otel_env(grpc_receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL="grpc"))
    assert result.returncode == 0, result.output
    spans = grpc_receiver.spans()
    root = only(spans, "migration.apply")
    steps = [s for s in spans if s.name == "migration.step"]
    assert [s.attributes["migration.version"] for s in steps] == ids
    assert all(s.parent_id == root.span_id for s in steps)
    assert all(h.get("x-api-key") == OTLP_SECRET for h in grpc_receiver.headers("traces"))
    assert {"migration.run.duration", "migration.step.duration", "migration.runs"} <= grpc_receiver.metric_names()
    assert not [r for r in json_records(result.stderr) if r["event"] == "telemetry_export_failed"]
    assert_no_secrets(grpc_receiver.bodies_text(), result.stdout, result.stderr)


ITEMS = "create table items (id int primary key);\ninsert into items select g from generate_series(1, 3) g;\n"


def test_post_check_row_deltas_through_the_cli(migrate_bin, dbs, project, receiver):
    root_dir = project({"operational": {
        "202611010900_create_items.up.sql": ITEMS,
        "202611010900_create_items.down.sql": "drop table items;\n",
    }})
    assert run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", root=root_dir).returncode == 0
    folder = root_dir / "db" / "migrations" / "operational"
    (folder / "202611020900_more_items.up.sql").write_text("insert into items select g from generate_series(4, 7) g;\n")
    (folder / "202611020900_more_items.down.sql").write_text("delete from items where id > 3;\n")

    result = run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", root=root_dir,
                     env=otel_env(receiver.url))
    assert result.returncode == 0, result.output
    spans = receiver.spans()
    root = only(spans, "migration.apply")
    post = only(spans, "migration.post_checks")
    assert post.parent_id == root.span_id
    changed = [a for n, a in post.events if n == "migration.rows_changed"]
    assert [(c["db.collection.name"], c["migration.rows_delta"]) for c in changed] == [("public.items", 4)]
    assert post.attributes["migration.rows_changed"] == root.attributes["migration.rows_changed"] == 4
    (rows,) = [p for p in receiver.points() if p.metric == "migration.rows_changed"]
    assert rows.value == 4 and rows.attributes["migration.component"] == "operational"
    assert_no_secrets(receiver.bodies_text(), result.stdout, result.stderr)


def test_finished_steps_are_exported_while_golang_migrate_works(migrate_bin, dbs, project, receiver):
    """With the SDK's 5 s default batch delay, every span of a short run waited for the exit (on the operator's wall
    time); the wrapper exports every half second, so a finished step leaves while the next one still runs."""
    root_dir = project({"operational": migration_files(
        ("202611010900_first", "create table first_step (id int);\n", "drop table first_step;\n"),
        ("202611020900_slow", "select pg_sleep(2);\n", "select 1;\n"),
    )})
    result = run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", root=root_dir,
                     env=otel_env(receiver.url))
    assert result.returncode == 0, result.output
    steps = {s.attributes["migration.version"]: s for s in receiver.spans() if s.name == "migration.step"}
    first, slow = steps["202611010900_first"], steps["202611020900_slow"]
    assert slow.end_ns - slow.start_ns >= 1_900_000_000
    assert first.arrived_ns < slow.end_ns, "the first step's span was held back until the run ended"


def test_production_approval_denied_and_granted(migrate_bin, dbs, receiver):
    env = otel_env(receiver.url, MIGRATION_ENVIRONMENT="production", MIGRATION_AUTHOR="dev@example.com")
    denied = run_cli("apply", "-c", "analytics", "--env", str(dbs.env_file), "--yes", env=env)
    assert denied.returncode == 4, denied.output
    root = only(receiver.spans(), "migration.apply")
    assert root.status_code == 2 and root.attributes["migration.outcome"] == "refused"
    assert root.attributes["migration.environment"] == "production"
    assert root.event_names().count("approval_denied") == 1  # the note and the error: one event
    assert "approval_granted" not in root.event_names()
    (runs,) = [p for p in receiver.points() if p.metric == "migration.runs"]
    assert runs.attributes["migration.outcome"] == "refused"

    receiver.clear()
    granted = run_cli("apply", "-c", "analytics", "--env", str(dbs.env_file), "--yes",
                      env={**env, "MIGRATION_APPROVED_BY": "reviewer@example.com"})
    assert granted.returncode == 0, granted.output
    spans = receiver.spans()
    root = only(spans, "migration.apply")
    assert root.event("approval_granted")["migration.approver"] == "reviewer@example.com"
    steps = [s for s in spans if s.name == "migration.step"]
    assert steps and all(s.attributes["migration.approved_by"] == "reviewer@example.com" for s in [root, *steps])
    assert_no_secrets(receiver.bodies_text(), denied.output, granted.output)


def test_window_exceeded_mid_step(migrate_bin, dbs, project, receiver):
    root_dir = project({"operational": {
        "202601010000_create_t.up.sql": "create table t(id int primary key);\n",
        "202601010000_create_t.down.sql": "drop table t;\n",
        "202601010100_slow.up.sql": "create table s(id int);\nselect pg_sleep(60);\n",
        "202601010100_slow.down.sql": "drop table s;\n",
    }})
    result = run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", root=root_dir,
                     env=otel_env(receiver.url, MIGRATION_WINDOW_SECONDS="2", MIGRATION_WINDOW_GRACE_SECONDS="1",
                                  MIGRATION_PROGRESS_SECONDS="0.5"))
    assert result.returncode == 5, result.output
    spans = receiver.spans()
    root = only(spans, "migration.apply")
    assert root.status_code == 2 and root.attributes["migration.outcome"] == "guardrail"
    assert root.event_names().count("guardrail_exceeded") == 1  # the note and the error: one event
    steps = {s.attributes["migration.version"]: s for s in spans if s.name == "migration.step"}
    assert steps["202601010000_create_t"].status_code != 2
    slow = steps["202601010100_slow"]
    assert slow.status_code == 2 and slow.parent_id == root.span_id
    # Progress records come from a ticker thread while the step runs: they carry the step's span.
    progress = [r for r in json_records(result.stderr) if r["event"] == "migration_progress"]
    assert progress and {r["span_id"] for r in progress} == {slow.span_id}
    (runs,) = [p for p in receiver.points() if p.metric == "migration.runs"]
    assert runs.attributes["migration.outcome"] == "guardrail"
    assert_no_secrets(receiver.bodies_text(), result.stdout, result.stderr)
