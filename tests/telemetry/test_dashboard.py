"""specs/telemetry/dashboard.json holds only what the wrapper really exports: every metric (as a Prometheus backend
names OTLP metrics), label, span name and span attribute its queries use is in a real traced run's export."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import ROOT, run_cli
from tests.telemetry.conftest import otel_env

pytestmark = pytest.mark.integration

DASHBOARD = ROOT / "specs" / "telemetry" / "dashboard.json"


def _prometheus_series(point) -> set[str]:
    """OpenTelemetry's Prometheus naming: dots to underscores, a unit suffix (annotations like {run} dropped),
    _total for counters, _bucket/_sum/_count for histograms."""
    base = point.metric.replace(".", "_") + {"s": "_seconds"}.get(point.unit, "")
    if point.count is not None:  # a histogram
        return {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
    return {f"{base}_total"}


def _queries() -> tuple[list[str], list[str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    promql = [t["expr"] for p in panels if p["datasource"]["type"] == "prometheus" for t in p["targets"]]
    traceql = [t["query"] for p in panels if p["datasource"]["type"] == "tempo" for t in p["targets"]]
    return promql, traceql


def test_the_dashboard_uses_only_what_a_real_run_exports(migrate_bin, dbs, receiver):
    result = run_cli("apply", "-c", "operational", "--env", str(dbs.env_file), "--yes", env=otel_env(receiver.url))
    assert result.returncode == 0, result.output
    points, spans = receiver.points(), receiver.spans()
    series = set().union(*(_prometheus_series(p) for p in points))
    labels = {key.replace(".", "_") for p in points for key in p.attributes} | {"le"}
    span_names = {s.name for s in spans}
    span_attributes = {key for s in spans for key in s.attributes}

    promql, traceql = _queries()
    assert promql and traceql
    for expr in promql:
        used = set(re.findall(r"([a-z_]+)\s*[\[{]", expr))
        assert used and used <= series, (expr, used - series)
        grouped = {label.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for label in group.split(",")}
        matched = {m for inner in re.findall(r"{([^}]*)}", expr) for m in re.findall(r"([a-z_]+)\s*[=!]~?", inner)}
        assert grouped | matched <= labels, (expr, (grouped | matched) - labels)
    for query in traceql:
        names = set(re.findall(r'name = "([^"]+)"', query))
        attributes = set(re.findall(r"span\.([a-z_.]+[a-z_])", query))
        assert names <= span_names, (query, names - span_names)
        assert attributes and attributes <= span_attributes, (query, attributes - span_attributes)
