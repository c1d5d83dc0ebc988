"""`python -m bench.ablation [--no-logs] ARGS…`: migrate-wrapper with its JSON log records switched off, for the
ablation rows of benchmark 1 (what the records cost per step). Telemetry is switched off by the environment alone
(no OTEL_EXPORTER_OTLP_ENDPOINT). Never used outside the benchmarks: the product has no way to drop its log."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--no-logs"]:
        args = args[1:]
        from migrate_wrapper.output import logs

        logs.LogListener._emit = lambda *a, **k: None  # the records are never built nor written
    sys.argv = ["migrate-wrapper", *args]
    from migrate_wrapper.cli.main import entry

    entry()
