"""OpenTelemetry for runs: one trace per run (root span, pre/post-check spans, one span per step) and a few metrics.

Configuration is the SDK's own: OTEL_EXPORTER_OTLP_ENDPOINT (or the per-signal *_TRACES_/*_METRICS_ENDPOINT),
OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf, the default, or grpc), OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED. The exporters read endpoint, headers, certificates and compression from
the environment themselves; this module only decides whether telemetry is on at all, which exporter class to use, and
bounds every export in time.

Cost rules:
- Without an endpoint (or with OTEL_SDK_DISABLED=true) `listener()` returns a plain `Listener()` and nothing from
  `opentelemetry` is imported: every OpenTelemetry import below lives inside a function.
- Export never breaks or stalls a migration: spans go through a BatchSpanProcessor, metrics through a
  PeriodicExportingMetricReader with a long interval, and `shutdown()` flushes both within one bounded budget
  (MIGRATE_WRAPPER_TELEMETRY_FLUSH_SECONDS, default 5 s) even when the collector is dead. Export failures become ONE
  warning log record (event `telemetry_export_failed`); the SDK's own log records never reach stderr.

Secrets: span attributes, events and messages carry no user name, password, credential-bearing URL or OTLP header
value; every free text goes through `dburl.mask_text` together with the OTLP header values.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from migrate_wrapper.events import CheckResult, Listener, RunInfo, StepInfo

DEFAULT_SERVICE_NAME = "db-migrate-cli"
FLUSH_SECONDS_ENV = "MIGRATE_WRAPPER_TELEMETRY_FLUSH_SECONDS"
DEFAULT_FLUSH_SECONDS = 5.0
MAX_DEFAULT_EXPORT_SECONDS = 1.5
EXPORT_DELAY_MS = 500  # the batch span processor's schedule delay unless OTEL_BSP_SCHEDULE_DELAY is set
EXPORT_FAILED_EVENT = "telemetry_export_failed"
SCOPE_NAME = "migrate_wrapper"

# Outcomes of verbs/common.py `outcome_of` (plus the verbs' own noop / dry_run) → the closed set of the runs counter.
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
ROOT_NOTE_EVENTS = frozenset({"approval_granted", "approval_denied", "guardrail_exceeded"})
SUPPORTED_PROTOCOLS = ("http/protobuf", "grpc")

# Histogram buckets in ms: a migration step takes milliseconds to many minutes.
_MS_BUCKETS = (5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000,
               600_000, 1_800_000)
_MAX_TEXT = 1_000  # longest free text put on a span


# -- configuration (environment only: nothing from opentelemetry is imported here) -------------------------------
@dataclass(frozen=True)
class _Signal:
    kind: str  # traces | metrics
    protocol: str
    endpoint: str  # what the exporter will use, for messages (may still hold userinfo: print `safe_endpoint`)
    endpoint_var: str
    headers_var: str  # the variable the exporter takes its headers from ("" when none is set)

    @property
    def safe_endpoint(self) -> str:
        return safe_endpoint(self.endpoint)

    def header_names(self) -> list[str]:
        if not self.headers_var:
            return []
        from opentelemetry.util.re import parse_env_headers  # the SDK's own parser, as the exporters use it

        return sorted(parse_env_headers(os.environ.get(self.headers_var, ""), liberal=True))


@dataclass(frozen=True)
class _Config:
    disabled: bool
    traces: _Signal | None
    metrics: _Signal | None
    problems: tuple[str, ...] = ()


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _signal(kind: str) -> tuple[_Signal | None, str | None]:
    upper = kind.upper()
    if _env(f"OTEL_{upper}_EXPORTER").lower() == "none":
        return None, None
    specific, generic = f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
    if not (_env(specific) or _env(generic)):
        return None, None
    protocol = (_env(f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL") or _env("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").lower()
    if protocol not in SUPPORTED_PROTOCOLS:
        return None, f"{kind}: OTLP protocol {protocol!r} is not supported (use http/protobuf or grpc)"
    if _env(specific):
        endpoint, endpoint_var = _env(specific), specific
    elif protocol == "grpc":
        endpoint, endpoint_var = _env(generic), generic
    else:  # the HTTP exporters append the signal's path to the generic endpoint
        endpoint, endpoint_var = f"{_env(generic).removesuffix('/')}/v1/{kind}", generic
    headers_vars = (f"OTEL_EXPORTER_OTLP_{upper}_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    headers_var = next((v for v in headers_vars if _env(v)), "")
    return _Signal(kind, protocol, endpoint, endpoint_var, headers_var), None


def _config() -> _Config:
    if _env("OTEL_SDK_DISABLED").lower() == "true":
        return _Config(True, None, None)
    traces, traces_problem = _signal("traces")
    metrics, metrics_problem = _signal("metrics")
    return _Config(False, traces, metrics, tuple(p for p in (traces_problem, metrics_problem) if p))


def flush_seconds() -> float:
    raw = _env(FLUSH_SECONDS_ENV)
    try:
        value = float(raw) if raw else DEFAULT_FLUSH_SECONDS
    except ValueError:
        return DEFAULT_FLUSH_SECONDS
    return value if 0 < value <= 600 else DEFAULT_FLUSH_SECONDS


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


# -- secrets ---------------------------------------------------------------------------------------------------
def _header_values() -> list[str]:
    values: list[str] = []
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                 "OTEL_EXPORTER_OTLP_METRICS_HEADERS"):
        raw = os.environ.get(name)
        if not raw:
            continue
        for item in raw.split(","):
            if "=" in item:
                value = item.split("=", 1)[1].strip()
                values += [value, unquote(value)]
    return [v for v in values if v]


_URL_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@")


def clean(text: object, limit: int = _MAX_TEXT) -> str:
    """Free text made safe for telemetry: no known DB secret, no URL userinfo, no OTLP header value."""
    from migrate_wrapper.dburl import mask_text

    out = _URL_USERINFO.sub(r"\1", mask_text(str(text), _header_values()))  # telemetry gets no user names either
    return out if len(out) <= limit else out[: limit - 1] + "…"


def safe_endpoint(url: str) -> str:
    """An endpoint for messages: scheme, host, port and path; never userinfo, query or fragment."""
    url = url.strip()
    if "://" not in url:
        return url.rsplit("@", 1)[-1].split("?", 1)[0].split("/", 1)[0]
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid endpoint>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


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
        names = self.signal.header_names()
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


# -- the per-process runtime ---------------------------------------------------------------------------------------
@dataclass
class _RunSpans:
    root: Any = None
    checks: dict[str, Any] = field(default_factory=dict)  # phase → open checks span
    checks_seen: dict[str, list[int]] = field(default_factory=dict)  # phase → id() of results seen via check()
    checks_rows: dict[str, int] = field(default_factory=dict)  # phase → rows changed (phases that counted rows)
    steps: dict[tuple[str, str], Any] = field(default_factory=dict)  # (step id, direction) → open step span
    steps_started: dict[tuple[str, str], float] = field(default_factory=dict)
    last_closed: Any = None  # the span the current hook just ended: its log record still belongs to it
    root_events: set[str] = field(default_factory=set)
    rows_changed: int | None = None  # None: no check counted rows


class _Runtime:
    def __init__(self, config: _Config) -> None:
        self.config = config
        self.budget = flush_seconds()
        self.watches: list[_Watch] = []
        self.problems: list[str] = list(config.problems)
        self.runs: dict[str, _RunSpans] = {}
        self.last_run: RunInfo | None = None
        self.closed = False
        self.tracer_provider = self.tracer = None
        self.meter_provider = None
        self.instruments: dict[str, Any] = {}
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
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)  # shutdown() is ours, and bounded
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

    # -- spans ---------------------------------------------------------------------------------------------------
    def spans(self, run: RunInfo) -> _RunSpans:
        self.last_run = run
        state = self.runs.get(run.run_id)
        if state is None:
            state = self.runs[run.run_id] = _RunSpans()
        return state

    def ensure_root(self, run: RunInfo, state: _RunSpans):
        if state.root is None and self.tracer is not None:
            from opentelemetry.context import Context

            started_ns = time.time_ns() - int(run.elapsed_ms() * 1_000_000)  # the run began before connecting
            state.root = self.tracer.start_span(
                f"migration.{run.command}",
                context=Context(),  # a new trace for every run, whatever is current
                attributes={**_run_attributes(run), "migration.command": run.command, "migration.run_id": run.run_id},
                start_time=started_ns,
            )
            run.trace_id = format(state.root.get_span_context().trace_id, "032x")
        return state.root

    def child(self, run: RunInfo, state: _RunSpans, name: str, attributes: dict, start_time: int | None = None):
        root = self.ensure_root(run, state)
        if root is None:
            return None
        from opentelemetry import trace

        return self.tracer.start_span(
            name, context=trace.set_span_in_context(root), attributes=attributes, start_time=start_time
        )

    def metric_attributes(self, run: RunInfo) -> dict[str, str]:
        return {
            "migration.component": run.component,
            "migration.direction": run.direction,
            "migration.environment": run.environment,
            "migration.command": run.command,
        }

    def record(self, instrument: str, value: float, attributes: dict) -> None:
        if instrument in self.instruments:
            target = self.instruments[instrument]
            (target.add if instrument in ("runs", "rows_changed") else target.record)(value, attributes)


_RUN_ATTRIBUTES: dict[str, dict[str, Any]] = {}  # run id → its attributes, built once (a span per step reuses them)


def _run_attributes(run: RunInfo) -> dict[str, Any]:
    """What the root span and every step span carry; never a user name or password."""
    cached = _RUN_ATTRIBUTES.get(run.run_id)  # everything below is fixed when the run is created
    if cached is not None:
        return cached
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
    _RUN_ATTRIBUTES[run.run_id] = attributes
    return attributes


def _attribute_value(value: object) -> Any:
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


def _deltas(result: CheckResult) -> list[tuple[str, int, dict[str, Any]]]:
    """`data["deltas"]`: a list of {"table": …, "delta": …, …} dicts, as the post-checks report row counts.

    Each comes back as (table, delta, the entry's other scalar fields as event attributes)."""
    entries = (result.data or {}).get("deltas")
    if not isinstance(entries, list):
        return []
    out: list[tuple[str, int, dict[str, Any]]] = []
    for entry in entries:
        if not (isinstance(entry, dict) and "table" in entry and "delta" in entry):
            continue
        try:
            delta = int(entry["delta"])
        except (TypeError, ValueError):
            continue
        extra = {f"migration.rows.{k}": v for k, v in entry.items()
                 if k not in ("table", "delta") and isinstance(k, str) and isinstance(v, bool | int | float)}
        extra.update({f"migration.rows.{k}": clean(v, 255) for k, v in entry.items()
                      if k not in ("table", "delta") and isinstance(k, str) and isinstance(v, str)})
        out.append((str(entry["table"]), delta, extra))
    return out


def _rows_changed(result: CheckResult, deltas: list[tuple[str, int, dict[str, Any]]]) -> int:
    """The result's own `rows_changed` when it gives one, else the sum of |delta| (partitioned parents left out:
    their partitions carry the rows)."""
    given = (result.data or {}).get("rows_changed")
    if isinstance(given, int) and not isinstance(given, bool):
        return abs(given)
    return sum(abs(delta) for _, delta, extra in deltas if not extra.get("migration.rows.partitioned"))


_runtime: _Runtime | None = None
_runtime_lock = threading.Lock()


def _hook(method):
    """Every hook: never raises (telemetry must not break a run); clears the span the previous hook just closed."""

    @functools.wraps(method)
    def guarded(self, run: RunInfo, *args: object, **kwargs: object) -> None:
        runtime = _runtime
        if runtime is None or runtime.closed:
            return
        try:
            state = runtime.spans(run)
            state.last_closed = None
            method(self, runtime, run, state, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported once, at shutdown
            runtime.problems.append(f"{type(exc).__name__} in the {method.__name__} hook")

    return guarded


class TelemetryListener(Listener):
    """Turns the run's hooks into spans and metrics. Must come first among the listeners: it opens the spans whose
    ids the log records carry (see `current_ids`)."""

    @_hook
    def run_started(self, rt: _Runtime, run: RunInfo, state: _RunSpans, plan: list[str]) -> None:
        root = rt.ensure_root(run, state)
        if root is None:
            return
        root.set_attribute("migration.version", run.target or "none")
        root.set_attribute("migration.steps_planned", len(plan))
        if plan:
            root.set_attribute("migration.plan", [str(p) for p in plan[:200]])
        if run.from_version:
            root.set_attribute("migration.from_version", run.from_version)

    @_hook
    def checks_started(self, rt: _Runtime, run: RunInfo, state: _RunSpans, phase: str) -> None:
        self._checks_span(rt, run, state, phase)

    def _checks_span(self, rt: _Runtime, run: RunInfo, state: _RunSpans, phase: str):
        span = state.checks.get(phase)
        if span is None:
            span = rt.child(run, state, f"migration.{phase}_checks", {
                "migration.check.phase": phase,
                "migration.component": run.component,
                "migration.direction": run.direction,
            })
            if span is not None:
                state.checks[phase] = span
        return span

    @_hook
    def check(self, rt: _Runtime, run: RunInfo, state: _RunSpans, result: CheckResult) -> None:
        self._check(rt, run, state, result)

    def _check(self, rt: _Runtime, run: RunInfo, state: _RunSpans, result: CheckResult) -> None:
        state.checks_seen.setdefault(result.phase, []).append(id(result))
        span = self._checks_span(rt, run, state, result.phase)
        if span is not None:
            span.add_event("migration.check", {
                "migration.check.name": result.name,
                "migration.check.phase": result.phase,
                "migration.check.status": result.status,
                "migration.check.reason": clean(result.reason),
            })
        deltas = _deltas(result)
        for table, delta, extra in deltas:
            if span is not None:
                span.add_event("migration.rows_changed", {
                    "db.collection.name": clean(table, 255),
                    "migration.rows_delta": delta,
                    "migration.check.name": result.name,
                    **extra,
                })
        if isinstance((result.data or {}).get("deltas"), list):  # this check counted rows (maybe none changed)
            changed = _rows_changed(result, deltas)
            state.checks_rows[result.phase] = state.checks_rows.get(result.phase, 0) + changed
            state.rows_changed = (state.rows_changed or 0) + changed
            rt.record("rows_changed", changed, rt.metric_attributes(run))

    @_hook
    def checks_finished(self, rt: _Runtime, run: RunInfo, state: _RunSpans, phase: str,
                        results: list[CheckResult]) -> None:
        seen = state.checks_seen.pop(phase, [])
        for result in results:
            if id(result) not in seen:  # reported only at the end: count it once here
                self._check(rt, run, state, result)
        state.checks_seen.pop(phase, None)
        span = state.checks.pop(phase, None)
        if span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        counts = {s: sum(1 for r in results if r.status == s) for s in ("ok", "warn", "fail")}
        worst = "fail" if counts["fail"] else "warn" if counts["warn"] else "ok"
        span.set_attribute("migration.check.result", worst)
        for status, count in counts.items():
            span.set_attribute(f"migration.checks.{status}", count)
        if phase in state.checks_rows:
            span.set_attribute("migration.rows_changed", state.checks_rows[phase])
        failed = next((r for r in results if r.status == "fail"), None)
        if failed is not None:
            span.set_status(Status(StatusCode.ERROR, clean(f"{failed.name}: {failed.reason}", 255)))
        span.end()
        state.last_closed = span

    @_hook
    def step_started(self, rt: _Runtime, run: RunInfo, state: _RunSpans, step: StepInfo) -> None:
        key = (step.id, step.direction)
        abandoned = state.steps.pop(key, None)
        if abandoned is not None:  # started again without finishing: that attempt failed (e.g. a lock timeout)
            from opentelemetry.trace import Status, StatusCode

            started = state.steps_started.pop(key, None)
            if started is not None:
                abandoned.set_attribute("migration.duration_ms", round((time.monotonic() - started) * 1000.0, 3))
            abandoned.set_status(Status(StatusCode.ERROR, "did not finish; started again"))
            abandoned.end()
        span = rt.child(run, state, "migration.step", _step_attributes(run, step))
        if span is not None:
            state.steps[key] = span
        state.steps_started[key] = time.monotonic()

    @_hook
    def step_finished(self, rt: _Runtime, run: RunInfo, state: _RunSpans, step: StepInfo) -> None:
        key = (step.id, step.direction)
        started = state.steps_started.pop(key, None)
        measured = (time.monotonic() - started) * 1000.0 if started is not None else None
        duration = step.duration_ms if step.duration_ms is not None else measured
        span = state.steps.pop(key, None)
        if span is None:  # a finish without a start: the span still belongs in the trace
            start_ns = time.time_ns() - int((duration or 0.0) * 1_000_000)
            span = rt.child(run, state, "migration.step", _step_attributes(run, step), start_time=start_ns)
        if span is not None:
            span.set_attribute("migration.duration_ms", round(duration or 0.0, 3))
            span.end()
            state.last_closed = span
        if duration is not None:
            rt.record("step_duration", duration, rt.metric_attributes(run) | {"migration.direction": step.direction})

    @_hook
    def output(self, rt: _Runtime, run: RunInfo, state: _RunSpans, line: str) -> None:
        return None  # golang-migrate's lines go to the log, not to spans; the hook only clears `last_closed`

    @_hook
    def note(self, rt: _Runtime, run: RunInfo, state: _RunSpans, event: str, message: str, **data: object) -> None:
        if event not in ROOT_NOTE_EVENTS:
            return
        root = rt.ensure_root(run, state)
        if root is None:
            return
        attributes: dict[str, Any] = {"migration.message": clean(message)}
        for key, value in data.items():
            converted = _attribute_value(value)
            if converted is not None:
                attributes[key if "." in key else f"migration.{key}"] = converted
        root.add_event(event, attributes)
        state.root_events.add(event)

    @_hook
    def run_finished(self, rt: _Runtime, run: RunInfo, state: _RunSpans, outcome: str,
                     error: BaseException | None) -> None:
        duration = run.elapsed_ms()
        metric_attributes = rt.metric_attributes(run) | {"migration.outcome": OUTCOME_METRIC.get(outcome, "failed")}
        rt.record("run_duration", duration, metric_attributes)
        rt.record("runs", 1, metric_attributes)
        root = rt.ensure_root(run, state)  # also when run_started never came (e.g. no connection)
        if root is None:
            return
        from opentelemetry.trace import Status, StatusCode

        message = clean(error) if error is not None else ""
        for key, span in list(state.steps.items()):  # a step that never finished is the one that failed
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, message[:255]))
            started = state.steps_started.pop(key, None)
            if started is not None:
                span.set_attribute("migration.duration_ms", round((time.monotonic() - started) * 1000.0, 3))
            span.end()
        state.steps.clear()
        for span in list(state.checks.values()):
            span.end()
        state.checks.clear()

        root.set_attribute("migration.version", run.target or "none")
        root.set_attribute("migration.outcome", outcome)
        root.set_attribute("migration.duration_ms", round(duration, 3))
        if state.rows_changed is not None:
            root.set_attribute("migration.rows_changed", state.rows_changed)
        if error is not None:
            for name, attributes in _error_events(error):
                if name not in state.root_events:
                    root.add_event(name, attributes)
                    state.root_events.add(name)
            root.add_event("exception", {
                "exception.type": type(error).__name__,
                "exception.message": message,
                "exception.escaped": True,
            })
            root.set_status(Status(StatusCode.ERROR, message[:255]))
        else:
            root.set_status(Status(StatusCode.OK))
        root.end()
        state.last_closed = root


def _step_attributes(run: RunInfo, step: StepInfo) -> dict[str, Any]:
    attributes = {**_run_attributes(run), "migration.direction": step.direction, "migration.version": step.id,
                  "migration.version_number": step.version}
    sha256 = getattr(step, "sha256", None)  # of the file that ran, when the runner knows it
    if isinstance(sha256, str) and sha256:
        attributes["migration.file.sha256"] = sha256
    return attributes


def _error_events(error: BaseException) -> list[tuple[str, dict[str, Any]]]:
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


# -- the module's four entry points ----------------------------------------------------------------------------------
def listener() -> Listener:
    """The tracer, or a plain no-op Listener when no endpoint is configured (then nothing of OTel is imported)."""
    global _runtime
    config = _config()
    if config.disabled or (config.traces is None and config.metrics is None):
        if config.problems:
            _warn(f"telemetry is off: {'; '.join(config.problems)}", reason="; ".join(config.problems))
        return Listener()
    with _runtime_lock:
        if _runtime is None:
            try:
                _runtime = _Runtime(config)
            except Exception as exc:  # noqa: BLE001 - a broken exporter set-up must not stop the migration
                reason = f"telemetry set-up failed: {type(exc).__name__}: {clean(exc, 300)}"
                _warn(f"telemetry is off for this run: {reason}", reason=reason)
                return Listener()
    return TelemetryListener()


def current_ids(run: RunInfo) -> tuple[str | None, str | None]:
    """(trace id, span id) in hex of the span a log record about `run` belongs to: the step span during a step, else
    the open checks span, else the root. The hook that ends a span still gets that span's ids (the tracer runs
    first), so "step finished" and "run finished" records carry the step's and the root's ids."""
    runtime = _runtime
    state = runtime.runs.get(run.run_id) if runtime is not None else None
    if state is None:
        return run.trace_id, None
    # Log records may come from another thread (progress ticks): list() copies a dict's values atomically.
    steps, checks = list(state.steps.values()), list(state.checks.values())
    span = state.last_closed
    if span is None:
        span = steps[-1] if steps else checks[-1] if checks else state.root
    if span is None:
        return run.trace_id, None
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def shutdown() -> None:
    """Export what is left, within the flush budget even when the collector is dead; report a failure once."""
    runtime = _runtime
    if runtime is None or runtime.closed:
        return
    runtime.closed = True
    deadline = time.monotonic() + runtime.budget
    failures: list[str] = []

    def quietly(name: str, work) -> None:  # noqa: ANN001
        try:
            work()
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{name}: {type(exc).__name__}")

    def flush_traces() -> None:
        for state in runtime.runs.values():  # a run whose run_finished never came still ends its spans
            for span in [*state.steps.values(), *state.checks.values(), state.root]:
                if span is not None and span.is_recording():
                    span.end()
        runtime.tracer_provider.force_flush(int(runtime.budget * 1000))
        runtime.tracer_provider.shutdown()

    def flush_metrics() -> None:
        # The reader's last collection exports once; a force_flush before it would export the same points twice.
        runtime.meter_provider.shutdown(timeout_millis=runtime.budget * 1000)

    # Both signals at once, each on a daemon thread: the process never waits beyond the budget for either.
    threads = []
    if runtime.tracer_provider is not None:
        threads.append(threading.Thread(target=quietly, args=("traces", flush_traces), name="telemetry-flush-traces",
                                        daemon=True))
    if runtime.meter_provider is not None:
        threads.append(threading.Thread(target=quietly, args=("metrics", flush_metrics),
                                        name="telemetry-flush-metrics", daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = [t.name.removeprefix("telemetry-flush-") for t in threads if t.is_alive()]

    reasons = [f"{w.signal.kind}: {w.explain()}" for w in runtime.watches if w.failed]
    if late:
        reasons.append(f"{' and '.join(late)} not exported within {runtime.budget:g}s")
    reasons += failures + runtime.problems
    if reasons:
        reason = "; ".join(dict.fromkeys(reasons))
        _warn(f"telemetry export failed: {reason}", reason=reason, run=runtime.last_run,
              endpoint=", ".join(sorted({w.signal.safe_endpoint for w in runtime.watches})))


def _warn(message: str, *, reason: str, run: RunInfo | None = None, endpoint: str | None = None) -> None:
    """The one warning record about telemetry, with the fields every record carries."""
    from migrate_wrapper import logs

    trace_id, span_id = current_ids(run) if run is not None else (None, None)
    logs.log.warning(clean(message), extra={
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

    config = _config()
    if config.disabled:
        raise WrapperError("telemetry is disabled: OTEL_SDK_DISABLED=true", hint="unset it to send telemetry")
    signal = config.traces
    if signal is None:
        if config.problems:
            raise WrapperError(f"telemetry is not usable: {'; '.join(config.problems)}")
        if _env("OTEL_TRACES_EXPORTER").lower() == "none":
            raise WrapperError("traces are switched off: OTEL_TRACES_EXPORTER=none")
        raise WrapperError(
            "no OTLP endpoint configured",
            hint="set OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) in the --env file or the "
            "environment",
        )
    _SDK_LOGS.install()
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    from migrate_wrapper import __version__

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
