"""The OpenTelemetry SDK side of telemetry: a process of its own that turns the run's recorded spans and metric points
into SDK spans and instruments and exports them (see `telemetry` for why, and for the recording side).

`serve()` is the exporter process's whole life: it imports the SDK while the wrapper starts up, takes the
configuration (the wrapper's environment once its settings are loaded), replays every operation it is sent through
the SDK (the span and trace ids are the ones the wrapper chose, so its log records carry the same), and on
"shutdown" flushes within the budget and answers with why an export failed, if one did. It never writes to the
wrapper's stdout or stderr. `check()` in `telemetry` uses the exporter helpers here in the wrapper's own process.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import threading
import time
from collections import deque
from typing import Any

from migrate_wrapper.telemetry import SCOPE_NAME, _config, _Config, _env, _Signal, clean, flush_seconds

DEFAULT_SERVICE_NAME = "db-migrate-cli"
MAX_DEFAULT_EXPORT_SECONDS = 1.5
EXPORT_DELAY_MS = 500  # the batch span processor's schedule delay unless OTEL_BSP_SCHEDULE_DELAY is set

# Histogram buckets in ms: a migration step takes milliseconds to many minutes.
_MS_BUCKETS = (5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000,
               600_000, 1_800_000)


def _export_timeout(kind: str, budget: float) -> float:
    """Seconds one export may take (retries included): at most half the flush budget, lower if the operator says.

    The OTLP exporters default to 10 s with retries and backoff; the Python SDK reads OTEL_EXPORTER_OTLP_TIMEOUT in
    seconds (not milliseconds as the specification says). Never above 1.5 s by default: a collector that accepts
    connections and never answers then costs a run at most ~2 s, imports included (bench/ measures it)."""
    cap = max(0.1, min(budget / 2, MAX_DEFAULT_EXPORT_SECONDS))
    for name in (f"OTEL_EXPORTER_OTLP_{kind.upper()}_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        raw = _env(name)
        if raw:
            try:
                wanted = float(raw)
            except ValueError:
                return cap
            return min(cap, wanted) if wanted > 0 else cap
    return cap


def _header_names(signal: _Signal) -> list[str]:
    if not signal.headers_var:
        return []
    from opentelemetry.util.re import parse_env_headers  # the SDK's own parser, as the exporters use it

    return sorted(parse_env_headers(os.environ.get(signal.headers_var, ""), liberal=True))


# -- what went wrong with an export, for one clear sentence ----------------------------------------------------------
class _Watch:
    """What one signal's exporter saw: the HTTP status or exception of its requests, and whether any export failed."""

    def __init__(self, signal: _Signal, timeout: float) -> None:
        self.signal = signal
        self.timeout = timeout
        self.failed = False
        self.status: tuple[int, str] | None = None
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def saw_status(self, code: int, reason: str | None) -> None:
        with self.lock:
            self.status, self.error = (code, reason or ""), None

    def saw_error(self, error: BaseException) -> None:
        with self.lock:
            self.error, self.status = error, None

    def export_failed(self, error: BaseException | None = None) -> None:
        with self.lock:
            self.failed = True
            if error is not None:
                self.error = error

    def explain(self) -> str:
        """Why the last export failed, in one sentence without secrets."""
        endpoint = self.signal.safe_endpoint
        if self.status is not None and self.status[0] >= 400:
            code, reason = self.status
            sentence = f"the collector at {endpoint} answered HTTP {code}{' ' + clean(reason, 80) if reason else ''}"
            if code in (401, 403):
                sentence += "; " + self._headers_clause()
            return sentence
        if self.error is not None:
            return _explain_exception(self.error, endpoint, self.timeout)
        grpc = _grpc_failure(_SDK_LOGS.records_since(0), self.signal.kind)
        if grpc is not None:
            code, details = grpc
            return self.explain_grpc(code, details)
        return f"export to {endpoint} failed"

    def _headers_clause(self) -> str:
        names = _header_names(self.signal)
        if not names:
            return "no headers were sent (OTEL_EXPORTER_OTLP_HEADERS is not set)"
        return f"headers sent (from {self.signal.headers_var}): {', '.join(names)}"

    def explain_grpc(self, code: str, details: str) -> str:
        endpoint = self.signal.safe_endpoint
        lowered = details.lower()
        if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return f"the collector at {endpoint} answered gRPC {code}; {self._headers_clause()}"
        if code == "UNAVAILABLE" and "refused" in lowered:
            return f"connection refused by {endpoint}"
        if any(word in lowered for word in ("ssl", "tls", "handshake", "certificate")):
            return f"TLS error talking to {endpoint}: {clean(details, 200)}"
        if code == "DEADLINE_EXCEEDED":
            return f"no answer from {endpoint} within {self.timeout:g}s"
        return f"the collector at {endpoint} answered gRPC {code}: {clean(details, 200)}"


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException] = [error]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        for nxt in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
    return seen


def _explain_exception(error: BaseException, endpoint: str, timeout: float) -> str:
    import ssl

    chain = _chain(error)
    names = {type(e).__name__ for e in chain}
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSLError" in names:
        ssl_error = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
        detail = getattr(ssl_error, "verify_message", None) or getattr(ssl_error, "reason", None) or "handshake failed"
        return f"TLS error talking to {endpoint}: {clean(detail, 200)}"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return f"connection refused by {endpoint}"
    if any(isinstance(e, TimeoutError) for e in chain) or any("Timeout" in n for n in names):
        return f"no answer from {endpoint} within {timeout:g}s"
    os_error = next((e for e in reversed(chain) if isinstance(e, OSError) and e.strerror), None)
    if os_error is not None:
        return f"cannot reach {endpoint}: {clean(os_error.strerror, 200)}"
    return f"export to {endpoint} failed: {type(error).__name__}"


def _grpc_failure(records: list[logging.LogRecord], kind: str) -> tuple[str, str] | None:
    """(status code name, details) from the gRPC exporter's own records about `kind` (traces | metrics), if any.

    The gRPC exporter keeps the RpcError to itself; its "Failed to export" and "Transient error" records name the
    signal and carry the status code, with the error details as the last argument.
    """
    for record in reversed(records):
        if not record.name.startswith("opentelemetry.exporter.otlp.proto.grpc"):
            continue
        args = record.args if isinstance(record.args, tuple) else ()
        if kind not in [a for a in args if isinstance(a, str)]:
            continue
        code = next((a for a in args if type(a).__name__ == "StatusCode"), None)
        if code is not None:
            details = str(args[-1]) if args[-1] is not code else ""
            return str(getattr(code, "name", code)), details
    return None


# The gRPC exporter's logger drops a record that repeats another within 20 s (its DuplicateFilter), so the traces
# exporter's failure record is lost when the metrics exporter's said the same: a filter placed before it sees both.
_GRPC_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.grpc.exporter"


class _SdkLogSink(logging.Handler):
    """Keeps the SDK's own log records (exporter errors, retries, tracebacks) away from stderr; they feed `explain`."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: deque[logging.LogRecord] = deque(maxlen=100)
        self.count = 0
        self._records_lock = threading.Lock()

    def keep(self, record: logging.LogRecord) -> bool:
        with self._records_lock:
            self.records.append(record)
            self.count += 1
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != _GRPC_EXPORTER_LOGGER:  # those were kept by the filter already
            self.keep(record)

    def records_since(self, count: int) -> list[logging.LogRecord]:
        with self._records_lock:
            fresh = self.count - count
            return list(self.records)[-fresh:] if fresh > 0 else []

    def install(self) -> None:
        sdk = logging.getLogger("opentelemetry")
        if self not in sdk.handlers:
            sdk.addHandler(self)
        sdk.propagate = False  # the SDK's records (and tracebacks) never reach the root logger or stderr
        grpc_logger = logging.getLogger(_GRPC_EXPORTER_LOGGER)
        if self.keep not in grpc_logger.filters:
            grpc_logger.filters.insert(0, self.keep)


_SDK_LOGS = _SdkLogSink()


# -- exporters -----------------------------------------------------------------------------------------------------
def _credential_provider_set() -> bool:
    return any(k.startswith("OTEL_PYTHON_EXPORTER_OTLP_HTTP") and k.endswith("CREDENTIAL_PROVIDER") and v
               for k, v in os.environ.items())


def _recording_session(watch: _Watch):
    """A requests.Session (the HTTP exporter's public `session=` parameter) that tells `watch` what each POST saw."""
    import requests

    class RecordingSession(requests.Session):
        def request(self, method, url, *args, **kwargs):  # noqa: ANN001, ANN202 - requests' own signature
            try:
                response = super().request(method, url, *args, **kwargs)
            except Exception as exc:
                watch.saw_error(exc)
                raise
            watch.saw_status(response.status_code, response.reason)
            return response

    return RecordingSession()


def _span_exporter(signal: _Signal, watch: _Watch):
    """The OTLP span exporter, configured from the environment by the SDK itself; only the timeout is ours."""
    if signal.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        return GrpcSpanExporter(timeout=watch.timeout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    session = None if _credential_provider_set() else _recording_session(watch)
    return OTLPSpanExporter(timeout=watch.timeout, session=session)


def _metric_exporter(signal: _Signal, watch: _Watch):
    if signal.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter

        return GrpcMetricExporter(timeout=watch.timeout)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    session = None if _credential_provider_set() else _recording_session(watch)
    return OTLPMetricExporter(timeout=watch.timeout, session=session)


def _watched_span_exporter(inner, watch: _Watch):
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class WatchedSpanExporter(SpanExporter):
        def export(self, spans):  # noqa: ANN001, ANN202
            if watch.failed:  # spans go out in batches during the run: after one failure, the rest would only wait
                return SpanExportResult.FAILURE  # as long again at exit (the warning already says spans were lost)
            try:
                result = inner.export(spans)
            except Exception as exc:  # an exporter bug must not reach the batch processor's logger.exception
                watch.export_failed(exc)
                return SpanExportResult.FAILURE
            if result is not SpanExportResult.SUCCESS:
                watch.export_failed()
            return result

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis)

    return WatchedSpanExporter()


def _watched_metric_exporter(inner, watch: _Watch):
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    class WatchedMetricExporter(MetricExporter):
        def __init__(self) -> None:
            # The reader takes temporality and aggregation preferences from the exporter: keep the OTLP exporter's.
            super().__init__(
                preferred_temporality=getattr(inner, "_preferred_temporality", None),
                preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
            )

        def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):  # noqa: ANN001, ANN202
            try:
                result = inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            except Exception as exc:
                watch.export_failed(exc)
                return MetricExportResult.FAILURE
            if result is not MetricExportResult.SUCCESS:
                watch.export_failed()
            return result

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return inner.force_flush(timeout_millis=timeout_millis)

        def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
            inner.shutdown()

    return WatchedMetricExporter()


def _resource():
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource

    from migrate_wrapper import __version__

    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; ours is only the default name.
    resource = Resource.create({SERVICE_VERSION: __version__})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


# -- the exporter process ------------------------------------------------------------------------------------------
def _given_ids():
    """An IdGenerator that hands out the ids the wrapper chose (random, as the SDK's own) for the next span."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class GivenIds(RandomIdGenerator):
        trace_id = 0
        span_id = 0

        def generate_trace_id(self) -> int:
            return self.trace_id

        def generate_span_id(self) -> int:
            return self.span_id

    return GivenIds()


class _Runtime:
    """The SDK's providers and exporters for this run, and the spans replayed so far (by the wrapper's span ids)."""

    def __init__(self, config: _Config) -> None:
        self.budget = flush_seconds()
        self.watches: list[_Watch] = []
        self.problems: list[str] = list(config.problems)
        self.tracer_provider = self.tracer = None
        self.meter_provider = None
        self.instruments: dict[str, Any] = {}
        self.spans: dict[int, Any] = {}
        self.ids = _given_ids()
        _SDK_LOGS.install()
        resource = _resource()
        if config.traces is not None:
            self._start_traces(config.traces, resource)
        if config.metrics is not None:
            self._start_metrics(config.metrics, resource)

    def _start_traces(self, signal: _Signal, resource) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from migrate_wrapper import __version__

        watch = _Watch(signal, _export_timeout("traces", self.budget))
        exporter = _watched_span_exporter(_span_exporter(signal, watch), watch)
        provider = TracerProvider(resource=resource, shutdown_on_exit=False, id_generator=self.ids)
        # The SDK's 5 s default delay would leave every span of a short run to the final flush, on the run's wall
        # time; exported every half second they go out while golang-migrate works. OTEL_BSP_SCHEDULE_DELAY still wins.
        delay = None if _env("OTEL_BSP_SCHEDULE_DELAY") else EXPORT_DELAY_MS
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay))
        self.watches.append(watch)
        self.tracer_provider = provider
        self.tracer = provider.get_tracer(SCOPE_NAME, __version__)

    def _start_metrics(self, signal: _Signal, resource) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        from migrate_wrapper import __version__

        watch = _Watch(signal, _export_timeout("metrics", self.budget))
        exporter = _watched_metric_exporter(_metric_exporter(signal, watch), watch)
        # A CLI run is short: one export, by the final collection in shutdown(); the interval only guards long runs.
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=15 * 60_000)
        provider = MeterProvider(metric_readers=[reader], resource=resource, shutdown_on_exit=False)
        self.watches.append(watch)
        self.meter_provider = provider
        meter = provider.get_meter(SCOPE_NAME, __version__)

        def histogram(name: str, description: str):
            try:
                return meter.create_histogram(name, unit="ms", description=description,
                                              explicit_bucket_boundaries_advisory=_MS_BUCKETS)
            except TypeError:  # an SDK without bucket advice
                return meter.create_histogram(name, unit="ms", description=description)

        self.instruments = {
            "run_duration": histogram("migration.run.duration", "Wall time of one migrate-wrapper run"),
            "step_duration": histogram("migration.step.duration", "golang-migrate's time for one migration step"),
            "runs": meter.create_counter("migration.runs", unit="{run}", description="Runs by outcome"),
            "rows_changed": meter.create_counter(
                "migration.rows_changed", unit="{row}", description="Rows changed, as the post-checks counted them"
            ),
        }

    # -- the operations the wrapper sends (see telemetry._Recorder) ---------------------------------------------
    def apply(self, op: tuple) -> None:
        kind = op[0]
        if kind == "metric":
            _, name, value, attributes = op
            if name in self.instruments:
                target = self.instruments[name]
                (target.add if name in ("runs", "rows_changed") else target.record)(value, attributes)
            return
        if self.tracer is None:
            return
        if kind == "span":
            _, span_id, parent_id, name, attributes, start_ns, trace_id = op
            from opentelemetry import trace
            from opentelemetry.context import Context

            parent = self.spans.get(parent_id) if parent_id else None
            context = trace.set_span_in_context(parent) if parent is not None else Context()
            self.ids.trace_id, self.ids.span_id = trace_id, span_id
            self.spans[span_id] = self.tracer.start_span(name, context=context, attributes=attributes,
                                                         start_time=start_ns)
            return
        span = self.spans.get(op[1])
        if span is None:
            return
        if kind == "set":
            span.set_attributes(op[2])
        elif kind == "event":
            span.add_event(op[2], op[3], timestamp=op[4])
        elif kind == "status":
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.OK) if op[2] else Status(StatusCode.ERROR, op[3]))
        elif kind == "end":
            span.end(end_time=op[2])
            del self.spans[op[1]]

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
            for span in list(self.spans.values()):  # a run whose run_finished never came still ends its spans
                span.end()
            self.tracer_provider.force_flush(int(self.budget * 1000))
            self.tracer_provider.shutdown()

        def flush_metrics() -> None:
            # The reader's last collection exports once; a force_flush before it would export the same points twice.
            self.meter_provider.shutdown(timeout_millis=self.budget * 1000)

        # Both signals at once, each on a daemon thread: the process never waits beyond the budget for either.
        threads = []
        if self.tracer_provider is not None:
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
    """The exporter process: warm up, take the configuration, replay the operations, flush, answer. Never returns
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
        os.environ.update(first[1])  # the wrapper's environment once its settings (and --env file) are loaded
        try:
            runtime = _Runtime(_config())
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


def send_test_span(signal: _Signal) -> str:
    """telemetry-check, in the wrapper's own process: one span straight through the exporter; why it failed if so."""
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    from migrate_wrapper import __version__
    from migrate_wrapper.errors import WrapperError

    _SDK_LOGS.install()
    budget = flush_seconds()
    watch = _Watch(signal, _export_timeout("traces", budget))
    try:
        exporter = _span_exporter(signal, watch)
    except Exception as exc:  # noqa: BLE001 - e.g. an unreadable certificate file
        raise WrapperError(f"cannot set up the OTLP exporter: {type(exc).__name__}: {clean(exc, 300)}") from None
    provider = TracerProvider(sampler=ALWAYS_ON, resource=_resource(), shutdown_on_exit=False)  # whatever the sampler
    span = provider.get_tracer(SCOPE_NAME, __version__).start_span(
        "telemetry.check", context=Context(), attributes={"migration.check.name": "telemetry"}
    )
    span.end()
    trace_id = format(span.get_span_context().trace_id, "032x")
    logged_before = _SDK_LOGS.count
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
    grpc = _grpc_failure(_SDK_LOGS.records_since(logged_before), "traces") if signal.protocol == "grpc" else None
    reason = watch.explain_grpc(*grpc) if grpc is not None else watch.explain()
    if "headers sent" in reason or "no headers were sent" in reason:
        hint = f"check the credentials in {signal.headers_var or 'OTEL_EXPORTER_OTLP_HEADERS'}"
    else:
        hint = f"the endpoint comes from {signal.endpoint_var}"
    raise WrapperError(f"telemetry check failed: {reason}", hint=hint)
