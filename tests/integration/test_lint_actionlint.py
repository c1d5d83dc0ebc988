"""actionlint (built by `make setup` at the pin in migrate_wrapper/versions.py) over .github/workflows/.

In CI (CI=true) a missing or stale actionlint fails these tests instead of skipping them, as the migrate binary does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from migrate_wrapper.versions import ACTIONLINT_VERSION
from tests.conftest import ROOT, unavailable

ACTIONLINT = ROOT / ".tools" / "bin" / "actionlint"
WORKFLOWS = ROOT / ".github" / "workflows"


@pytest.fixture(scope="module")
def actionlint() -> Path:
    if not ACTIONLINT.is_file():
        unavailable(f"actionlint not built at {ACTIONLINT}")
    version = subprocess.run([str(ACTIONLINT), "-version"], capture_output=True, text=True, timeout=30)
    built = (version.stdout.splitlines() or [""])[0]
    if built != ACTIONLINT_VERSION:
        unavailable(f"{ACTIONLINT} is {built or 'unknown'}, the pin is {ACTIONLINT_VERSION}")
    return ACTIONLINT


def run(actionlint: Path, *files: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(actionlint), "-no-color", *map(str, files)], capture_output=True, text=True,
                          timeout=120, cwd=cwd, stdin=subprocess.DEVNULL)


def test_the_workflows_are_actionlint_clean(actionlint):
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert WORKFLOWS / "db-guardrails.yml" in files
    result = run(actionlint, *files, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(actionlint, tmp_path):
    # Proves the check above can fail: an unknown job key and a typo in an expression.
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-latest\n    step: []\n"
        "  y:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.pull_requets.number }}\n"
    )
    result = run(actionlint, broken, cwd=tmp_path)
    assert result.returncode == 1
    assert "broken.yml:5:" in result.stdout and "broken.yml:9:" in result.stdout, result.stdout
