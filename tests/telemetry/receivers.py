"""Real OTLP receivers for the telemetry tests: OTLP/HTTP (http.server) and OTLP/gRPC (grpcio), both on 127.0.0.1:0.

They decode what arrives with the collector's own protobuf messages, keep the request headers (or gRPC metadata), and
can be told to refuse (HTTP 401 / gRPC UNAUTHENTICATED). Nothing here mocks the exporter: the CLI under test talks to
these over real sockets.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class Received:
    signal: str  # traces | metrics
    headers: dict[str, str]  # lower-case names
    message: ExportTraceServiceRequest | ExportMetricsServiceRequest
    arrived_ns: int = field(default_factory=time.time_ns)  # wall clock, comparable with the spans' own times


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict
    events: list[tuple[str, dict]]
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    resource: dict
    start_ns: int
    end_ns: int
    arrived_ns: int  # when the request that carried it reached the receiver
    dropped_events: int = 0

    def event(self, name: str) -> dict:
        matches = [attrs for event_name, attrs in self.events if event_name == name]
        assert len(matches) == 1, (name, self.events)
        return matches[0]

    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]


@dataclass
class Point:
    metric: str
    unit: str
    attributes: dict
    value: float  # sum / gauge value, or a histogram's sum
    count: int | None  # histogram count
    resource: dict


def any_value(value):
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(kvs) -> dict:
    return {kv.key: any_value(kv.value) for kv in kvs}


@dataclass
class _Store:
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: Received) -> None:
        with self.lock:
            self.received.append(item)

    def clear(self) -> None:
        with self.lock:
            self.received.clear()

    def of(self, signal: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.signal == signal]

    def spans(self) -> list[Span]:
        out: list[Span] = []
        for item in self.of("traces"):
            for rs in item.message.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(Span(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            attributes=attributes(s.attributes),
                            events=[(e.name, attributes(e.attributes)) for e in s.events],
                            status_code=s.status.code,
                            status_message=s.status.message,
                            resource=resource,
                            start_ns=s.start_time_unix_nano,
                            end_ns=s.end_time_unix_nano,
                            arrived_ns=item.arrived_ns,
                            dropped_events=s.dropped_events_count,
                        ))
        return sorted(out, key=lambda span: span.start_ns)

    def points(self) -> list[Point]:
        out: list[Point] = []
        for item in self.of("metrics"):
            for rm in item.message.resource_metrics:
                resource = attributes(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        for dp in getattr(m, kind).data_points:
                            if kind == "histogram":
                                out.append(Point(m.name, m.unit, attributes(dp.attributes), dp.sum, dp.count, resource))
                            else:
                                value = dp.as_double if dp.WhichOneof("value") == "as_double" else dp.as_int
                                out.append(Point(m.name, m.unit, attributes(dp.attributes), value, None, resource))
        return out

    def metric_names(self) -> set[str]:
        return {p.metric for p in self.points()}

    def bodies_text(self) -> str:
        """Everything received except the headers, as text: for the canary scans."""
        with self.lock:
            return "\n".join(str(r.message) for r in self.received)

    def headers(self, signal: str) -> list[dict[str, str]]:
        return [r.headers for r in self.of(signal)]


class HttpReceiver(_Store):
    """POST /v1/traces and /v1/metrics, protobuf bodies (gzip/deflate too); `status` is what it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path == "/v1/traces":
                    signal, request_type, response = "traces", ExportTraceServiceRequest, ExportTraceServiceResponse()
                elif self.path == "/v1/metrics":
                    signal, request_type, response = (
                        "metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse()
                    )
                else:
                    self._answer(404, b"")
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                if receiver.status != 200:
                    receiver.refused.append((signal, headers))
                    self._answer(receiver.status, b"")
                    return
                receiver.add(Received(signal, headers, request_type.FromString(body)))
                self._answer(200, response.SerializeToString())

            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.refused: list[tuple[str, dict[str, str]]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="otlp-http-receiver", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class GrpcReceiver(_Store):
    """TraceService and MetricsService over insecure gRPC; `refuse` makes both answer UNAUTHENTICATED."""

    def __init__(self) -> None:
        super().__init__()
        from concurrent.futures import ThreadPoolExecutor

        import grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        self.refuse = False
        receiver = self

        def accept(signal: str, request, context, response):  # noqa: ANN001, ANN202
            headers = {k.lower(): v for k, v in context.invocation_metadata()}
            if receiver.refuse:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or bad api key")
            receiver.add(Received(signal, headers, request))
            return response

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):  # noqa: N802, ANN001, ANN201
                return accept("traces", request, context, ExportTraceServiceResponse())

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):  # noqa: N802, ANN001, ANN201
                return accept("metrics", request, context, ExportMetricsServiceResponse())

        self.server = grpc.server(ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.stop(grace=None)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (a dead collector: connections are refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentCollector:
    """Accepts TCP connections and never answers: the exporter has to give up on its own timeout."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, name="silent-collector", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)  # hold it open, read nothing, say nothing

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()
