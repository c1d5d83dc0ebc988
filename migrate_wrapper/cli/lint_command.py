"""`migrate-wrapper lint` on the Typer app (cli/main.py registers it by importing this module).

Reads the repository only: no database, no golang-migrate. The report goes to stdout (readable, grouped by file, or
one JSON document); when it holds errors, one `error:` line follows on stderr and the exit code is 1.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from migrate_wrapper.cli.app import AllComponentsOpt, OutputFormat, components_for, project_root, app, edge

BaseOpt = Annotated[
    Optional[str],
    typer.Option("--base", help="Git revision to compare with: migrations on it must be unchanged and sort before "
                 "new ones (default: the merge base of HEAD and main, else origin/main; skipped with a warning "
                 "when there is none)."),
]
LintFormatOpt = Annotated[OutputFormat, typer.Option("--format", help="text (grouped by file) or one JSON document.")]


@app.command("lint")
@edge
def lint(component: AllComponentsOpt = None, base: BaseOpt = None, fmt: LintFormatOpt = OutputFormat.text,
         judge_all: Annotated[bool, typer.Option("--all", help="Judge every file, the base's history too (an "
                                                  "audit); by default only files new against the base.")] = False,
         ) -> None:
    """Check what a change adds to the migrations: names and up/down pairs, changes against the base branch, parse
    errors, CONCURRENTLY alone in its file, destructive statements without `-- migrate:allow-destructive <reason>`,
    lock safety (squawk, .squawk.toml) and the data classification of new columns. Files already on the base are
    history: only a change to one is an error (--all judges them all). A down file may drop what its own up file
    created without an annotation (the normal reverse). Exit 1 on errors; warnings pass."""
    from migrate_wrapper.lint.gather import lint as lint_repository

    # Lint reads files only: no settings (pydantic, and a DB setting's error would have nothing to do with lint).
    report = lint_repository(project_root(), components_for(component), base=base, judge_all=judge_all)
    if fmt == OutputFormat.json:
        typer.echo(json.dumps(report.document(), indent=2))
    else:
        typer.echo(_text(report))
    if not report.ok:
        raise report.failure()


def _text(report) -> str:
    lines: list[str] = []
    current: object = ()
    for finding in report.sorted():
        if finding.file != current:
            current = finding.file
            lines += ["", finding.file or "(project)"] if lines else [finding.file or "(project)"]
        where = f"{finding.line}:{finding.column}" if finding.column else f"{finding.line or '-'}"
        lines.append(f"  {where:>7}  {finding.level:<7}  {finding.rule}: {finding.message}")
        if finding.advice:
            lines.append(f"  {'':>7}  {'':<7}  → {finding.advice}")
    base = report.base
    against = (f"against {base.ref} ({base.commit[:12]})" if base.commit else "without base rules")
    summary = (f"lint {', '.join(report.components)}: {report.files} file(s) {against}: "
               f"{report.errors} error(s), {report.warnings} warning(s)")
    return "\n".join([*lines, "", summary] if lines else [summary])
