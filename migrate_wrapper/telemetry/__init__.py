"""OpenTelemetry for runs: one trace per run (root span, pre/post-check spans, one span per step) and a few metrics.

Configuration is the SDK's own: OTEL_EXPORTER_OTLP_ENDPOINT (or the per-signal *_TRACES_/*_METRICS_ENDPOINT),
OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf, the default, or grpc), OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED. The exporters read endpoint, headers, certificates and compression from
the environment themselves; this module only decides whether telemetry is on at all, which exporter class to use, and
bounds every export in time.

Cost rules:
- The wrapper's own process never imports `opentelemetry` for a run. The hooks (spans.py) build the spans (names,
  parents, attributes, events, times, and the ids the log records carry) and send each one, once it has ended,
  through a non-blocking pipe to an exporter process forked at the start of the command (`start_early`). That
  process imports the SDK on the other core while this one starts up, makes each finished span the SDK's public
  `ReadableSpan` and hands it to a `BatchSpanProcessor` (sdk.py). Without it, the SDK's imports (~150 ms), span
  objects and encoding would all be on the run's wall time.
- Without an endpoint (or with OTEL_SDK_DISABLED=true) `listener()` returns a plain `Listener()`, no exporter
  process is kept, and nothing from `opentelemetry` is imported anywhere.
- Export never breaks or stalls a migration: spans go through a BatchSpanProcessor, metrics through a
  PeriodicExportingMetricReader with a long interval, and `shutdown()` has both flushed within one bounded budget
  (MIGRATE_WRAPPER_TELEMETRY_FLUSH_SECONDS, default 5 s) even when the collector is dead. Export failures become ONE
  warning log record (event `telemetry_export_failed`), written by this process; the SDK's own log records never
  reach stderr.

Secrets: span attributes, events and messages carry no user name, password, credential-bearing URL or OTLP header
value; every free text goes through `dburl.mask_text` together with the OTLP header values.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from migrate_wrapper.events import Listener, RunInfo
from migrate_wrapper.telemetry.config import env_value, exporter_environment, read_config
from migrate_wrapper.telemetry.redact import clean

if TYPE_CHECKING:  # imported when telemetry is on: a run without it pays for none of them
    from migrate_wrapper.telemetry.pipe import ExporterProcess
    from migrate_wrapper.telemetry.spans import Recorder

EXPORT_FAILED_EVENT = "telemetry_export_failed"


_exporter: ExporterProcess | None = None
_recorder: Recorder | None = None
_lock = threading.Lock()


def _telemetry_likely(env_file: Path | None) -> bool:
    """Whether an endpoint is (probably) configured: by the environment, or named in the --env file's text."""
    config = read_config()
    if config.disabled:
        return False
    if config.traces is not None or config.metrics is not None:
        return True
    try:
        return env_file is not None and "OTEL_EXPORTER_OTLP_" in env_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def start_early(env_file: Path | None) -> None:
    """Fork the exporter process before the settings are loaded, when telemetry is likely: it then imports the SDK
    while this process imports pydantic and psycopg. `listener()` configures it, or lets it go."""
    global _exporter
    with _lock:
        if _exporter is None and _recorder is None and _telemetry_likely(env_file):
            from migrate_wrapper.telemetry.pipe import fork_exporter

            _exporter = fork_exporter()


# -- the module's entry points ---------------------------------------------------------------------------------------
def listener() -> Listener:
    """The tracer, or a plain no-op Listener when no endpoint is configured (then nothing of OTel is imported, and an
    exporter process forked early by `start_early` is let go)."""
    global _exporter, _recorder
    config = read_config()
    with _lock:
        if config.disabled or (config.traces is None and config.metrics is None):
            if _exporter is not None:
                _exporter.stop()
                _exporter = None
            if config.problems:
                _warn(f"telemetry is off: {'; '.join(config.problems)}", reason="; ".join(config.problems))
            return Listener()
        from migrate_wrapper.telemetry.pipe import fork_exporter
        from migrate_wrapper.telemetry.spans import Recorder, TelemetryListener

        if _recorder is None:
            exporter = _exporter if _exporter is not None else fork_exporter()
            _exporter = None
            _recorder = Recorder(config, exporter)
            if exporter is None:
                _recorder.problems.append("telemetry is off for this run: cannot start the exporter process")
            else:  # the --env file's OTEL_* variables are in the environment by now; the child was forked before
                exporter.send(("config", exporter_environment(os.environ)), now=True)
    return TelemetryListener(_recorder)


def current_ids(run: RunInfo) -> tuple[str | None, str | None]:
    """(trace id, span id) in hex of the span a log record about `run` belongs to: the step span during a step, else
    the open checks span, else the root. The hook that ends a span still gets that span's ids (the tracer runs
    first), so "step finished" and "run finished" records carry the step's and the root's ids."""
    recorder = _recorder
    state = recorder.runs.get(run.run_id) if recorder is not None else None
    if state is None:
        return run.trace_id, None
    # Log records may come from another thread (progress ticks): list() copies a dict's values atomically.
    steps, checks = list(state.steps.values()), list(state.checks.values())
    span = state.last_closed
    if span is None:
        span = steps[-1] if steps else checks[-1] if checks else state.root
    if span is None:
        return run.trace_id, None
    return format(span.trace_id, "032x"), format(span.span_id, "016x")


def shutdown() -> None:
    """Have the exporter process export what is left, within the flush budget even when the collector is dead; report
    a failure once."""
    recorder = _recorder
    if recorder is None or recorder.closed:
        return
    recorder.closed = True
    recorder.end_open()
    reasons: list[str] = []
    if recorder.exporter is not None:
        answer = recorder.exporter.finish(recorder.budget)
        if answer is None:
            reasons.append(f"traces and metrics not exported within {recorder.budget:g}s")
        reasons += answer or []
    reasons += recorder.problems
    if reasons:
        reason = "; ".join(dict.fromkeys(reasons))
        signals = [s for s in (recorder.config.traces, recorder.config.metrics) if s is not None]
        _warn(f"telemetry export failed: {reason}", reason=reason, run=recorder.last_run,
              endpoint=", ".join(sorted({s.safe_endpoint for s in signals})))


def _warn(message: str, *, reason: str, run: RunInfo | None = None, endpoint: str | None = None) -> None:
    """The one warning record about telemetry, with the fields every record carries."""
    import logging

    from migrate_wrapper.events import LOGGER_NAME

    trace_id, span_id = current_ids(run) if run is not None else (None, None)
    logging.getLogger(LOGGER_NAME).warning(clean(message), extra={
        "event": EXPORT_FAILED_EVENT,
        "component": run.component if run else None,
        "direction": run.direction if run else None,
        "dry_run": run.dry_run if run else None,
        "run_id": run.run_id if run else None,
        "trace_id": trace_id,
        "span_id": span_id,
        "environment": run.environment if run else None,
        "reason": clean(reason),
        "endpoint": endpoint,
    })


def check() -> str:
    """Send one test span to the configured endpoint, directly through the exporter; say why if it did not arrive."""
    from migrate_wrapper.errors import WrapperError

    config = read_config()
    if config.disabled:
        raise WrapperError("telemetry is disabled: OTEL_SDK_DISABLED=true", hint="unset it to send telemetry")
    signal = config.traces
    if signal is None:
        if config.problems:
            raise WrapperError(f"telemetry is not usable: {'; '.join(config.problems)}")
        if env_value("OTEL_TRACES_EXPORTER").lower() == "none":
            raise WrapperError("traces are switched off: OTEL_TRACES_EXPORTER=none")
        raise WrapperError(
            "no OTLP endpoint configured",
            hint="set OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) in the --env file or the "
            "environment",
        )
    from migrate_wrapper.telemetry.sdk import send_test_span

    return send_test_span(signal)
