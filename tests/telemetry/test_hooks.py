"""The tracer's hooks driven directly (in a fresh interpreter each, exporting to a real receiver): post-check row
deltas, approval and guardrail events, failures, masking, and which span a log record belongs to.

These paths are not all reachable through the CLI yet (post-checks and approvals arrive with the guardrails work), so
the hooks are called the way the verbs call them.
"""

from __future__ import annotations

import json
import textwrap

from tests.conftest import CANARY_PASSWORD, run_cli
from tests.telemetry.conftest import OTLP_SECRET, assert_no_secrets, json_records, otel_env, run_python
from tests.telemetry.receivers import closed_port

SCRIPT = textwrap.dedent(
    """
    import json
    from urllib.parse import quote

    from migrate_wrapper.output import logs
    from migrate_wrapper import telemetry
    from migrate_wrapper.config.dburl import DatabaseUrl
    from migrate_wrapper.errors import ApprovalMissing, MigrationFailed, WindowExceeded
    from migrate_wrapper.events import CheckResult, Listeners, RowCounts, RowDelta, RunInfo, StepInfo

    PASSWORD = {password!r}
    OTLP_SECRET = {otlp_secret!r}
    url = DatabaseUrl.parse(f"postgres://canary:{{quote(PASSWORD, safe='')}}@db.example:5432/app", setting="DB_URL")
    logs.configure("json", None)
    listener = Listeners(telemetry.listener(), logs.LogListener(span_ids=telemetry.current_ids))

    def new_run():
        return RunInfo(command="apply", component="operational", direction="up", dry_run=False,
                       environment="production", database=url.masked(), server_address=url.host,
                       db_namespace=url.database, approved_by="alice")

    ids = {{}}
    A, B = StepInfo("202611010900_a", 202611010900, "up"), StepInfo("202611020900_b", 202611020900, "up")

    # 1: approved, two steps, post-checks with row deltas, ok.
    run = new_run()
    ids["before"] = telemetry.current_ids(run)
    run.target = B.id
    listener.run_started(run, [A.id, B.id])
    ids["root"] = telemetry.current_ids(run)
    listener.note(run, "approval_granted", "approved by alice", approver="alice", ticket="CHG-1", extra={{"x": 1}})
    listener.note(run, "dry_run_file", "--- file body, never a span event ---")
    listener.checks_started(run, "pre")
    ids["pre_checks"] = telemetry.current_ids(run)
    listener.check(run, CheckResult("pre", "connectivity", "ok", "PostgreSQL 15"))
    listener.checks_finished(run, "pre", [CheckResult("pre", "connectivity", "ok", "PostgreSQL 15")])
    ids["pre_checks_finished"] = telemetry.current_ids(run)
    listener.step_started(run, A)
    ids["in_step"] = telemetry.current_ids(run)
    listener.output(run, "a line of golang-migrate output")
    listener.step_finished(run, StepInfo(A.id, A.version, "up", duration_ms=12.5))
    ids["step_finished"] = telemetry.current_ids(run)
    listener.output(run, "another line")
    ids["between_steps"] = telemetry.current_ids(run)
    listener.step_started(run, B)
    listener.step_finished(run, StepInfo(B.id, B.version, "up", duration_ms=7.25))
    listener.checks_started(run, "post")
    rows = CheckResult("post", "row_counts", "warn", "orders lost 2 rows", rows=RowCounts((
        RowDelta("orders", 10, 8, -2, True, "lost_rows", True), RowDelta("accounts", 1, 6, 5, True, "changed", False),
        RowDelta("parted", 0, 100, 100, True, "changed", False, partitioned=True),
    ), total_delta=3, rows_changed=7, tables_compared=4))
    listener.check(run, rows)
    late = CheckResult("post", "late_counts", "ok", "reported only at the end", rows=RowCounts(
        (RowDelta("events", 0, 3, 3, True, "changed", False),), total_delta=3, rows_changed=3, tables_compared=1))
    listener.checks_finished(run, "post", [rows, late])
    ids["post_checks"] = telemetry.current_ids(run)
    listener.run_finished(run, "ok", None)
    ids["finished"] = telemetry.current_ids(run)
    ids["trace_id"] = run.trace_id

    # 2: approval denied, by a note and by the error: one event.
    run = new_run()
    run.target = A.id
    listener.run_started(run, [A.id])
    listener.note(run, "approval_denied", "production needs an approval")
    listener.run_finished(run, "refused", ApprovalMissing("production needs MIGRATION_APPROVED_BY"))

    # 3: a step hit its lock timeout, was started again, and the window ran out in the middle of it.
    run = new_run()
    listener.run_started(run, [A.id])
    listener.step_started(run, A)
    listener.note(run, "lock_retry", "lock timeout; retry 2 of 3")
    listener.step_started(run, A)
    listener.run_finished(run, "guardrail", WindowExceeded("window of 600s exceeded during " + A.id))

    # 4: a failure whose message carries secrets, and no run_started at all (e.g. no connection). The verbs mask
    # their messages before raising; the tracer must not rely on it. Only the tracer hears this one: the log listener
    # trusts the verbs' masking.
    tracer = telemetry.listener()
    run = new_run()
    error = MigrationFailed(f"cannot connect to postgres://canary:{{PASSWORD}}@db.example/app with key {{OTLP_SECRET}}"
                            f" and {{PASSWORD}}: password authentication failed for user \\"canary\\"")
    tracer.run_finished(run, "failed", error)
    ids["no_start_trace_id"] = run.trace_id

    print(json.dumps(ids))
    telemetry.shutdown()
    """
)


def run_hooks(receiver, **env):
    code = SCRIPT.format(password=CANARY_PASSWORD, otlp_secret=OTLP_SECRET)
    proc = run_python(code, env=otel_env(receiver.url, **env))
    assert proc.returncode == 0, proc.stderr
    ids = json.loads(proc.stdout)
    return ids, receiver.spans(), proc


def roots_by_outcome(spans):
    return {s.attributes["migration.outcome"]: s for s in spans if s.parent_id == ""}


def test_post_checks_row_deltas_and_span_ids(receiver):
    ids, spans, proc = run_hooks(receiver)
    root = roots_by_outcome(spans)["ok"]
    assert root.attributes["migration.environment"] == "production"
    assert root.attributes["migration.approved_by"] == "alice"
    assert root.attributes["migration.rows_changed"] == 10
    granted = root.event("approval_granted")
    assert granted["migration.approver"] == "alice" and granted["migration.ticket"] == "CHG-1"
    assert "migration.extra" not in granted  # only scalar data goes on spans
    assert "dry_run_file" not in root.event_names()

    trace = [s for s in spans if s.trace_id == root.trace_id]
    post = next(s for s in trace if s.name == "migration.post_checks")
    assert post.parent_id == root.span_id
    assert post.attributes["migration.rows_changed"] == 10
    changed = [attrs for name, attrs in post.events if name == "migration.rows_changed"]
    assert [(c["db.collection.name"], c["migration.rows_delta"]) for c in changed] == [
        ("orders", -2), ("accounts", 5), ("parted", 100), ("events", 3)]
    assert changed[0]["migration.rows.status"] == "lost_rows"
    assert changed[2]["migration.rows.partitioned"] is True  # listed, but its partitions carry the rows: not counted
    checks = [attrs["migration.check.name"] for name, attrs in post.events if name == "migration.check"]
    assert checks == ["row_counts", "late_counts"]
    assert post.attributes["migration.check.result"] == "warn"

    steps = [s for s in trace if s.name == "migration.step"]
    assert [s.attributes["migration.duration_ms"] for s in steps] == [12.5, 7.25]
    assert all(s.attributes["migration.approved_by"] == "alice" for s in steps)
    pre = next(s for s in trace if s.name == "migration.pre_checks")

    # current_ids: the innermost open span; the hook that closes a span still names it (the log record follows).
    assert ids["before"] == [root.trace_id, None]  # before the root span: the run's own trace id, no span
    assert ids["root"] == [root.trace_id, root.span_id] and ids["trace_id"] == root.trace_id
    assert ids["pre_checks"] == ids["pre_checks_finished"] == [root.trace_id, pre.span_id]
    assert ids["in_step"] == ids["step_finished"] == [root.trace_id, steps[0].span_id]
    assert ids["between_steps"] == [root.trace_id, root.span_id]
    assert ids["post_checks"] == [root.trace_id, post.span_id]
    assert ids["finished"] == [root.trace_id, root.span_id]
    records = json_records(proc.stderr)
    assert [r["span_id"] for r in records if r["event"] == "migration_step_finish"] == [s.span_id for s in steps]

    points = receiver.points()
    (rows,) = [p for p in points if p.metric == "migration.rows_changed"]
    assert rows.value == 10 and rows.attributes["migration.environment"] == "production"
    runs = sorted(p.attributes["migration.outcome"] for p in points if p.metric == "migration.runs")
    assert runs == ["failed", "guardrail", "ok", "refused"]
    assert_no_secrets(receiver.bodies_text(), proc.stdout, proc.stderr)


def test_refusals_guardrails_and_masked_failures(receiver):
    ids, spans, proc = run_hooks(receiver)
    roots = roots_by_outcome(spans)

    refused = roots["refused"]
    assert refused.status_code == 2
    assert refused.event_names().count("approval_denied") == 1
    assert refused.event("exception")["exception.type"] == "ApprovalMissing"

    window = roots["guardrail"]
    assert window.status_code == 2 and window.event("guardrail_exceeded")
    attempts = [s for s in spans if s.trace_id == window.trace_id and s.name == "migration.step"]
    assert len(attempts) == 2  # the abandoned attempt and the one the window cut short, both ended and failed
    assert all(s.status_code == 2 and s.end_ns >= s.start_ns for s in attempts)
    assert attempts[0].status_message == "did not finish; started again"

    failed = roots["failed"]  # run_finished without run_started: still one root span, with the error
    assert failed.trace_id == ids["no_start_trace_id"]
    assert failed.attributes["migration.version"] == "none"
    message = failed.event("exception")["exception.message"]
    assert "cannot connect to postgres://db.example/app with key *** and ***" in message
    assert "canary" not in message  # no user name either
    assert_no_secrets(receiver.bodies_text(), failed.status_message, proc.stdout, proc.stderr)


def test_metrics_only(receiver):
    """OTEL_TRACES_EXPORTER=none: no spans and no ids, the same metrics (each post-check counted once)."""
    ids, spans, proc = run_hooks(receiver, OTEL_TRACES_EXPORTER="none")
    assert spans == [] and not receiver.of("traces")
    assert ids["root"][1] is None and ids["in_step"][1] is None  # no span without traces...
    assert ids["root"][0] == ids["in_step"][0] and len(ids["root"][0]) == 32  # ...but the run's trace id
    points = receiver.points()
    (rows,) = [p for p in points if p.metric == "migration.rows_changed"]
    assert rows.value == 10
    assert sum(p.value for p in points if p.metric == "migration.runs") == 4
    assert_no_secrets(receiver.bodies_text(), proc.stdout, proc.stderr)


def test_connection_failure_still_gets_a_span(receiver, tmp_path):
    """No database at all: run_started never comes, run_finished opens and closes the root with the error."""
    env_file = tmp_path / "migrate.env"
    env_file.write_text(f"DB_URL=postgres://canary:Canary-Pw%3A7q%40x%2F%25%23@127.0.0.1:{closed_port()}/app"
                        "?sslmode=disable\n")
    result = run_cli("status", "-c", "operational", "--env", str(env_file), env=otel_env(receiver.url))
    assert result.returncode != 0
    (root,) = receiver.spans()
    assert root.name == "migration.status" and root.status_code == 2
    assert root.attributes["migration.outcome"] == "guardrail"  # the connectivity pre-check failed
    assert root.event("pre_check_failed")["migration.check.name"] == "connectivity"
    assert root.attributes["migration.version"] == "none" and "migration.plan" not in root.attributes
    message = root.event("exception")["exception.message"]
    assert message.startswith("pre-check failed: connectivity: cannot connect to postgres://127.0.0.1:")
    assert [r["trace_id"] for r in json_records(result.stderr) if r["event"] == "migration_finish"] == [root.trace_id]
    assert_no_secrets(receiver.bodies_text(), result.stdout, result.stderr)


OPEN_AT_SHUTDOWN = textwrap.dedent(
    """
    from migrate_wrapper import telemetry
    from migrate_wrapper.events import RunInfo, StepInfo

    run = RunInfo(command="apply", component="operational", direction="up", dry_run=False, environment="dev",
                  database="postgres://db.example/app", server_address="db.example", db_namespace="app")
    listener = telemetry.listener()
    listener.run_started(run, ["1_a"])
    listener.step_started(run, StepInfo("1_a", 1, "up"))
    telemetry.shutdown()  # no step_finished, no run_finished: a hook that never came
    print(run.trace_id)
    """
)


def test_spans_still_open_at_shutdown_are_ended_and_exported(receiver):
    """Spans leave the wrapper once ended; the ones a run never ended are ended at shutdown, not lost."""
    proc = run_python(OPEN_AT_SHUTDOWN, env=otel_env(receiver.url))
    assert proc.returncode == 0, proc.stderr
    spans = receiver.spans()
    assert sorted(s.name for s in spans) == ["migration.apply", "migration.step"]
    assert {s.trace_id for s in spans} == {proc.stdout.strip()}
    assert all(s.end_ns >= s.start_ns > 0 for s in spans)


def test_the_exporter_process_keeps_no_secret_of_the_environment():
    """What the exporter process holds of an environment (as it forks, and what the wrapper sends it later): the
    SDK's, the HTTP and gRPC clients' and TLS variables, none of the wrapper's URLs or passwords."""
    from migrate_wrapper.telemetry.config import exporter_environment

    environ = {
        "DB_URL": f"postgres://canary:{CANARY_PASSWORD}@db/app", "PGPASSWORD": CANARY_PASSWORD,
        "MIGRATION_SCRATCH_URL": f"postgres://canary:{CANARY_PASSWORD}@db/postgres", "ANALYTICS_URL": "x",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=k",
        "MIGRATE_WRAPPER_TELEMETRY_FLUSH_SECONDS": "2", "https_proxy": "http://proxy:3128",
        "SSL_CERT_FILE": "/etc/ca.pem", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": "/etc/ca.pem", "PATH": "/usr/bin",
    }
    kept = exporter_environment(environ)
    assert set(kept) == {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
                         "MIGRATE_WRAPPER_TELEMETRY_FLUSH_SECONDS", "https_proxy", "SSL_CERT_FILE",
                         "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "PATH"}
    assert CANARY_PASSWORD not in repr(kept)


def test_the_configured_sampler_decides_for_the_whole_trace(receiver):
    """OTEL_TRACES_SAMPLER is the SDK's own: always_off exports no span of the run, and its metrics still."""
    ids, spans, proc = run_hooks(receiver, OTEL_TRACES_SAMPLER="always_off")
    assert spans == []
    assert [p for p in receiver.points() if p.metric == "migration.runs"]


EVENT_LIMITS = textwrap.dedent(
    """
    from migrate_wrapper import telemetry
    from migrate_wrapper.events import CheckResult, RunInfo

    run = RunInfo(command="apply", component="operational", direction="up", dry_run=False, environment="dev",
                  database="postgres://db.example/app", server_address="db.example", db_namespace="app")
    listener = telemetry.listener()
    listener.run_started(run, [])
    listener.checks_started(run, "pre")
    results = [CheckResult("pre", f"check_{i}", "ok", f"reason number {i} that is rather long") for i in range(4)]
    for result in results:
        listener.check(run, result)
    listener.checks_finished(run, "pre", results)
    listener.run_finished(run, "ok", None)
    telemetry.shutdown()
    """
)


def test_span_limits_apply_to_events_as_the_sdk_applies_them(receiver):
    """OTEL_SPAN_EVENT_COUNT_LIMIT keeps the newest events and counts the rest; OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT
    cuts event attribute values too (the finished span is built from records, not by a recording Span)."""
    proc = run_python(EVENT_LIMITS, env=otel_env(receiver.url, OTEL_SPAN_EVENT_COUNT_LIMIT="2",
                                                 OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="12"))
    assert proc.returncode == 0, proc.stderr
    (checks,) = [s for s in receiver.spans() if s.name == "migration.pre_checks"]
    assert [attrs["migration.check.name"] for _, attrs in checks.events] == ["check_2", "check_3"]
    assert checks.dropped_events == 2
    assert all(len(attrs["migration.check.reason"]) == 12 for _, attrs in checks.events)


def test_traces_only_backends_get_no_metrics_request(receiver):
    """OTEL_METRICS_EXPORTER=none (a Jaeger takes no metrics): spans as usual, no metrics POST, no warning."""
    ids, spans, proc = run_hooks(receiver, OTEL_METRICS_EXPORTER="none")
    assert spans and not receiver.of("metrics")
    assert "telemetry_export_failed" not in proc.stderr
