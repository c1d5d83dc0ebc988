"""The guardrails workflow does what the issue asks (actionlint checks that it is valid: tests/integration)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "db-guardrails.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def position(commands: list[str], pattern: str, after: int = -1) -> int:
    for index, command in enumerate(commands):
        if index > after and re.search(pattern, command):
            return index
    raise AssertionError(f"no step after #{after} matches {pattern!r}: {commands}")


def test_runs_on_pull_requests_touching_migrations_configs_or_the_package(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"pull_request"}
    assert triggers["pull_request"]["paths"] == [
        "db/migrations/**", "configs/**", "migrate_wrapper/**", ".github/workflows/db-guardrails.yml"]


def test_every_job_sets_up_with_the_project_pins(workflow):
    for name, job in workflow["jobs"].items():
        if name != "approval":
            assert "make setup" in runs(job), name


def test_lint_compares_with_the_base_branch(workflow):
    job = workflow["jobs"]["lint"]
    assert job["steps"][0]["with"]["fetch-depth"] == 0
    assert any(re.search(r"migrate-wrapper lint --component all --base \"origin/\$BASE_REF\"", r) for r in runs(job))


def test_round_trip_on_postgres_15_applies_rolls_back_applies_and_smoke_tests(workflow):
    job = workflow["jobs"]["round-trip"]
    assert job["services"]["postgres"]["image"] == "postgres:15"
    assert {"DB_URL", "ANALYTICS_URL", "MIGRATE_BIN"} <= set(job["env"])
    assert job["env"]["MIGRATE_BIN"] == ".tools/bin/migrate"
    commands = runs(job)
    first = position(commands, r"scripts/db/apply\.sh --component all --yes")
    back = position(commands, r"scripts/db/rollback\.sh --component \"\$component\" --version \"\$first\" --yes", first)
    again = position(commands, r"scripts/db/apply\.sh --component all --yes", back)
    position(commands, r"scripts/db/smoke-test\.sh --component", again)
    assert "status --component \"$component\" --format json --log-format json" in commands[back]


def test_validate_schema_runs_against_a_postgres_15_scratch_server(workflow):
    job = workflow["jobs"]["validate-schema"]
    assert job["services"]["postgres"]["image"] == "postgres:15"
    assert "MIGRATION_SCRATCH_URL" in job["env"]
    position(runs(job), r"scripts/db/validate-schema\.sh --component all")


def test_approval_evidence_reads_reviews_and_files_with_gh_api(workflow):
    [script] = runs(workflow["jobs"]["approval"])
    assert 'gh api --paginate "repos/$REPO/pulls/$PR/reviews"' in script
    assert 'gh api --paginate "repos/$REPO/pulls/$PR/files"' in script
    assert "grep -qx 'db/migrations/migrations.md'" in script
    assert '"${login,,}" != "${AUTHOR,,}"' in script  # someone other than the author
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "read"}


def test_the_scripts_it_calls_exist(workflow):
    called = {m for job in workflow["jobs"].values() for r in runs(job) for m in re.findall(r"scripts/[\w/.-]+\.sh", r)}
    assert called
    assert [path for path in sorted(called) if not (ROOT / path).is_file()] == []
