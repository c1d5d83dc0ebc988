"""`migrate-wrapper telemetry-check`: one test span, and on failure the exact reason, never a secret."""

from __future__ import annotations

from tests.conftest import run_cli
from tests.telemetry.conftest import OTLP_SECRET, assert_no_secrets, otel_env
from tests.telemetry.receivers import closed_port


def check(env: dict[str, str], *args: str):
    result = run_cli("telemetry-check", *args, env=env, timeout=60)
    assert_no_secrets(result.stdout, result.stderr)
    return result


def test_success_sends_one_span(receiver):
    result = check(otel_env(receiver.url))
    assert result.returncode == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("telemetry ok:")
    assert f"{receiver.url}/v1/traces" in lines[0]
    (span,) = receiver.spans()
    assert span.name == "telemetry.check" and span.trace_id in lines[0]
    assert span.resource["service.name"] == "db-migrate-cli"
    assert receiver.headers("traces")[0]["x-api-key"] == OTLP_SECRET


def test_settings_from_the_env_file(receiver, tmp_path):
    env_file = tmp_path / "migrate.env"
    env_file.write_text(f"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={receiver.url}/v1/traces\n"
                        f"OTEL_EXPORTER_OTLP_HEADERS=x-api-key={OTLP_SECRET}\n")
    result = check({}, "--env", str(env_file))
    assert result.returncode == 0, result.output
    assert [s.name for s in receiver.spans()] == ["telemetry.check"]


def test_no_endpoint_configured():
    result = check({})
    assert result.returncode == 1
    assert "no OTLP endpoint configured" in result.stderr and "OTEL_EXPORTER_OTLP_ENDPOINT" in result.stderr


def test_sdk_disabled(receiver):
    result = check(otel_env(receiver.url, OTEL_SDK_DISABLED="true"))
    assert result.returncode == 1 and "OTEL_SDK_DISABLED" in result.stderr
    assert not receiver.received


def test_connection_refused_names_the_endpoint_without_credentials():
    port = closed_port()
    result = check(otel_env(f"http://collector-user:{OTLP_SECRET}@127.0.0.1:{port}"))
    assert result.returncode == 1
    assert "connection refused" in result.stderr
    assert f"http://127.0.0.1:{port}/v1/traces" in result.stderr
    assert "collector-user" not in result.stderr


def test_unauthorized_names_the_header_names_not_their_values(receiver):
    receiver.status = 401
    result = check(otel_env(receiver.url, OTEL_EXPORTER_OTLP_HEADERS=f"x-api-key={OTLP_SECRET},x-tenant=acme-42"))
    assert result.returncode == 1
    message = result.stderr
    assert "HTTP 401" in message and "x-api-key" in message and "x-tenant" in message
    assert "acme-42" not in message
    assert receiver.refused[0][1]["x-api-key"] == OTLP_SECRET  # it was sent, just not accepted


def test_unauthorized_without_headers_says_none_were_sent(receiver):
    receiver.status = 403
    result = check({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    assert result.returncode == 1
    assert "HTTP 403" in result.stderr and "no headers were sent" in result.stderr


def test_tls_error(receiver):
    # https:// to a plain-HTTP collector: the TLS handshake fails.
    result = check(otel_env(receiver.url.replace("http://", "https://")))
    assert result.returncode == 1
    assert "TLS error" in result.stderr, result.stderr


def test_grpc_success_and_unauthenticated(grpc_receiver):
    env = otel_env(grpc_receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    result = check(env)
    assert result.returncode == 0, result.output
    assert "over grpc" in result.stdout
    assert [s.name for s in grpc_receiver.spans()] == ["telemetry.check"]
    assert grpc_receiver.headers("traces")[0]["x-api-key"] == OTLP_SECRET

    grpc_receiver.refuse = True
    result = check(env)
    assert result.returncode == 1
    assert "UNAUTHENTICATED" in result.stderr and "x-api-key" in result.stderr


def test_grpc_connection_refused():
    port = closed_port()
    result = check(otel_env(f"http://127.0.0.1:{port}", OTEL_EXPORTER_OTLP_PROTOCOL="grpc"))
    assert result.returncode == 1
    assert "connection refused" in result.stderr and f"127.0.0.1:{port}" in result.stderr
