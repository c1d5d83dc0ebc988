"""What the spans carry: the run's and each step's attributes (never a user name or password), the row deltas of a
row-count check, and the events an error becomes."""


from __future__ import annotations


from typing import Any

from migrate_wrapper.telemetry.redact import clean
from migrate_wrapper.events import RowDelta, RunInfo, StepInfo
from migrate_wrapper.telemetry.records import RunSpans


def run_attributes(run: RunInfo, state: RunSpans) -> dict[str, Any]:
    """What the root span and every step span carry; never a user name or password. Built once per run: all of it
    is fixed when the run is created, and a span per step reuses it."""
    if state.attributes is not None:
        return state.attributes
    attributes: dict[str, Any] = {
        "migration.component": run.component,
        "migration.direction": run.direction,
        "migration.dry_run": bool(run.dry_run),
        "migration.environment": run.environment,
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "server.address": clean(run.server_address, 255),
        "db.namespace": clean(run.db_namespace, 255),
    }
    if run.approved_by:
        attributes["migration.approved_by"] = clean(run.approved_by, 255)
    state.attributes = attributes
    return attributes


def attribute_value(value: object) -> Any:
    """A span attribute value from note data: scalars as they are, text cleaned, lists of scalars; else None."""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return [clean(v, 255) for v in value[:100]]
    if isinstance(value, list | tuple) and value and all(isinstance(v, bool | int | float) for v in value):
        return list(value[:100])
    return None


def delta_attributes(delta: RowDelta) -> dict[str, Any]:
    """One table's row change as a span event's attributes (the table name is the event's db.collection.name)."""
    attributes: dict[str, Any] = {"migration.rows.status": delta.status, "migration.rows.exact": delta.exact,
                                  "migration.rows.flagged": delta.flagged,
                                  "migration.rows.partitioned": delta.partitioned}
    if delta.before is not None:
        attributes["migration.rows.before"] = delta.before
    if delta.after is not None:
        attributes["migration.rows.after"] = delta.after
    return attributes


def step_attributes(run: RunInfo, state: RunSpans, step: StepInfo) -> dict[str, Any]:
    attributes = {**run_attributes(run, state), "migration.direction": step.direction, "migration.version": step.id,
                  "migration.version_number": step.version}
    if step.sha256:  # of the file that ran, when the runner knows it
        attributes["migration.file.sha256"] = step.sha256
    return attributes


def error_events(error: BaseException) -> list[tuple[str, dict[str, Any]]]:
    from migrate_wrapper.errors import ApprovalMissing, PreCheckFailed, WindowExceeded

    message = clean(error)
    if isinstance(error, PreCheckFailed):
        return [("pre_check_failed", {"migration.check.name": error.check,
                                      "migration.check.reason": clean(error.reason), "migration.message": message})]
    if isinstance(error, ApprovalMissing):
        return [("approval_denied", {"migration.message": message})]
    if isinstance(error, WindowExceeded):
        return [("guardrail_exceeded", {"migration.message": message})]
    return []
