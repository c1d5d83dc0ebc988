"""A dead, silent or refusing collector never breaks or stalls a run: bounded delay, one warning, same exit code."""

from __future__ import annotations

import time

import pytest

from migrate_wrapper.telemetry.config import DEFAULT_FLUSH_SECONDS
from tests.conftest import run_cli
from tests.telemetry.conftest import OTLP_SECRET, assert_no_secrets, json_records, otel_env
from tests.telemetry.receivers import SilentCollector, closed_port

pytestmark = pytest.mark.integration

SLACK_SECONDS = 3.0  # interpreter start, OpenTelemetry import and a busy 2-core machine


def timed_status(dbs, env=None):
    started = time.monotonic()
    result = run_cli("status", "-c", "operational", "--env", str(dbs.env_file), env=env)
    return result, time.monotonic() - started


def export_failures(result) -> list[dict]:
    return [r for r in json_records(result.stderr) if r["event"] == "telemetry_export_failed"]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_dead_collector_costs_at_most_the_flush_bound(migrate_bin, dbs, protocol):
    baseline, plain = timed_status(dbs)
    endpoint = f"http://127.0.0.1:{closed_port()}"
    dead, slow = timed_status(dbs, env=otel_env(endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol))
    print(f"{protocol}: status without telemetry {plain:.2f}s, with a dead collector {slow:.2f}s: +{slow - plain:.2f}s")

    assert dead.returncode == baseline.returncode == 0, dead.output
    assert slow - plain < DEFAULT_FLUSH_SECONDS + SLACK_SECONDS
    (warning,) = export_failures(dead)  # exactly one, for both signals
    assert warning["level"] == "WARNING"
    assert f"traces: connection refused by {endpoint}" in warning["reason"], warning
    assert f"metrics: connection refused by {endpoint}" in warning["reason"], warning
    for key in ("component", "direction", "dry_run", "run_id", "trace_id", "span_id"):
        assert key in warning
    assert warning["component"] == "operational" and warning["trace_id"]
    # The SDK's own error records and tracebacks stay off stderr: every stderr line is one of our JSON records.
    assert all(line.startswith("{") for line in dead.stderr.splitlines()), dead.stderr
    assert_no_secrets(dead.stdout, dead.stderr)


def test_silent_collector_is_cut_off_at_the_configured_bound(migrate_bin, dbs):
    """A collector that accepts and never answers: only the export timeouts and the flush bound end the wait."""
    silent = SilentCollector()
    try:
        baseline, plain = timed_status(dbs)
        result, slow = timed_status(dbs, env=otel_env(silent.url, MIGRATE_WRAPPER_TELEMETRY_FLUSH_SECONDS="2"))
    finally:
        silent.close()
    print(f"status without telemetry {plain:.2f}s, with a silent collector {slow:.2f}s: +{slow - plain:.2f}s")
    assert result.returncode == 0, result.output
    assert slow - plain < 2 + SLACK_SECONDS
    (warning,) = export_failures(result)
    assert "no answer from" in warning["reason"] or "not exported within" in warning["reason"], warning
    assert_no_secrets(result.stdout, result.stderr)


def test_refusing_collector_names_the_headers_not_their_values(migrate_bin, dbs, receiver):
    receiver.status = 401
    result, _ = timed_status(dbs, env=otel_env(receiver.url))
    assert result.returncode == 0, result.output
    assert receiver.refused and all(h.get("x-api-key") == OTLP_SECRET for _, h in receiver.refused)
    (warning,) = export_failures(result)
    assert "HTTP 401" in warning["reason"] and "x-api-key" in warning["reason"]
    assert_no_secrets(result.stdout, result.stderr)


def test_text_mode_warns_once_on_stderr(migrate_bin, dbs):
    result = run_cli("status", "-c", "operational", "--env", str(dbs.env_file), "--log-format", "text",
                     env=otel_env(f"http://127.0.0.1:{closed_port()}"))
    assert result.returncode == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: telemetry export failed"), result.stderr
