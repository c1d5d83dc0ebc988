"""OpenTelemetry tracing for runs (filled in by the telemetry work; until then runs carry no trace)."""

from __future__ import annotations

from migrate_wrapper.events import RunInfo


def current_ids(run: RunInfo) -> tuple[str | None, str | None]:
    return run.trace_id, None
