"""The OTLP exporters the exporter process and telemetry-check use, each watched: what went wrong with an export,
for one clear sentence (HTTP status, TLS, connection, gRPC code), and every export bounded in time."""

from __future__ import annotations

import logging
import os
import threading
from collections import deque

from migrate_wrapper.telemetry.config import Signal, env_value
from migrate_wrapper.telemetry.redact import clean

MAX_DEFAULT_EXPORT_SECONDS = 1.5


def export_timeout(kind: str, budget: float) -> float:
    """Seconds one export may take (retries included): at most half the flush budget, lower if the operator says.

    The OTLP exporters default to 10 s with retries and backoff; the Python SDK reads OTEL_EXPORTER_OTLP_TIMEOUT in
    seconds (not milliseconds as the specification says). Never above 1.5 s by default: a collector that accepts
    connections and never answers then costs a run at most ~2 s, imports included (bench/ measures it)."""
    cap = max(0.1, min(budget / 2, MAX_DEFAULT_EXPORT_SECONDS))
    for name in (f"OTEL_EXPORTER_OTLP_{kind.upper()}_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        raw = env_value(name)
        if raw:
            try:
                wanted = float(raw)
            except ValueError:
                return cap
            return min(cap, wanted) if wanted > 0 else cap
    return cap


def _header_names(signal: Signal) -> list[str]:
    if not signal.headers_var:
        return []
    from opentelemetry.util.re import parse_env_headers  # the SDK's own parser, as the exporters use it

    return sorted(parse_env_headers(os.environ.get(signal.headers_var, ""), liberal=True))


# -- what went wrong with an export, for one clear sentence ----------------------------------------------------------
class Watch:
    """What one signal's exporter saw: the HTTP status or exception of its requests, and whether any export failed."""

    def __init__(self, signal: Signal, timeout: float) -> None:
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
        grpc = grpc_failure(SDK_LOGS.records_since(0), self.signal.kind)
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


def grpc_failure(records: list[logging.LogRecord], kind: str) -> tuple[str, str] | None:
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


SDK_LOGS = _SdkLogSink()


# -- exporters -----------------------------------------------------------------------------------------------------
def _credential_provider_set() -> bool:
    return any(k.startswith("OTEL_PYTHON_EXPORTER_OTLP_HTTP") and k.endswith("CREDENTIAL_PROVIDER") and v
               for k, v in os.environ.items())


def _recording_session(watch: Watch):
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


def span_exporter(signal: Signal, watch: Watch):
    """The OTLP span exporter, configured from the environment by the SDK itself (only the timeout is ours), and
    watched: its export results say whether an export failed."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    if signal.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Base

        kwargs = {}
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Base

        kwargs = {"session": None if _credential_provider_set() else _recording_session(watch)}

    class WatchedSpanExporter(Base):
        def export(self, spans):  # noqa: ANN001, ANN202
            if watch.failed:  # spans go out in batches during the run: after one failure, the rest would only wait
                return SpanExportResult.FAILURE  # as long again at exit (the warning already says spans were lost)
            try:
                result = super().export(spans)
            except Exception as exc:  # an exporter bug must not reach the batch processor's logger.exception
                watch.export_failed(exc)
                return SpanExportResult.FAILURE
            if result is not SpanExportResult.SUCCESS:
                watch.export_failed()
            return result

    return WatchedSpanExporter(timeout=watch.timeout, **kwargs)


def metric_exporter(signal: Signal, watch: Watch):
    """The OTLP metric exporter, watched like the span exporter. A subclass keeps the OTLP exporter's own temporality
    and aggregation preferences, which the reader asks the exporter for."""
    from opentelemetry.sdk.metrics.export import MetricExportResult

    if signal.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Base

        kwargs = {}
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Base

        kwargs = {"session": None if _credential_provider_set() else _recording_session(watch)}

    class WatchedMetricExporter(Base):
        def export(self, metrics_data, timeout_millis: float = 10_000, **more):  # noqa: ANN001, ANN202
            try:
                result = super().export(metrics_data, timeout_millis=timeout_millis, **more)
            except Exception as exc:
                watch.export_failed(exc)
                return MetricExportResult.FAILURE
            if result is not MetricExportResult.SUCCESS:
                watch.export_failed()
            return result

    return WatchedMetricExporter(timeout=watch.timeout, **kwargs)
