"""Approval evidence (runbook step 3): what the reviewer confirms before approving, as markdown for the pull request
or the deployment ticket. Written by `apply --dry-run --evidence FILE`."""

from __future__ import annotations

from pathlib import Path

from migrate_wrapper.errors import UsageError
from migrate_wrapper.events import CheckResult, RunInfo
from migrate_wrapper.model.plan import Change


def render(run: RunInfo, change: Change, checks: list[CheckResult]) -> str:
    lines = [
        f"### Migration approval evidence: {run.component}",
        "",
        f"- Component: `{run.component}`",
        f"- Environment: `{run.environment}`",
        f"- Database: `{run.database}`",
        f"- Direction: `{change.direction}`",
        f"- From version: `{run.from_version or 'none'}`",
        f"- Target version: `{run.target or 'none'}`",
        f"- Dry run: passed (run id `{run.run_id}`, trace id `{run.trace_id}`)",
        "",
        "| migration | file | sha256 |",
        "|-----------|------|--------|",
    ]
    for migration in change.steps:
        path = migration.path(change.direction)
        lines.append(f"| `{migration.id}` | `{path.name if path else '-'}` | `{migration.sha256(change.direction)}` |")
    lines += ["", "| pre-check | result | detail |", "|-----------|--------|--------|"]
    for check in checks:
        lines.append(f"| {check.name} | {check.status} | {check.reason.replace('|', '/')} |")
    lines += ["", "Reviewer: confirm the plan, the checksums and the pre-checks above, then set "
              "`MIGRATION_APPROVED_BY=<your name>` for the apply.", ""]
    return "\n".join(lines)


def write(path: Path, run: RunInfo, change: Change, checks: list[CheckResult]) -> None:
    try:
        with path.open("a", encoding="utf-8") as out:  # `--component all` appends one block per component
            out.write(render(run, change, checks) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write evidence file {path}: {exc.strerror}") from None
