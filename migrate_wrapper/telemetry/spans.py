"""The recording side, in the wrapper's own process: the run's hooks become spans (names, parents, attributes,
events, times and ids), each sent whole to the exporter process (pipe.py) once it has ended, and metric points."""

from __future__ import annotations

import functools
import random
import time
from typing import Any

from migrate_wrapper.telemetry.config import Config, flush_seconds
from migrate_wrapper.telemetry.pipe import ExporterProcess
from migrate_wrapper.telemetry.redact import clean
from migrate_wrapper.events import EVENTS, CheckResult, Listener, RunInfo, StepInfo
from migrate_wrapper.telemetry.attributes import (
    attribute_value, delta_attributes, error_events, run_attributes, step_attributes,
)
from migrate_wrapper.telemetry.records import RunSpans, SpanRecord

# Outcomes (errors.outcome_of, plus the verbs' own noop / dry_run) → the closed set of the runs counter.
OUTCOME_METRIC = {
    "ok": "ok",
    "noop": "ok",
    "dry_run": "ok",
    "failed": "failed",
    "interrupted": "failed",
    "refused": "refused",
    "guardrail": "guardrail",
}
# `note()` events that become events on the run's root span.
ROOT_NOTE_EVENTS = frozenset(e.name for e in EVENTS.values() if e.on_root_span)


class Recorder:
    def __init__(self, config: Config, exporter: ExporterProcess | None) -> None:
        self.config = config
        self.exporter = exporter
        self.budget = flush_seconds()
        self.traces = config.traces is not None
        self.problems: list[str] = list(config.problems)
        self.runs: dict[str, RunSpans] = {}
        self.open: dict[int, SpanRecord] = {}  # started, not ended yet: by span id
        self.last_run: RunInfo | None = None
        self.closed = False
        self._random = random.Random()

    def send(self, op: tuple, *, soon: bool = False) -> None:
        if self.exporter is not None:
            self.exporter.send(op, soon=soon)

    def spans(self, run: RunInfo) -> RunSpans:
        self.last_run = run
        state = self.runs.get(run.run_id)
        if state is None:
            state = self.runs[run.run_id] = RunSpans()
        return state

    def _new_id(self, bits: int) -> int:
        while True:  # zero is the invalid id
            value = self._random.getrandbits(bits)
            if value:
                return value

    def start(self, name: str, parent: SpanRecord | None, attributes: dict, start_ns: int | None = None, *,
              trace_id: int | None = None) -> SpanRecord:
        """A span under `parent`, or a root span in trace `trace_id`."""
        span = SpanRecord(parent.trace_id if parent is not None else trace_id or self._new_id(128), self._new_id(64),
                          parent.span_id if parent is not None else None, name,
                          time.time_ns() if start_ns is None else start_ns, dict(attributes))
        self.open[span.span_id] = span
        return span

    def set(self, span: SpanRecord, attributes: dict) -> None:
        if not span.ended:
            span.attributes.update(attributes)

    def event(self, span: SpanRecord, name: str, attributes: dict) -> None:
        if not span.ended:
            span.events.append((name, attributes, time.time_ns()))

    def status(self, span: SpanRecord, ok: bool, message: str = "") -> None:
        if not span.ended:
            span.status = (ok, message)

    def end(self, span: SpanRecord) -> None:
        """The span leaves whole, soon (pipe.ExporterProcess): what a long step after it does cannot hold it back."""
        if not span.ended:
            span.end_ns = time.time_ns()
            self.open.pop(span.span_id, None)
            self.send(("span", span), soon=True)

    def end_open(self) -> None:
        """At shutdown: a run whose run_finished never came (an error in a hook, a stop) still ends its spans."""
        for span in list(self.open.values()):
            self.end(span)

    def ensure_root(self, run: RunInfo, state: RunSpans) -> SpanRecord | None:
        if state.root is None and self.traces:
            started_ns = time.time_ns() - int(run.elapsed_ms() * 1_000_000)  # the run began before connecting
            state.root = self.start(
                f"migration.{run.command}", None,
                {**run_attributes(run, state), "migration.command": run.command, "migration.run_id": run.run_id},
                start_ns=started_ns, trace_id=int(run.trace_id, 16),
            )
            # The sampler decides for the whole trace from its root, as it starts (telemetry/sdk.py).
            self.send(("trace", state.root.trace_id, state.root.name, dict(state.root.attributes)))
        return state.root

    def child(self, run: RunInfo, state: RunSpans, name: str, attributes: dict,
              start_ns: int | None = None) -> SpanRecord | None:
        root = self.ensure_root(run, state)
        return None if root is None else self.start(name, root, attributes, start_ns)

    def metric_attributes(self, run: RunInfo) -> dict[str, str]:
        return {
            "migration.component": run.component,
            "migration.direction": run.direction,
            "migration.environment": run.environment,
            "migration.command": run.command,
        }

    def record(self, instrument: str, value: float, attributes: dict) -> None:
        if self.config.metrics is not None:
            self.send(("metric", instrument, value, attributes))


def _hook(method):
    """Every hook: never raises (telemetry must not break a run); clears the span the previous hook just closed."""

    @functools.wraps(method)
    def guarded(self, run: RunInfo, /, *args: object, **kwargs: object) -> None:  # data may be named run or state
        recorder = self.recorder
        if recorder.closed:
            return
        try:
            state = recorder.spans(run)
            state.last_closed = None
            method(self, recorder, run, state, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported once, at shutdown
            recorder.problems.append(f"{type(exc).__name__} in the {method.__name__} hook")

    return guarded


class TelemetryListener(Listener):
    """Turns the run's hooks into spans and metrics. Must come first among the listeners: it opens the spans whose
    ids the log records carry (see `current_ids`)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    @_hook
    def run_started(self, rec: Recorder, run: RunInfo, state: RunSpans, plan: list[str]) -> None:
        root = rec.ensure_root(run, state)
        if root is None:
            return
        attributes: dict[str, Any] = {"migration.version": run.target or "none", "migration.steps_planned": len(plan)}
        if plan:
            attributes["migration.plan"] = [str(p) for p in plan[:200]]
        if run.from_version:
            attributes["migration.from_version"] = run.from_version
        rec.set(root, attributes)

    @_hook
    def checks_started(self, rec: Recorder, run: RunInfo, state: RunSpans, phase: str) -> None:
        self._checks_span(rec, run, state, phase)

    def _checks_span(self, rec: Recorder, run: RunInfo, state: RunSpans, phase: str) -> SpanRecord | None:
        span = state.checks.get(phase)
        if span is None:
            span = rec.child(run, state, f"migration.{phase}_checks", {
                "migration.check.phase": phase,
                "migration.component": run.component,
                "migration.direction": run.direction,
            })
            if span is not None:
                state.checks[phase] = span
        return span

    @_hook
    def check(self, rec: Recorder, run: RunInfo, state: RunSpans, result: CheckResult) -> None:
        self._check(rec, run, state, result)

    def _check(self, rec: Recorder, run: RunInfo, state: RunSpans, result: CheckResult) -> None:
        state.checks_seen.setdefault(result.phase, set()).add(id(result))
        span = self._checks_span(rec, run, state, result.phase)
        if span is not None:
            rec.event(span, "migration.check", {
                "migration.check.name": result.name,
                "migration.check.phase": result.phase,
                "migration.check.status": result.status,
                "migration.check.reason": clean(result.reason),
            })
        if result.rows is None:
            return
        for delta in result.rows.deltas:
            if span is not None:
                rec.event(span, "migration.rows_changed", {
                    "db.collection.name": clean(delta.table, 255),
                    "migration.rows_delta": delta.delta,
                    "migration.check.name": result.name,
                    **delta_attributes(delta),
                })
        changed = result.rows.rows_changed  # partitioned parents left out: their partitions carry the rows
        state.checks_rows[result.phase] = state.checks_rows.get(result.phase, 0) + changed
        state.rows_changed = (state.rows_changed or 0) + changed
        rec.record("rows_changed", changed, rec.metric_attributes(run))

    @_hook
    def checks_finished(self, rec: Recorder, run: RunInfo, state: RunSpans, phase: str,
                        results: list[CheckResult]) -> None:
        seen = state.checks_seen.pop(phase, set())
        for result in results:
            if id(result) not in seen:  # reported only at the end: count it once here
                self._check(rec, run, state, result)
        span = state.checks.pop(phase, None)
        if span is None:
            return
        counts = {s: sum(1 for r in results if r.status == s) for s in ("ok", "warn", "fail")}
        worst = "fail" if counts["fail"] else "warn" if counts["warn"] else "ok"
        attributes: dict[str, Any] = {"migration.check.result": worst}
        for status, count in counts.items():
            attributes[f"migration.checks.{status}"] = count
        if phase in state.checks_rows:
            attributes["migration.rows_changed"] = state.checks_rows[phase]
        rec.set(span, attributes)
        failed = next((r for r in results if r.status == "fail"), None)
        if failed is not None:
            rec.status(span, False, clean(f"{failed.name}: {failed.reason}", 255))
        rec.end(span)
        state.last_closed = span

    @_hook
    def step_started(self, rec: Recorder, run: RunInfo, state: RunSpans, step: StepInfo) -> None:
        key = (step.id, step.direction)
        abandoned = state.steps.pop(key, None)
        if abandoned is not None:  # started again without finishing: that attempt failed (e.g. a lock timeout)
            started = state.steps_started.pop(key, None)
            if started is not None:
                rec.set(abandoned, {"migration.duration_ms": round((time.monotonic() - started) * 1000.0, 3)})
            rec.status(abandoned, False, "did not finish; started again")
            rec.end(abandoned)
        span = rec.child(run, state, "migration.step", step_attributes(run, state, step))
        if span is not None:
            state.steps[key] = span
        state.steps_started[key] = time.monotonic()

    @_hook
    def step_finished(self, rec: Recorder, run: RunInfo, state: RunSpans, step: StepInfo) -> None:
        key = (step.id, step.direction)
        started = state.steps_started.pop(key, None)
        measured = (time.monotonic() - started) * 1000.0 if started is not None else None
        duration = step.duration_ms if step.duration_ms is not None else measured
        span = state.steps.pop(key, None)
        if span is None:  # a finish without a start: the span still belongs in the trace
            start_ns = time.time_ns() - int((duration or 0.0) * 1_000_000)
            span = rec.child(run, state, "migration.step", step_attributes(run, state, step), start_ns=start_ns)
        if span is not None:
            rec.set(span, {"migration.duration_ms": round(duration or 0.0, 3)})
            rec.end(span)
            state.last_closed = span
        if duration is not None:
            rec.record("step_duration", duration / 1000.0,
                       rec.metric_attributes(run) | {"migration.direction": step.direction})

    @_hook
    def output(self, rec: Recorder, run: RunInfo, state: RunSpans, line: str) -> None:
        return None  # golang-migrate's lines go to the log, not to spans; the hook only clears `last_closed`

    @_hook
    def note(self, rec: Recorder, run: RunInfo, state: RunSpans, event: str, message: str, /,
             **data: object) -> None:
        if event not in ROOT_NOTE_EVENTS:
            return
        root = rec.ensure_root(run, state)
        if root is None:
            return
        attributes: dict[str, Any] = {"migration.message": clean(message)}
        for key, value in data.items():
            converted = attribute_value(value)
            if converted is not None:
                attributes[key if "." in key else f"migration.{key}"] = converted
        rec.event(root, event, attributes)
        state.root_events.add(event)

    @_hook
    def run_finished(self, rec: Recorder, run: RunInfo, state: RunSpans, outcome: str,
                     error: BaseException | None) -> None:
        duration = run.elapsed_ms()
        metric_attributes = rec.metric_attributes(run) | {"migration.outcome": OUTCOME_METRIC.get(outcome, "failed")}
        rec.record("run_duration", duration / 1000.0, metric_attributes)
        rec.record("runs", 1, metric_attributes)
        root = rec.ensure_root(run, state)  # also when run_started never came (e.g. no connection)
        if root is None:
            return
        message = clean(error) if error is not None else ""
        for key, span in list(state.steps.items()):  # a step that never finished is the one that failed
            if error is not None:
                rec.status(span, False, message[:255])
            started = state.steps_started.pop(key, None)
            if started is not None:
                rec.set(span, {"migration.duration_ms": round((time.monotonic() - started) * 1000.0, 3)})
            rec.end(span)
        state.steps.clear()
        for span in list(state.checks.values()):
            rec.end(span)
        state.checks.clear()

        attributes: dict[str, Any] = {"migration.version": run.target or "none", "migration.outcome": outcome,
                                      "migration.duration_ms": round(duration, 3)}
        if state.rows_changed is not None:
            attributes["migration.rows_changed"] = state.rows_changed
        if run.reached is not None:  # read from the database as the run ended
            attributes["migration.version.reached"] = run.reached[0] or "none"
            attributes["migration.dirty"] = run.reached[1]
        rec.set(root, attributes)
        if error is not None:
            for name, event_attributes in error_events(error):
                if name not in state.root_events:
                    rec.event(root, name, event_attributes)
                    state.root_events.add(name)
            rec.event(root, "exception", {
                "exception.type": type(error).__name__,
                "exception.message": message,
                "exception.escaped": True,
            })
            rec.status(root, False, message[:255])
        else:
            rec.status(root, True)
        rec.end(root)
        state.last_closed = root
