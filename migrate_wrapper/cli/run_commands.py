"""The commands that read or change a database: status, apply, rollback, repair, and telemetry-check."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from migrate_wrapper.cli.app import (
    Assumption, ComponentOpt, EnvOpt, FailOnRowLossOpt, FormatOpt, LogFileOpt, LogFormatOpt, OutputFormat,
    ResultFormatOpt, ScratchUrlOpt, YesOpt, app, confirmer, edge, listeners, load_settings, load_targets,
    result_document, scratch_server,
)
from migrate_wrapper.errors import ExitCode, UsageError


@app.command()
@edge(traced=True)
def status(
    component: ComponentOpt = None,
    env: EnvOpt = None,
    fmt: FormatOpt = OutputFormat.text,
    check: Annotated[bool, typer.Option("--check", help="Exit 0 only when up to date, clean and without drift; 6 "
                                        "when migrations are pending or a run is in progress; 7 when dirty or "
                                        "drifted (the worst component decides).")] = False,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Show the current version, applied and pending migrations and drift (read-only)."""
    states = _show_status(component, env, fmt, log_format, log_file)
    if check:
        worst = max(states, key=_STATE_ORDER.index)
        if worst != "ok":
            raise typer.Exit(int(ExitCode.PENDING if worst in ("pending", "running") else ExitCode.NOT_CLEAN))


_STATE_ORDER = ["ok", "pending", "running", "drift", "dirty"]  # Status.verdict, best first


def _show_status(component, env, fmt, log_format, log_file) -> list[str]:
    """status, and apply --status (whose own edge already translates errors and flushes)."""
    from migrate_wrapper.output import report
    from migrate_wrapper.verbs.status import status as status_verb

    settings, targets = load_targets(env, component)
    _, listener = listeners(log_format, log_file, settings)
    statuses = [status_verb(settings, t, listener=listener) for t in targets]
    if fmt == OutputFormat.json:
        typer.echo(report.dumps(report.status_document(statuses)))
    else:
        colour = report.colour_wanted(sys.stdout)
        typer.echo("\n\n".join(report.status_text(st, settings.migration_environment, colour=colour)
                                for st in statuses))
    return [st.verdict for st in statuses]


@app.command()
@edge(traced=True)
def apply(
    component: ComponentOpt = None,
    env: EnvOpt = None,
    yes: YesOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show the plan; change nothing.")] = False,
    show_status: Annotated[bool, typer.Option("--status", help="Show status instead of applying.")] = False,
    evidence: Annotated[
        Optional[Path], typer.Option("--evidence", help="With --dry-run: write approval evidence (markdown) here.")
    ] = None,
    fail_on_row_loss: FailOnRowLossOpt = False,
    rehearse: Annotated[
        bool, typer.Option("--rehearse", help="With --dry-run: also run the pending migrations on a scratch clone "
                           "of the target (apply, roll back, apply), timed against the window.")
    ] = False,
    scratch_url: ScratchUrlOpt = None,
    fmt: ResultFormatOpt = OutputFormat.text,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Apply every pending migration (all of them, in order)."""
    if show_status:
        _show_status(component, env, fmt, log_format, log_file)
        return
    from migrate_wrapper.verbs.apply import apply as apply_verb
    from migrate_wrapper.runtime.pipeline import Options

    with result_document(fmt) as result:
        if (evidence is not None or rehearse or scratch_url) and not dry_run:
            raise UsageError("--evidence, --rehearse and --scratch-url go with --dry-run")
        settings, targets = load_targets(env, component)
        server = scratch_server(settings, scratch_url, targets) if rehearse else None
        _, listener = listeners(log_format, log_file, settings, result=result)
        options = Options(confirm=confirmer(yes), dry_run=dry_run, evidence=evidence,
                          fail_on_row_loss=fail_on_row_loss, scratch=server)
        for t in targets:
            apply_verb(settings, t, listener=listener, options=options)


@app.command()
@edge(traced=True)
def rollback(
    version: Annotated[str, typer.Option("--version", help="The migration to revert: its id as status prints it "
                                         "(202611010900_create_accounts, 0001_init), or its version.")],
    component: ComponentOpt = None,
    env: EnvOpt = None,
    yes: YesOpt = False,
    fail_on_row_loss: FailOnRowLossOpt = False,
    fmt: ResultFormatOpt = OutputFormat.text,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Revert VERSION and every migration applied after it."""
    from migrate_wrapper.runtime.pipeline import Options
    from migrate_wrapper.verbs.rollback import rollback as rollback_verb

    with result_document(fmt) as result:
        settings, targets = load_targets(env, component, single="rollback")
        _, listener = listeners(log_format, log_file, settings, result=result)
        options = Options(confirm=confirmer(yes), fail_on_row_loss=fail_on_row_loss)
        rollback_verb(settings, targets[0], version, listener=listener, options=options)


@app.command()
@edge(traced=True)
def repair(
    component: ComponentOpt = None,
    env: EnvOpt = None,
    yes: YesOpt = False,
    scratch_url: ScratchUrlOpt = None,
    assume: Annotated[Optional[Assumption], typer.Option(
        "--assume",
        help="Your decision where no evidence settles it (a data-only step): the step's changes are there "
             "(committed) or none are (rolled-back). Audited; refused where the evidence says otherwise.")] = None,
    fmt: ResultFormatOpt = OutputFormat.text,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Settle a dirty database from proof (the audit ledger's evidence of the run, the schema compared with what the
    migrations produce), then mark the right version clean (golang-migrate force) — or refuse, showing the
    evidence."""
    from migrate_wrapper.runtime.pipeline import Options
    from migrate_wrapper.verbs.repair import repair as repair_verb

    with result_document(fmt) as result:
        settings, targets = load_targets(env, component, single="repair")
        server = scratch_server(settings, scratch_url, targets)
        _, listener = listeners(log_format, log_file, settings, result=result)
        repair_verb(settings, targets[0], listener=listener, options=Options(confirm=confirmer(yes)), server=server,
                    assume=assume.value if assume else None)


@app.command("telemetry-check")
@edge(traced=True)
def telemetry_check(
    env: EnvOpt = None,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Send one test span to the configured OTLP endpoint and say whether it arrived (or exactly why not)."""
    from migrate_wrapper import telemetry

    settings = load_settings(env)  # exports the file's OTEL_* variables for the SDK
    listeners(log_format, log_file, settings)
    typer.echo(telemetry.check())
