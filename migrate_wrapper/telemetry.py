"""OpenTelemetry for runs (to be completed by the telemetry work): until then runs carry no trace."""

from __future__ import annotations

from migrate_wrapper.events import Listener, RunInfo


def listener() -> Listener:
    return Listener()


def current_ids(run: RunInfo) -> tuple[str | None, str | None]:
    return run.trace_id, None


def shutdown() -> None:
    return None


def check() -> str:
    raise NotImplementedError
