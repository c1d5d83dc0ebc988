"""Fixtures for the telemetry tests: real OTLP receivers and helpers to read what the CLI logged and exported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import CANARY_FORMS, ROOT, child_env
from tests.telemetry.receivers import GrpcReceiver, HttpReceiver

OTLP_SECRET = "Canary-Otlp-Secret"  # the OTLP header value: must arrive as a header and appear nowhere else
OTLP_HEADERS = f"x-api-key={OTLP_SECRET}"


@pytest.fixture
def receiver():
    server = HttpReceiver()
    yield server
    server.close()


@pytest.fixture
def grpc_receiver():
    server = GrpcReceiver()
    yield server
    server.close()


def otel_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_HEADERS": OTLP_HEADERS, **extra}


def json_records(stderr: str) -> list[dict]:
    """The JSON log records on stderr (in --log-format json the final error is one too: event command_error)."""
    records = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        assert OTLP_SECRET not in text
        for form in CANARY_FORMS:
            assert form not in text


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """A snippet in a fresh interpreter (telemetry state is per process), with the CLI's clean environment."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=child_env(env), cwd=ROOT)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc
