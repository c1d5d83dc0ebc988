"""Without an endpoint (or with OTEL_SDK_DISABLED=true) a run never imports OpenTelemetry, and status never imports
golang-migrate's runner: start-up cost matters."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.telemetry.conftest import run_python

# Runs the real CLI in this interpreter, then reports which opentelemetry modules it loaded.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.argv = ["migrate-wrapper", *{args!r}]
    from migrate_wrapper.cli.main import main
    code = None
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    loaded = sorted(m for m in sys.modules if m == "opentelemetry" or m.startswith(("opentelemetry.", "grpc")))
    with open({out!r}, "w") as f:
        json.dump({{"code": code, "loaded": loaded, "telemetry": "migrate_wrapper.telemetry" in sys.modules,
                   "runner": "migrate_wrapper.golang_migrate.runner" in sys.modules}}, f)
    """
)


def loaded_modules(tmp_path, args, env):
    out = tmp_path / "modules.json"
    proc = run_python(SCRIPT.format(args=list(args), out=str(out)), env=env)
    assert out.exists(), proc.stderr
    return json.loads(out.read_text())


@pytest.mark.integration
@pytest.mark.parametrize(
    "env", [{}, {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}],
    ids=["no-endpoint", "sdk-disabled"],
)
def test_status_run_without_telemetry_imports_no_opentelemetry(dbs, tmp_path, env):
    report = loaded_modules(tmp_path, ["status", "-c", "all", "--env", str(dbs.env_file)], env)
    assert report["code"] in (0, None)
    assert report["telemetry"]  # the tracer was asked and said no
    assert report["loaded"] == []
    assert not report["runner"]  # nor golang-migrate's runner: status never runs it (issue 17: its fixed cost)


def test_with_an_endpoint_it_is_imported(tmp_path, receiver):
    """The control: the same probe does see OpenTelemetry when telemetry is on."""
    report = loaded_modules(tmp_path, ["telemetry-check"], {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    assert report["code"] in (0, None)
    assert "opentelemetry.sdk.trace" in report["loaded"]


@pytest.mark.integration
def test_with_an_endpoint_a_run_exports_from_its_exporter_process_only(dbs, tmp_path, receiver):
    """Telemetry on: the spans arrive, yet the wrapper's own process imported no OpenTelemetry (its forked exporter
    process did), so the SDK's start-up is off the run's wall time."""
    report = loaded_modules(tmp_path, ["status", "-c", "operational", "--env", str(dbs.env_file)],
                            {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    assert report["code"] in (0, None)
    assert report["loaded"] == []
    assert [s.name for s in receiver.spans()] == ["migration.status"]
