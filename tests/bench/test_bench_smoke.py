"""The benchmark harness at its smoke size: it runs end to end and writes every section with real figures.

No timing is asserted here (CI machines vary); `make bench` measures the targets. Like the other integration tests
this never skips in CI: a missing binary or PostgreSQL there is a failure.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.bench]

SECTIONS = ("1", "2", "3", "4", "5")
JUDGED = ("2", "3", "4", "5")  # section 1's target is at N=1000, which the smoke size does not run


def _require(ok: bool, reason: str) -> None:
    if not ok:
        unavailable(reason)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    _require((ROOT / ".tools" / "bin" / "migrate").is_file(), "golang-migrate not built (.tools/bin/migrate)")
    _require((ROOT / ".venv" / "bin" / "migrate-wrapper").is_file(), "the migrate-wrapper console script is missing")
    _require(bool(shutil.which("psql")) and (Path("/usr/lib/postgresql/15/bin/initdb").exists()
                                             or bool(os.environ.get("PG_BIN"))), "PostgreSQL 15 server binaries not found")
    out = tmp_path_factory.mktemp("bench")
    md, js = out / "results.md", out / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_URL", "MIGRATION_", "OTEL_"))}
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--output", str(md), "--json", str(js)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    return done, md, js


def test_harness_exits_cleanly(smoke):
    done, md, _ = smoke
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    assert "| # | measurement |" in done.stdout  # the table is printed too
    assert str(md) in done.stdout


def test_results_file_has_every_section_with_figures(smoke):
    _, md, _ = smoke
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results")
    assert "**Smoke size**" in text
    for heading in ("## Machine", "## Summary", "## Method"):
        assert heading in text
    for key in ("CPUs (nproc)", "CPU model", "memory", "Python", "PostgreSQL (server)", "golang-migrate"):
        assert f"| {key} |" in text
    assert "## Errors" not in text
    chunks = re.split(r"^## ", text, flags=re.M)
    for key in SECTIONS:
        body = next((c for c in chunks if c.startswith(f"{key}. ")), None)
        assert body is not None, f"section {key} missing"
        rows = [line for line in body.splitlines() if line.startswith(f"| {key} |")]
        assert rows, f"section {key} has no rows"
        for row in rows:
            cells = [c.strip() for c in row.strip().strip("|").split("|")]
            assert len(cells) == 7, row
            assert re.search(r"\d", cells[4]), row  # the figure is a number
            assert cells[6] in ("**met**", "**NOT MET**", "—"), row
        if key in JUDGED:
            assert any(row.rstrip(" |").endswith(("**met**", "**NOT MET**")) for row in rows), rows
    assert "N=1000" in text  # section 1 names where its target applies


def test_json_has_numeric_figures_and_verdicts(smoke):
    _, _, js = smoke
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["errors"] == []
    assert [s["key"] for s in data["sections"]] == list(SECTIONS)
    for section in data["sections"]:
        assert section["rows"]
        for row in section["rows"]:
            assert row["value"] is not None and math.isfinite(row["value"]), row
            for side in ("raw", "wrapper"):
                if row[side] is not None:
                    stats = row[side]
                    assert stats["n"] >= 1 and stats["min"] <= stats["median"] <= stats["max"], row
                    assert all(v > 0 for v in stats["values"]), row
        if section["key"] in JUDGED:
            assert any(row["met"] is not None for row in section["rows"]), section["title"]
