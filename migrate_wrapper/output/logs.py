"""Structured logs: one JSON object per line (python-json-logger), or a readable key=value line.

Streams: JSON records go to stderr in `json` mode and, with --log-file, to that file in every mode. In `text` mode
stderr carries readable records of warnings and errors only, because the human report on stdout already says the rest.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from migrate_wrapper.events import EVENTS, LOGGER_NAME, CheckResult, Listener, RunInfo, StepInfo
from migrate_wrapper.output.ticker import StepWatch

log = logging.getLogger(LOGGER_NAME)

SpanIds = Callable[[RunInfo], tuple["str | None", "str | None"]]  # (trace id, span id) a record about a run carries


def _no_spans(run: RunInfo) -> tuple[str | None, str | None]:
    return run.trace_id, None


# Said on stdout by the console report or by the CLI's final error line already; text mode does not repeat them.
_SHOWN_ELSEWHERE = frozenset(e.name for e in EVENTS.values() if e.shown_elsewhere)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter  # text mode without --log-file does without it

    return JsonFormatter(
        "%(levelname)s %(message)s", rename_fields={"levelname": "level", "message": "msg"}, timestamp=True
    )


def configure(fmt: str, log_file: Path | None, stream: IO[str] | None = None) -> None:
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(_json_formatter())
    else:
        handler.setFormatter(_TextFormatter())
        handler.setLevel(logging.WARNING)
        handler.addFilter(lambda record: getattr(record, "event", None) not in _SHOWN_ELSEWHERE)
    log.addHandler(handler)
    if log_file is not None:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(_json_formatter())
        log.addHandler(file_handler)


def _fields(run: RunInfo, span_ids: SpanIds, **extra: object) -> dict[str, object]:
    trace_id, span_id = span_ids(run)
    return {
        "event": extra.pop("event"),
        "component": run.component,
        "direction": run.direction,
        "dry_run": run.dry_run,
        "run_id": run.run_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "environment": run.environment,
        **extra,
    }


PROGRESS_SECONDS = 10.0  # how often a long step is reported as still running


class LogListener(Listener):
    """`span_ids`: the ids of the span the tracer has open for a run (the CLI hands in telemetry's), if any."""

    def __init__(self, progress_seconds: float = PROGRESS_SECONDS, span_ids: SpanIds = _no_spans) -> None:
        self.progress_seconds = progress_seconds
        self._span_ids = span_ids
        self._watch = StepWatch(progress_seconds, self._progress)

    def _emit(self, run: RunInfo, event: str, message: str, level: int = logging.INFO, **data: object) -> None:
        log.log(level, message, extra=_fields(run, self._span_ids, event=event, **data))

    def _progress(self, run: RunInfo, step: StepInfo, elapsed: float) -> None:
        if elapsed < self.progress_seconds:
            return  # started since the last tick
        left = run.time_left()
        self._emit(
            run, "migration_progress", f"{step.id} still running", version=step.id,
            elapsed_ms=round(elapsed * 1000), window_left_s=round(left) if left else None,
        )

    def run_started(self, run: RunInfo, plan: list[str]) -> None:
        self._emit(
            run, "migration_start", f"{run.command} {run.component} started",
            command=run.command, database=run.database, from_version=run.from_version, target=run.target, plan=plan,
            **({"overridden": list(run.overridden)} if run.overridden else {}),
        )

    def checks_finished(self, run: RunInfo, phase: str, results: list[CheckResult]) -> None:
        worst = "fail" if any(r.status == "fail" for r in results) else "warn" if any(r.status == "warn" for r in results) else "ok"
        self._emit(
            run, f"migration_{phase}_checks", f"{phase}-checks {worst}",
            level=logging.WARNING if worst != "ok" else logging.INFO,
            result=worst,
            checks=[{"name": r.name, "status": r.status, "reason": r.reason, **r.log_fields()} for r in results],
        )

    def step_started(self, run: RunInfo, step: StepInfo) -> None:
        self._emit(run, "migration_step_start", f"{step.direction} {step.id}", version=step.id)
        self._watch.started(run, step)

    def step_finished(self, run: RunInfo, step: StepInfo) -> None:
        self._watch.finished()
        self._emit(
            run, "migration_step_finish", f"{step.direction} {step.id} done", version=step.id,
            duration_ms=round(step.duration_ms or 0.0, 3),
        )

    def note(self, run: RunInfo, event: str, message: str, **data: object) -> None:
        kind = EVENTS.get(event)
        level = logging.WARNING if kind is not None and kind.warning else logging.INFO
        self._emit(run, event, message, level=level, **data)

    def run_finished(self, run: RunInfo, outcome: str, error: BaseException | None) -> None:
        self._watch.close()
        duration = round(run.elapsed_ms(), 3)
        if error is not None:
            self._emit(
                run, "migration_error", str(error), level=logging.ERROR, outcome=outcome,
                error_type=type(error).__name__, duration_ms=duration,
            )
        self._emit(
            run, "migration_finish", f"{run.command} {run.component} {outcome}", outcome=outcome,
            duration_ms=duration, target=run.target,
        )

