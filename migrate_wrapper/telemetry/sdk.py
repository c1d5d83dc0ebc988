"""The OpenTelemetry SDK side of telemetry: a process of its own that exports the run's finished spans and its metric
points (see `telemetry` for why, and spans.py for the recording side).

`serve()` is the exporter process's whole life: it imports the SDK while the wrapper starts up, takes the
configuration (the wrapper's OTEL_* variables once its settings are loaded), makes each finished span it is sent
the SDK's public `ReadableSpan` (with the ids the wrapper chose, so its log records carry the same) for a
`BatchSpanProcessor`, records each metric point on the SDK's instruments, and on "shutdown" flushes within the
budget and answers with why an export failed, if one did. It never writes to the wrapper's stdout or stderr.
`check()` in `telemetry` sends its test span with the exporters here, in the wrapper's own process.
"""

from __future__ import annotations

import json
import os
import pickle
import threading
import time
from typing import Any

from migrate_wrapper.telemetry.config import SCOPE_NAME, Config, Signal, env_value, flush_seconds, read_config
from migrate_wrapper.telemetry.exporters import (
    SDK_LOGS, Watch, export_timeout, grpc_failure, metric_exporter, span_exporter,
)
from migrate_wrapper.telemetry.records import SpanRecord
from migrate_wrapper.telemetry.redact import clean

DEFAULT_SERVICE_NAME = "db-migrate-cli"
EXPORT_DELAY_MS = 500  # the batch span processor's schedule delay unless OTEL_BSP_SCHEDULE_DELAY is set

# Histogram buckets in seconds (OpenTelemetry's unit for durations): a step takes milliseconds to many minutes.
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


def _resource():
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource

    from migrate_wrapper import __version__

    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; ours is only the default name.
    resource = Resource.create({SERVICE_VERSION: __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


# -- the exporter process ------------------------------------------------------------------------------------------
class _Runtime:
    """The SDK's span processor, meter provider and exporters for this run, and each trace's sampling decision."""

    def __init__(self, config: Config) -> None:
        self.budget = flush_seconds()
        self.watches: list[Watch] = []
        self.problems: list[str] = list(config.problems)
        self.processor = None  # the BatchSpanProcessor, when traces are on
        self.meter_provider = None
        self.instruments: dict[str, Any] = {}
        SDK_LOGS.install()
        resource = _resource()
        if config.traces is not None:
            self._start_traces(config.traces, resource)
        if config.metrics is not None:
            self._start_metrics(config.metrics, resource)

    def _start_traces(self, signal: Signal, resource) -> None:
        from opentelemetry.sdk.trace import SpanLimits, TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        from migrate_wrapper import __version__

        watch = Watch(signal, export_timeout("traces", self.budget))
        # The SDK's 5 s default delay would leave every span of a short run to the final flush, on the run's wall
        # time; exported every half second they go out while golang-migrate works. OTEL_BSP_SCHEDULE_DELAY still wins.
        delay = None if env_value("OTEL_BSP_SCHEDULE_DELAY") else EXPORT_DELAY_MS
        self.processor = BatchSpanProcessor(span_exporter(signal, watch), schedule_delay_millis=delay)
        self.watches.append(watch)
        self.resource = resource
        self.scope = InstrumentationScope(SCOPE_NAME, __version__)
        self.limits = SpanLimits()  # OTEL_SPAN_*_LIMIT, as a TracerProvider would apply them
        # The sampler a TracerProvider would use (OTEL_TRACES_SAMPLER): the provider is built only to read it.
        self.sampler = TracerProvider(resource=resource, shutdown_on_exit=False).sampler
        self.sampled: dict[int, bool] = {}  # trace id → decision

    def _start_metrics(self, signal: Signal, resource) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        from migrate_wrapper import __version__

        watch = Watch(signal, export_timeout("metrics", self.budget))
        exporter = metric_exporter(signal, watch)
        # A CLI run is short: one export, by the final collection in shutdown(); the interval only guards long runs.
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=15 * 60_000)
        provider = MeterProvider(metric_readers=[reader], resource=resource, shutdown_on_exit=False)
        self.watches.append(watch)
        self.meter_provider = provider
        meter = provider.get_meter(SCOPE_NAME, __version__)

        def histogram(name: str, description: str):
            try:
                return meter.create_histogram(name, unit="s", description=description,
                                              explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS)
            except TypeError:  # an SDK without bucket advice
                return meter.create_histogram(name, unit="s", description=description)

        self.instruments = {
            "run_duration": histogram("migration.run.duration", "Wall time of one migrate-wrapper run"),
            "step_duration": histogram("migration.step.duration", "golang-migrate's time for one migration step"),
            "runs": meter.create_counter("migration.runs", unit="{run}", description="Runs by outcome"),
            "rows_changed": meter.create_counter(
                "migration.rows_changed", unit="{row}", description="Rows changed, as the post-checks counted them"
            ),
        }

    # -- what the wrapper sends (see spans.Recorder) -------------------------------------------------------------
    def apply(self, op: tuple) -> None:
        kind = op[0]
        if kind == "metric":
            _, name, value, attributes = op
            if name in self.instruments:
                target = self.instruments[name]
                (target.add if name in ("runs", "rows_changed") else target.record)(value, attributes)
        elif kind == "trace" and self.processor is not None:
            _, trace_id, name, attributes = op
            self._decide(trace_id, name, attributes)
        elif kind == "span" and self.processor is not None:
            span: SpanRecord = op[1]
            if self.sampled.get(span.trace_id) or (span.trace_id not in self.sampled and
                                                   self._decide(span.trace_id, span.name, span.attributes)):
                self.processor.on_end(self._readable(span))

    def _decide(self, trace_id: int, name: str, attributes: dict) -> bool:
        """The sampler's decision for a trace, taken as the SDK takes it: once, for the root span, from its name and
        attributes (sent when the root starts: its children end, and leave, before it). Every span follows it."""
        if trace_id not in self.sampled:
            result = self.sampler.should_sample(None, trace_id, name, attributes=attributes)
            self.sampled[trace_id] = result.decision.is_sampled()
        return self.sampled[trace_id]

    def _readable(self, span: SpanRecord):
        from opentelemetry.attributes import BoundedAttributes
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.util import BoundedList
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        limits, flags = self.limits, TraceFlags(TraceFlags.SAMPLED)
        context = SpanContext(span.trace_id, span.span_id, is_remote=False, trace_flags=flags)
        parent = (SpanContext(span.trace_id, span.parent_id, is_remote=False, trace_flags=flags)
                  if span.parent_id is not None else None)
        if span.status is None:
            status = Status(StatusCode.UNSET)
        else:
            status = Status(StatusCode.OK) if span.status[0] else Status(StatusCode.ERROR, span.status[1])
        # As a recording Span keeps them: the newest max_events (the dropped ones counted), each event's attributes
        # bounded by count and value length.
        events = BoundedList(limits.max_events)
        events.extend([Event(name, BoundedAttributes(limits.max_event_attributes, attributes, immutable=True,
                                                     max_value_len=limits.max_attribute_length), timestamp=at)
                       for name, attributes, at in span.events])
        return ReadableSpan(
            span.name, context=context, parent=parent, resource=self.resource, kind=SpanKind.INTERNAL,
            attributes=BoundedAttributes(limits.max_span_attributes, span.attributes, immutable=True,
                                         max_value_len=limits.max_span_attribute_length),
            events=events, status=status, start_time=span.start_ns, end_time=span.end_ns,
            instrumentation_scope=self.scope,
        )

    def shutdown(self) -> list[str]:
        """Export what is left, within the flush budget even when the collector is dead; why it failed, if it did."""
        deadline = time.monotonic() + self.budget
        failures: list[str] = []

        def quietly(name: str, work) -> None:  # noqa: ANN001
            try:
                work()
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{name}: {type(exc).__name__}")

        def flush_traces() -> None:
            self.processor.force_flush(int(self.budget * 1000))
            self.processor.shutdown()

        def flush_metrics() -> None:
            # The reader's last collection exports once; a force_flush before it would export the same points twice.
            self.meter_provider.shutdown(timeout_millis=self.budget * 1000)

        # Both signals at once, each on a daemon thread: the process never waits beyond the budget for either.
        threads = []
        if self.processor is not None:
            threads.append(threading.Thread(target=quietly, args=("traces", flush_traces),
                                            name="telemetry-flush-traces", daemon=True))
        if self.meter_provider is not None:
            threads.append(threading.Thread(target=quietly, args=("metrics", flush_metrics),
                                            name="telemetry-flush-metrics", daemon=True))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        late = [t.name.removeprefix("telemetry-flush-") for t in threads if t.is_alive()]
        reasons = [f"{w.signal.kind}: {w.explain()}" for w in self.watches if w.failed]
        if late:
            reasons.append(f"{' and '.join(late)} not exported within {self.budget:g}s")
        return reasons + failures + self.problems


def _warm_up() -> None:
    """What every exporter process needs, imported while the wrapper is still starting (the HTTP exporters: the
    default protocol)."""
    import opentelemetry.exporter.otlp.proto.http.metric_exporter  # noqa: F401
    import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
    import opentelemetry.sdk.metrics  # noqa: F401
    import opentelemetry.sdk.metrics.export  # noqa: F401
    import opentelemetry.sdk.resources  # noqa: F401
    import opentelemetry.sdk.trace  # noqa: F401
    import opentelemetry.sdk.trace.export  # noqa: F401
    import requests  # noqa: F401


def serve(ops_fd: int, result_fd: int) -> None:
    """The exporter process: warm up, take the configuration, export what it is sent, flush, answer. Never returns
    normally into the wrapper's code: the caller ends the process."""
    try:
        _warm_up()
    except Exception:  # noqa: BLE001, S110 - the set-up below reports what is missing
        pass
    reasons: list[str] = []
    runtime: _Runtime | None = None
    with os.fdopen(ops_fd, "rb") as ops:
        try:
            first = pickle.load(ops)
        except (EOFError, pickle.UnpicklingError, OSError):
            return  # the wrapper went away, or needs no telemetry after all
        if first[0] != "config":
            return
        os.environ.clear()
        os.environ.update(first[1])  # config.exporter_environment() of the wrapper's, once its settings are loaded
        try:
            runtime = _Runtime(read_config())
        except Exception as exc:  # noqa: BLE001 - a broken exporter set-up must not stop the migration
            reasons.append(f"telemetry set-up failed: {type(exc).__name__}: {clean(exc, 300)}")
        while True:
            try:
                op = pickle.load(ops)
            except (EOFError, pickle.UnpicklingError, OSError):
                break  # the wrapper ended without a shutdown: flush what there is
            if op[0] == "shutdown":
                break
            if runtime is not None:
                try:
                    runtime.apply(op)
                except Exception as exc:  # noqa: BLE001 - reported once, at shutdown
                    runtime.problems.append(f"{type(exc).__name__} while exporting {op[0]}")
    if runtime is not None:
        reasons += runtime.shutdown()
    with os.fdopen(result_fd, "w", encoding="utf-8") as result:
        result.write(json.dumps(list(dict.fromkeys(reasons))))


def send_test_span(signal: Signal) -> str:
    """telemetry-check, in the wrapper's own process: one span straight through the exporter; why it failed if so."""
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    from migrate_wrapper import __version__
    from migrate_wrapper.errors import WrapperError

    SDK_LOGS.install()
    budget = flush_seconds()
    watch = Watch(signal, export_timeout("traces", budget))
    try:
        exporter = span_exporter(signal, watch)
    except Exception as exc:  # noqa: BLE001 - e.g. an unreadable certificate file
        raise WrapperError(f"cannot set up the OTLP exporter: {type(exc).__name__}: {clean(exc, 300)}") from None
    provider = TracerProvider(sampler=ALWAYS_ON, resource=_resource(), shutdown_on_exit=False)  # whatever the sampler
    span = provider.get_tracer(SCOPE_NAME, __version__).start_span(
        "telemetry.check", context=Context(), attributes={"migration.check.name": "telemetry"}
    )
    span.end()
    trace_id = format(span.get_span_context().trace_id, "032x")
    logged_before = SDK_LOGS.count
    started = time.monotonic()
    try:
        result = exporter.export([span])
    except Exception as exc:  # noqa: BLE001
        watch.export_failed(exc)
        result = None
    finally:
        try:
            exporter.shutdown()
        except Exception:  # noqa: BLE001, S110 - nothing left to report
            pass
    took_ms = (time.monotonic() - started) * 1000.0
    if result is SpanExportResult.SUCCESS:
        return (f"telemetry ok: test span (trace {trace_id}) accepted by {signal.safe_endpoint} "
                f"over {signal.protocol} in {took_ms:.0f} ms")
    grpc = grpc_failure(SDK_LOGS.records_since(logged_before), "traces") if signal.protocol == "grpc" else None
    reason = watch.explain_grpc(*grpc) if grpc is not None else watch.explain()
    if "headers sent" in reason or "no headers were sent" in reason:
        hint = f"check the credentials in {signal.headers_var or 'OTEL_EXPORTER_OTLP_HEADERS'}"
    else:
        hint = f"the endpoint comes from {signal.endpoint_var}"
    raise WrapperError(f"telemetry check failed: {reason}", hint=hint)
