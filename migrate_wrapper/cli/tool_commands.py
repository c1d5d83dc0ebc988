"""The operator tools on the Typer app: docs, validate-schema, smoke-test, measure-window.

They follow the pattern of cli/app.py (parse, build settings, call one verb, one error line and its exit code);
cli/main.py registers them by importing this module.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from migrate_wrapper.cli.app import (
    AllComponentsOpt,
    ComponentOpt,
    EnvOpt,
    LogFileOpt,
    LogFormatOpt,
    ScratchUrlOpt,
    listeners,
    scratch_server,
    load_settings,
    load_targets,
    app,
    edge,
)

ReportOpt = Annotated[
    Optional[Path],
    typer.Option("--report", help="Where to write the JSON report (default: .local/measure-window/<component>.json "
                 "under the project root); the readable summary goes beside it as .md and to stdout."),
]


def _schema_build(component, env, scratch_url, log_format, log_file):
    """What docs and validate-schema both need: the project root, the components, golang-migrate, a scratch server."""
    from migrate_wrapper.runtime import session

    from migrate_wrapper.config import components

    settings = load_settings(env)
    root = settings.project_root()  # MIGRATE_WRAPPER_ROOT may come from the env file too
    chosen = components.resolve(component or components.ALL, root)
    listeners(log_format, log_file, settings)
    return root, chosen, session.binary(settings), scratch_server(settings, scratch_url)


@app.command("docs")
@edge(traced=True)
def docs(
    component: AllComponentsOpt = None,
    env: EnvOpt = None,
    scratch_url: ScratchUrlOpt = None,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Write db/schema/<component>.md (each schema built from its migrations in a scratch database) and
    db/migrations/migrations.md (the migration plan)."""
    from migrate_wrapper.verbs import docs as docs_verb

    root, chosen, binary, server = _schema_build(component, env, scratch_url, log_format, log_file)
    for path in docs_verb.docs(root, chosen, binary=binary, server=server):
        typer.echo(f"wrote {path}")


@app.command("validate-schema")
@edge(traced=True)
def validate_schema(
    component: AllComponentsOpt = None,
    env: EnvOpt = None,
    scratch_url: ScratchUrlOpt = None,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Regenerate the schema docs and the migration plan into a temporary folder and compare them with the committed
    files (exit 1 with a unified diff); check the data classification covers the schema (exit 1 naming each gap)."""
    from migrate_wrapper.verbs import docs as docs_verb

    root, chosen, binary, server = _schema_build(component, env, scratch_url, log_format, log_file)
    result = docs_verb.validate(root, chosen, binary=binary, server=server)
    if result.diff:
        typer.echo(result.diff, nl=False)
    for problem in result.problems:
        typer.echo(f"classification: {problem}")
    if not result.ok:
        raise result.error()
    typer.echo(f"in sync: {', '.join(str(p) for p in result.checked)}; {result.columns} columns classified")


@app.command("smoke-test")
@edge(traced=True)
def smoke_test(
    component: ComponentOpt = None,
    env: EnvOpt = None,
    scratch_url: ScratchUrlOpt = None,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Confirm recoverability after an apply or a rollback (read-only): connectivity, not dirty, the version the
    audit ledger expects, the live schema equal to the migrations', and db/smoke/<component>.sql in READ ONLY."""
    from migrate_wrapper.runtime import session
    from migrate_wrapper.verbs.smoke import smoke

    settings, targets = load_targets(env, component)
    fmt, listener = listeners(log_format, log_file, settings)
    binary = session.binary(settings)
    server = scratch_server(settings, scratch_url, targets)
    for t in targets:
        checks = smoke(settings, t, binary=binary, server=server, listener=listener)
        if fmt != "text" and not sys.stdout.isatty():  # else the console listener has shown every check
            summary = "; ".join(f"{c.name} {c.status}" for c in checks)
            typer.echo(f"{t.component.name}: smoke test passed ({summary})")


@app.command("measure-window")
@edge(traced=True)
def measure_window(
    component: ComponentOpt = None,
    env: EnvOpt = None,
    scratch_url: ScratchUrlOpt = None,
    report: ReportOpt = None,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Rehearse the pending migrations on a scratch clone of the target (apply, roll back, apply again), time every
    step, write a JSON report and a summary; exit 5 when a direction exceeds MIGRATION_WINDOW_SECONDS."""
    from migrate_wrapper.runtime import session
    from migrate_wrapper.verbs import measure

    settings, targets = load_targets(env, component, single="measure-window")
    _, listener = listeners(log_format, log_file, settings)
    binary = session.binary(settings)
    server = scratch_server(settings, scratch_url, targets)
    path = report or measure.default_report(settings, targets[0])

    def show(rehearsal, written: Path) -> None:
        typer.echo(rehearsal.summary(), nl=False)
        typer.echo(f"report: {written} (summary: {measure.summary_path(written)})")

    measure.measure_window(settings, targets[0], binary=binary, server=server, listener=listener, report=path,
                           show=show)
