"""OpenTelemetry for runs: one trace per run (root span, pre/post-check spans, one span per step) and a few metrics.

Configuration is the SDK's own: OTEL_EXPORTER_OTLP_ENDPOINT (or the per-signal *_TRACES_/*_METRICS_ENDPOINT),
OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf, the default, or grpc), OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED. The exporters read endpoint, headers, certificates and compression from
the environment themselves; this module only decides whether telemetry is on at all, which exporter class to use, and
bounds every export in time.

Cost rules:
- The wrapper's own process never imports `opentelemetry` for a run. The hooks below only decide the spans (names,
  parents, attributes, times, and the random ids the log records carry) and send them as plain operations through a
  non-blocking pipe to an exporter process forked at the start of the command (`start_early`). That process imports
  the SDK on the other core while this one starts up, replays the operations through the SDK with the same ids
  (telemetry_exporter.py) and exports them. Without it, the SDK's imports (~150 ms), span objects and encoding
  would all be on the run's wall time.
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

import functools
import json
import os
import pickle
import random
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from migrate_wrapper.events import CheckResult, Listener, RunInfo, StepInfo

FLUSH_SECONDS_ENV = "MIGRATE_WRAPPER_TELEMETRY_FLUSH_SECONDS"
DEFAULT_FLUSH_SECONDS = 5.0
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
    from migrate_wrapper.config.dburl import mask_text

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


# -- the recording side: the wrapper's own process --------------------------------------------------------------------
# Spans are decided here (names, parents, attributes, times and ids) and sent as plain operations to the exporter
# process, which replays them through the SDK. The wrapper itself never imports OpenTelemetry for a run: importing
# the SDK and its HTTP stack (~150 ms), building each span and encoding it would all be on the run's own time.
@dataclass(eq=False)
class _Span:
    trace_id: int
    span_id: int
    ended: bool = False


@dataclass
class _RunSpans:
    root: _Span | None = None
    checks: dict[str, _Span] = field(default_factory=dict)  # phase → open checks span
    checks_seen: dict[str, set[int]] = field(default_factory=dict)  # phase → id() of results seen via check()
    checks_rows: dict[str, int] = field(default_factory=dict)  # phase → rows changed (phases that counted rows)
    steps: dict[tuple[str, str], _Span] = field(default_factory=dict)  # (step id, direction) → open step span
    steps_started: dict[tuple[str, str], float] = field(default_factory=dict)
    last_closed: _Span | None = None  # the span the current hook just ended: its log record still belongs to it
    root_events: set[str] = field(default_factory=set)
    rows_changed: int | None = None  # None: no check counted rows
    attributes: dict[str, Any] | None = None  # the run's own span attributes, once built (_run_attributes)


class _Exporter:
    """The exporter process (see telemetry_exporter.serve), fed through a pipe that never blocks the run: what the
    pipe cannot take at once waits in `pending` for the next write or for shutdown.

    Operations are written when a span starts (whatever comes next may take long: what happened so far leaves now)
    or when `FLUSH_BYTES` have piled up, not one by one: one write and one wake-up of the exporter per step instead
    of four, on a machine whose cores golang-migrate and PostgreSQL are using."""

    FLUSH_BYTES = 32 * 1024

    def __init__(self, pid: int, ops_fd: int, result_fd: int) -> None:
        self.pid, self.ops_fd, self.result_fd = pid, ops_fd, result_fd
        self.pending = bytearray()
        self.broken = False
        os.set_blocking(ops_fd, False)

    def send(self, op: tuple, *, now: bool = False) -> None:
        if self.broken:
            return
        self.pending += pickle.dumps(op, protocol=pickle.HIGHEST_PROTOCOL)
        if now or len(self.pending) >= self.FLUSH_BYTES:
            self._write()

    def _write(self) -> bool:
        """Write what the pipe takes now; True when nothing is left."""
        while self.pending:
            try:
                written = os.write(self.ops_fd, self.pending)
            except BlockingIOError:
                return False
            except OSError:  # the exporter process is gone: its absence is reported at shutdown
                self.broken = True
                self.pending.clear()
                return True
            del self.pending[:written]
        return True

    def finish(self, budget: float) -> list[str] | None:
        """Send what is left and "shutdown", then wait for the answer; None when none came in time."""
        import select

        deadline = time.monotonic() + budget + 1.0  # the exporter's own flush is bounded by `budget`
        self.send(("shutdown",), now=True)
        try:
            while not self._write():
                if not select.select([], [self.ops_fd], [], max(0.0, deadline - time.monotonic()))[1]:
                    return None
            self._close("ops_fd")  # end of the operations, also for an exporter that missed "shutdown"
            answer = b""
            while True:
                if not select.select([self.result_fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    return None
                chunk = os.read(self.result_fd, 65536)
                if not chunk:
                    break
                answer += chunk
            if not answer:
                return ["the telemetry exporter process ended before it could export"]
            return [str(reason) for reason in json.loads(answer.decode("utf-8"))]
        except (OSError, ValueError):
            return None
        finally:
            self.stop()

    def _close(self, name: str) -> None:
        fd = getattr(self, name)
        if fd >= 0:
            setattr(self, name, -1)  # never closed twice: the number may belong to another file by then
            os.close(fd)

    def stop(self) -> None:
        self._close("ops_fd")
        self._close("result_fd")
        try:
            os.kill(self.pid, signal.SIGKILL)  # gone already after answering; else it stops waiting now
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError, OSError):
            pass


def _fork_exporter() -> _Exporter | None:
    """The exporter process, forked from this one: it starts importing the SDK at once, on the other core."""
    if not hasattr(os, "fork"):
        return None
    ops_read, ops_write = os.pipe()
    result_read, result_write = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        for fd in (ops_read, ops_write, result_read, result_write):
            os.close(fd)
        return None
    if pid == 0:  # the exporter process: never returns into the wrapper's code
        try:
            _become_exporter(parent, keep=(ops_read, result_write))
            from migrate_wrapper.telemetry import exporter as telemetry_exporter

            telemetry_exporter.serve(ops_read, result_write)
        finally:
            os._exit(0)
    os.close(ops_read)
    os.close(result_write)
    return _Exporter(pid, ops_write, result_read)


def _become_exporter(parent: int, keep: tuple[int, ...]) -> None:
    """In the forked child: no terminal signals (the wrapper decides when to flush), killed with the wrapper, and
    none of the wrapper's files: a pipe reader waiting for the wrapper's stdout to close must not wait for us."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the wrapper died before the line above took effect
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, max(low, os.sysconf("SC_OPEN_MAX")))


_exporter: _Exporter | None = None
_recorder: _Recorder | None = None
_lock = threading.Lock()


def _telemetry_likely(env_file: Path | None) -> bool:
    """Whether an endpoint is (probably) configured: by the environment, or named in the --env file's text."""
    config = _config()
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
            _exporter = _fork_exporter()


class _Recorder:
    def __init__(self, config: _Config, exporter: _Exporter | None) -> None:
        self.config = config
        self.exporter = exporter
        self.budget = flush_seconds()
        self.traces = config.traces is not None
        self.problems: list[str] = list(config.problems)
        self.runs: dict[str, _RunSpans] = {}
        self.last_run: RunInfo | None = None
        self.closed = False
        self._random = random.Random()

    def send(self, op: tuple, *, now: bool = False) -> None:
        if self.exporter is not None:
            self.exporter.send(op, now=now)

    def spans(self, run: RunInfo) -> _RunSpans:
        self.last_run = run
        state = self.runs.get(run.run_id)
        if state is None:
            state = self.runs[run.run_id] = _RunSpans()
        return state

    def _new_id(self, bits: int) -> int:
        while True:  # zero is the invalid id
            value = self._random.getrandbits(bits)
            if value:
                return value

    def start(self, name: str, parent: _Span | None, attributes: dict, start_ns: int | None = None) -> _Span:
        span = _Span(parent.trace_id if parent is not None else self._new_id(128), self._new_id(64))
        self.send(("span", span.span_id, parent.span_id if parent is not None else None, name, attributes,
                   time.time_ns() if start_ns is None else start_ns, span.trace_id), now=True)
        return span

    def set(self, span: _Span, attributes: dict) -> None:
        self.send(("set", span.span_id, attributes))

    def event(self, span: _Span, name: str, attributes: dict) -> None:
        self.send(("event", span.span_id, name, attributes, time.time_ns()))

    def status(self, span: _Span, ok: bool, message: str = "") -> None:
        self.send(("status", span.span_id, ok, message))

    def end(self, span: _Span) -> None:
        if not span.ended:
            span.ended = True
            self.send(("end", span.span_id, time.time_ns()))

    def ensure_root(self, run: RunInfo, state: _RunSpans) -> _Span | None:
        if state.root is None and self.traces:
            started_ns = time.time_ns() - int(run.elapsed_ms() * 1_000_000)  # the run began before connecting
            state.root = self.start(
                f"migration.{run.command}", None,
                {**_run_attributes(run, state), "migration.command": run.command, "migration.run_id": run.run_id},
                start_ns=started_ns,
            )
            run.trace_id = format(state.root.trace_id, "032x")
        return state.root

    def child(self, run: RunInfo, state: _RunSpans, name: str, attributes: dict,
              start_ns: int | None = None) -> _Span | None:
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


def _run_attributes(run: RunInfo, state: _RunSpans) -> dict[str, Any]:
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


def _hook(method):
    """Every hook: never raises (telemetry must not break a run); clears the span the previous hook just closed."""

    @functools.wraps(method)
    def guarded(self, run: RunInfo, /, *args: object, **kwargs: object) -> None:  # data may be named run or state
        recorder = _recorder
        if recorder is None or recorder.closed:
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

    @_hook
    def run_started(self, rec: _Recorder, run: RunInfo, state: _RunSpans, plan: list[str]) -> None:
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
    def checks_started(self, rec: _Recorder, run: RunInfo, state: _RunSpans, phase: str) -> None:
        self._checks_span(rec, run, state, phase)

    def _checks_span(self, rec: _Recorder, run: RunInfo, state: _RunSpans, phase: str) -> _Span | None:
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
    def check(self, rec: _Recorder, run: RunInfo, state: _RunSpans, result: CheckResult) -> None:
        self._check(rec, run, state, result)

    def _check(self, rec: _Recorder, run: RunInfo, state: _RunSpans, result: CheckResult) -> None:
        state.checks_seen.setdefault(result.phase, set()).add(id(result))
        span = self._checks_span(rec, run, state, result.phase)
        if span is not None:
            rec.event(span, "migration.check", {
                "migration.check.name": result.name,
                "migration.check.phase": result.phase,
                "migration.check.status": result.status,
                "migration.check.reason": clean(result.reason),
            })
        deltas = _deltas(result)
        for table, delta, extra in deltas:
            if span is not None:
                rec.event(span, "migration.rows_changed", {
                    "db.collection.name": clean(table, 255),
                    "migration.rows_delta": delta,
                    "migration.check.name": result.name,
                    **extra,
                })
        if isinstance((result.data or {}).get("deltas"), list):  # this check counted rows (maybe none changed)
            changed = _rows_changed(result, deltas)
            state.checks_rows[result.phase] = state.checks_rows.get(result.phase, 0) + changed
            state.rows_changed = (state.rows_changed or 0) + changed
            rec.record("rows_changed", changed, rec.metric_attributes(run))

    @_hook
    def checks_finished(self, rec: _Recorder, run: RunInfo, state: _RunSpans, phase: str,
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
    def step_started(self, rec: _Recorder, run: RunInfo, state: _RunSpans, step: StepInfo) -> None:
        key = (step.id, step.direction)
        abandoned = state.steps.pop(key, None)
        if abandoned is not None:  # started again without finishing: that attempt failed (e.g. a lock timeout)
            started = state.steps_started.pop(key, None)
            if started is not None:
                rec.set(abandoned, {"migration.duration_ms": round((time.monotonic() - started) * 1000.0, 3)})
            rec.status(abandoned, False, "did not finish; started again")
            rec.end(abandoned)
        span = rec.child(run, state, "migration.step", _step_attributes(run, state, step))
        if span is not None:
            state.steps[key] = span
        state.steps_started[key] = time.monotonic()

    @_hook
    def step_finished(self, rec: _Recorder, run: RunInfo, state: _RunSpans, step: StepInfo) -> None:
        key = (step.id, step.direction)
        started = state.steps_started.pop(key, None)
        measured = (time.monotonic() - started) * 1000.0 if started is not None else None
        duration = step.duration_ms if step.duration_ms is not None else measured
        span = state.steps.pop(key, None)
        if span is None:  # a finish without a start: the span still belongs in the trace
            start_ns = time.time_ns() - int((duration or 0.0) * 1_000_000)
            span = rec.child(run, state, "migration.step", _step_attributes(run, state, step), start_ns=start_ns)
        if span is not None:
            rec.set(span, {"migration.duration_ms": round(duration or 0.0, 3)})
            rec.end(span)
            state.last_closed = span
        if duration is not None:
            rec.record("step_duration", duration, rec.metric_attributes(run) | {"migration.direction": step.direction})

    @_hook
    def output(self, rec: _Recorder, run: RunInfo, state: _RunSpans, line: str) -> None:
        return None  # golang-migrate's lines go to the log, not to spans; the hook only clears `last_closed`

    @_hook
    def note(self, rec: _Recorder, run: RunInfo, state: _RunSpans, event: str, message: str, /,
             **data: object) -> None:
        if event not in ROOT_NOTE_EVENTS:
            return
        root = rec.ensure_root(run, state)
        if root is None:
            return
        attributes: dict[str, Any] = {"migration.message": clean(message)}
        for key, value in data.items():
            converted = _attribute_value(value)
            if converted is not None:
                attributes[key if "." in key else f"migration.{key}"] = converted
        rec.event(root, event, attributes)
        state.root_events.add(event)

    @_hook
    def run_finished(self, rec: _Recorder, run: RunInfo, state: _RunSpans, outcome: str,
                     error: BaseException | None) -> None:
        duration = run.elapsed_ms()
        metric_attributes = rec.metric_attributes(run) | {"migration.outcome": OUTCOME_METRIC.get(outcome, "failed")}
        rec.record("run_duration", duration, metric_attributes)
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
        rec.set(root, attributes)
        if error is not None:
            for name, event_attributes in _error_events(error):
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


def _step_attributes(run: RunInfo, state: _RunSpans, step: StepInfo) -> dict[str, Any]:
    attributes = {**_run_attributes(run, state), "migration.direction": step.direction, "migration.version": step.id,
                  "migration.version_number": step.version}
    if step.sha256:  # of the file that ran, when the runner knows it
        attributes["migration.file.sha256"] = step.sha256
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


# -- the module's entry points ---------------------------------------------------------------------------------------
def listener() -> Listener:
    """The tracer, or a plain no-op Listener when no endpoint is configured (then nothing of OTel is imported, and an
    exporter process forked early by `start_early` is let go)."""
    global _exporter, _recorder
    config = _config()
    with _lock:
        if config.disabled or (config.traces is None and config.metrics is None):
            if _exporter is not None:
                _exporter.stop()
                _exporter = None
            if config.problems:
                _warn(f"telemetry is off: {'; '.join(config.problems)}", reason="; ".join(config.problems))
            return Listener()
        if _recorder is None:
            exporter = _exporter if _exporter is not None else _fork_exporter()
            _exporter = None
            _recorder = _Recorder(config, exporter)
            if exporter is None:
                _recorder.problems.append("telemetry is off for this run: cannot start the exporter process")
            else:  # the environment as the settings left it: the --env file's OTEL_* variables are in it by now
                exporter.send(("config", dict(os.environ)), now=True)
    return TelemetryListener()


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
    from migrate_wrapper.telemetry.exporter import send_test_span

    return send_test_span(signal)
