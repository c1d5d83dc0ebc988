"""Telemetry's configuration, from the environment only (the SDK's own OTEL_* variables): which signals are on,
where they go, and the flush budget. Nothing from opentelemetry is imported here: both processes read it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from migrate_wrapper.telemetry.redact import safe_endpoint

FLUSH_SECONDS_ENV = "MIGRATE_WRAPPER_TELEMETRY_FLUSH_SECONDS"
DEFAULT_FLUSH_SECONDS = 5.0
SCOPE_NAME = "migrate_wrapper"
SUPPORTED_PROTOCOLS = ("http/protobuf", "grpc")


@dataclass(frozen=True)
class Signal:
    """One telemetry signal that is on: where it goes and which variables said so."""

    kind: str  # traces | metrics
    protocol: str
    endpoint: str  # what the exporter will use, for messages (may still hold userinfo: print `safe_endpoint`)
    endpoint_var: str
    headers_var: str  # the variable the exporter takes its headers from ("" when none is set)

    @property
    def safe_endpoint(self) -> str:
        return safe_endpoint(self.endpoint)


@dataclass(frozen=True)
class Config:
    """Telemetry for this process, as the OTEL_* variables configure it."""

    disabled: bool
    traces: Signal | None
    metrics: Signal | None
    problems: tuple[str, ...] = ()


def env_value(name: str) -> str:
    return os.environ.get(name, "").strip()


def _signal(kind: str) -> tuple[Signal | None, str | None]:
    upper = kind.upper()
    if env_value(f"OTEL_{upper}_EXPORTER").lower() == "none":
        return None, None
    specific, generic = f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
    if not (env_value(specific) or env_value(generic)):
        return None, None
    protocol = (env_value(f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL") or env_value("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").lower()
    if protocol not in SUPPORTED_PROTOCOLS:
        return None, f"{kind}: OTLP protocol {protocol!r} is not supported (use http/protobuf or grpc)"
    if env_value(specific):
        endpoint, endpoint_var = env_value(specific), specific
    elif protocol == "grpc":
        endpoint, endpoint_var = env_value(generic), generic
    else:  # the HTTP exporters append the signal's path to the generic endpoint
        endpoint, endpoint_var = f"{env_value(generic).removesuffix('/')}/v1/{kind}", generic
    headers_vars = (f"OTEL_EXPORTER_OTLP_{upper}_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    headers_var = next((v for v in headers_vars if env_value(v)), "")
    return Signal(kind, protocol, endpoint, endpoint_var, headers_var), None


def read_config() -> Config:
    if env_value("OTEL_SDK_DISABLED").lower() == "true":
        return Config(True, None, None)
    traces, traces_problem = _signal("traces")
    metrics, metrics_problem = _signal("metrics")
    return Config(False, traces, metrics, tuple(p for p in (traces_problem, metrics_problem) if p))


def flush_seconds() -> float:
    raw = env_value(FLUSH_SECONDS_ENV)
    try:
        value = float(raw) if raw else DEFAULT_FLUSH_SECONDS
    except ValueError:
        return DEFAULT_FLUSH_SECONDS
    return value if 0 < value <= 600 else DEFAULT_FLUSH_SECONDS


# What the exporter process keeps of an environment: what the SDK, its HTTP and gRPC clients and TLS read.
_EXPORTER_READS = ("OTEL_", "GRPC_", "SSL_CERT_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
                   "NO_PROXY", "ALL_PROXY", "PATH", "HOME", "LANG", "LC_", "TZ", "TMPDIR", FLUSH_SECONDS_ENV)


def exporter_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of `environ` the exporter process may hold: never a DB_URL, PGPASSWORD or other secret of the
    wrapper's. It is applied as the process forks, and again when the wrapper sends its environment once the
    settings (and the --env file's OTEL_* variables) are loaded."""
    return {k: v for k, v in environ.items() if k.upper().startswith(_EXPORTER_READS)}
