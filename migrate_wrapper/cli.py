"""The Typer edge: parse options, build settings, call one verb, turn its error into one line and an exit code.

Heavy libraries (psycopg, OpenTelemetry, pglast) are imported by the modules that use them, so `--help` stays cheap.
"""

from __future__ import annotations

import functools
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from migrate_wrapper.errors import EXIT_CODE_HELP, ExitCode, UsageError, WrapperError, printable

app = typer.Typer(
    name="migrate-wrapper",
    help="Safe, auditable PostgreSQL migrations around the real golang-migrate binary.",
    epilog=EXIT_CODE_HELP,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rendering it with rich costs ~100 ms of imports on every --help
)


@app.callback()
def _project(project_dir: Annotated[Optional[Path], typer.Option(
        "--project-dir", help="The project root: where migrate-wrapper.toml is (default: MIGRATE_WRAPPER_ROOT, else "
                              "the nearest directory upwards that holds one).")] = None) -> None:
    if project_dir is not None:
        if not (project_dir / "migrate-wrapper.toml").is_file():
            raise _fail(UsageError(f"--project-dir {printable(str(project_dir), 200)} holds no migrate-wrapper.toml",
                                   hint="name the directory that holds the project file"))
        os.environ["MIGRATE_WRAPPER_ROOT"] = str(project_dir.resolve())


class LogFormat(str, Enum):
    json = "json"
    text = "text"


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


class Assumption(str, Enum):
    """repair --assume: the operator's decision where no evidence settles a step."""

    committed = "committed"
    rolled_back = "rolled-back"


ComponentOpt = Annotated[
    Optional[str],
    typer.Option("--component", "-c", help="operational, analytics or all (default: MIGRATION_COMPONENT)."),
]
AllComponentsOpt = Annotated[  # the commands that describe the repository rather than one database
    Optional[str], typer.Option("--component", "-c", help="operational, analytics or all (default: all).")
]
EnvOpt = Annotated[
    Optional[Path],
    typer.Option("--env", "-e", help="dotenv file with DB_URL, ANALYTICS_URL, …; the environment wins over it."),
]
LogFormatOpt = Annotated[
    Optional[LogFormat],
    typer.Option(
        "--log-format",
        help="json: one JSON record per line on stderr (the default when stderr is not a terminal); "
        "text: readable report on stdout, warnings on stderr.",
    ),
]
LogFileOpt = Annotated[Optional[Path], typer.Option("--log-file", help="Also append JSON log records to this file.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
ScratchUrlOpt = Annotated[
    Optional[str],
    typer.Option(
        "--scratch-url",
        help="Server where throwaway databases may be created and dropped (default: MIGRATION_SCRATCH_URL, else "
        "the embedded local PostgreSQL). Prefer the setting: a password on the command line is visible to ps.",
    ),
]
FailOnRowLossOpt = Annotated[
    bool, typer.Option("--fail-on-row-loss", help="Exit 1 when a table lost rows or disappeared.")
]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="Output of --status: text or one JSON document.")]


def main() -> None:
    app()


def entry() -> None:
    """The console script and `python -m migrate_wrapper`: main(), then leave without the interpreter's teardown.

    Freeing pydantic's and psycopg's modules at exit costs ~60 ms on every run. Nothing is left to do by then:
    connections are closed by the verbs, telemetry was flushed by @edge, and the streams are flushed here.
    """
    import logging
    import os

    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):  # sys.exit("message"): print it, exit 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            pass
    os._exit(code or 0)


def _components(component: str | None):
    """For the AllComponentsOpt commands: the chosen components, every one by default."""
    from migrate_wrapper import components

    return components.resolve(component or components.ALL, _project_root())


def _project_root() -> Path:
    """The project root as every command finds it (--project-dir sets MIGRATE_WRAPPER_ROOT for the run)."""
    from migrate_wrapper import components

    explicit = os.environ.get("MIGRATE_WRAPPER_ROOT")
    return components.project_root(Path(explicit) if explicit else None)


def _listeners(log_format: LogFormat | None, log_file: Path | None, settings):
    """The tracer first (it opens the spans whose ids the logs carry), then the log, then the console."""
    from migrate_wrapper import logs, report, telemetry
    from migrate_wrapper.events import Listeners

    fmt = (log_format or (LogFormat.text if sys.stderr.isatty() else LogFormat.json)).value
    logs.configure(fmt, log_file)
    listeners = [telemetry.listener(), logs.LogListener(settings.migration_progress_seconds)]
    if fmt == "text" or sys.stdout.isatty():
        listeners.append(report.ConsoleListener())
    return fmt, Listeners(*listeners)


def _confirm(yes: bool):
    def confirm(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UsageError("refusing to run without --yes: there is no terminal to confirm on")
        return typer.confirm(question, default=False)

    return confirm


def _fail(error: BaseException) -> typer.Exit:
    from migrate_wrapper.dburl import mask_text

    if isinstance(error, WrapperError):
        if error.diff:  # the evidence behind a refusal, for the operator to read
            typer.echo(mask_text(error.diff))
        typer.echo(f"error: {printable(mask_text(str(error)))}", err=True)  # one line, whatever the input held
        return typer.Exit(int(error.exit_code))
    if isinstance(error, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        return typer.Exit(int(ExitCode.INTERRUPTED))
    typer.echo(f"internal error: {type(error).__name__}: {mask_text(str(error))}", err=True)
    return typer.Exit(int(ExitCode.FAILED))


def edge(command):
    """Every command's boundary: telemetry's exporter process starts first, an expected failure becomes one line and
    its exit code, and telemetry is flushed (bounded) whatever happened. functools.wraps keeps the signature Typer
    reads the options from."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        if "log_format" in kwargs:  # the commands that log (and trace) runs: see telemetry.start_early
            from migrate_wrapper import telemetry

            telemetry.start_early(kwargs.get("env"))
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except (Exception, KeyboardInterrupt) as exc:
            raise _fail(exc) from None
        finally:
            _flush_telemetry()

    return run


def _scratch(settings, scratch_url: str | None, targets=()):
    from migrate_wrapper import scratch
    from migrate_wrapper.dburl import DatabaseUrl

    if scratch_url and DatabaseUrl.parse(scratch_url, setting="--scratch-url").secrets():
        raise UsageError("--scratch-url carries a password, which every local user can read on a command line",
                         hint="put that URL in MIGRATION_SCRATCH_URL (the --env file or the environment) instead")

    return scratch.resolve(
        scratch_url, settings.scratch_url(), project_root=settings.project_root(),
        environment=settings.migration_environment, targets=[t.url for t in targets],
    )


def _settings(env: Path | None):
    from migrate_wrapper import settings

    return settings.load(env)


def _targets(env: Path | None, component: str | None, *, single: str | None = None):
    """The settings and the chosen components' targets; `single` names a command that takes exactly one."""
    from migrate_wrapper import target

    settings = _settings(env)
    targets = target.resolve(settings, component)
    if single is not None and len(targets) != 1:
        raise UsageError(f"{single} takes one component", hint="pass --component operational or analytics")
    return settings, targets


@app.command()
@edge
def status(
    component: ComponentOpt = None,
    env: EnvOpt = None,
    fmt: FormatOpt = OutputFormat.text,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Show the current version, applied and pending migrations and drift (read-only)."""
    from migrate_wrapper import report
    from migrate_wrapper.verbs.status import status as status_verb

    settings, targets = _targets(env, component)
    _, listener = _listeners(log_format, log_file, settings)
    statuses = [status_verb(settings, t, listener=listener) for t in targets]
    if fmt == OutputFormat.json:
        typer.echo(report.dumps(report.status_document(statuses)))
    else:
        typer.echo("\n\n".join(report.status_text(st) for st in statuses))


@app.command()
@edge
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
    fmt: FormatOpt = OutputFormat.text,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Apply every pending migration (all of them, in order)."""
    if show_status:  # the undecorated status: this command's own edge already translates errors and flushes
        return status.__wrapped__(component, env, fmt, log_format, log_file)
    from migrate_wrapper.verbs.apply import apply as apply_verb
    from migrate_wrapper.verbs.change import Options

    if (evidence is not None or rehearse or scratch_url) and not dry_run:
        raise UsageError("--evidence, --rehearse and --scratch-url go with --dry-run")
    settings, targets = _targets(env, component)
    server = _scratch(settings, scratch_url, targets) if rehearse else None
    _, listener = _listeners(log_format, log_file, settings)
    options = Options(confirm=_confirm(yes), dry_run=dry_run, evidence=evidence, fail_on_row_loss=fail_on_row_loss,
                      scratch=server)
    for t in targets:
        apply_verb(settings, t, listener=listener, options=options)


@app.command()
@edge
def rollback(
    version: Annotated[str, typer.Option("--version", help="The migration to revert: its id as status prints it "
                                         "(202611010900_create_accounts, 0001_init), or its version.")],
    component: ComponentOpt = None,
    env: EnvOpt = None,
    yes: YesOpt = False,
    fail_on_row_loss: FailOnRowLossOpt = False,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Revert VERSION and every migration applied after it."""
    from migrate_wrapper.verbs.change import Options
    from migrate_wrapper.verbs.rollback import rollback as rollback_verb

    settings, targets = _targets(env, component, single="rollback")
    _, listener = _listeners(log_format, log_file, settings)
    options = Options(confirm=_confirm(yes), fail_on_row_loss=fail_on_row_loss)
    rollback_verb(settings, targets[0], version, listener=listener, options=options)


@app.command()
@edge
def repair(
    component: ComponentOpt = None,
    env: EnvOpt = None,
    yes: YesOpt = False,
    scratch_url: ScratchUrlOpt = None,
    assume: Annotated[Optional[Assumption], typer.Option(
        "--assume",
        help="Your decision where no evidence settles it (a data-only step): the step's changes are there "
             "(committed) or none are (rolled-back). Audited; refused where the evidence says otherwise.")] = None,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Settle a dirty database from proof (the audit ledger's evidence of the run, the schema compared with what the
    migrations produce), then mark the right version clean (golang-migrate force) — or refuse, showing the
    evidence."""
    from migrate_wrapper.verbs.change import Options
    from migrate_wrapper.verbs.repair import repair as repair_verb

    settings, targets = _targets(env, component, single="repair")
    server = _scratch(settings, scratch_url, targets)
    _, listener = _listeners(log_format, log_file, settings)
    repair_verb(settings, targets[0], listener=listener, options=Options(confirm=_confirm(yes)), server=server,
                assume=assume.value if assume else None)


@app.command("telemetry-check")
@edge
def telemetry_check(
    env: EnvOpt = None,
    log_format: LogFormatOpt = None,
    log_file: LogFileOpt = None,
) -> None:
    """Send one test span to the configured OTLP endpoint and say whether it arrived (or exactly why not)."""
    from migrate_wrapper import telemetry

    settings = _settings(env)  # exports the file's OTEL_* variables for the SDK
    _listeners(log_format, log_file, settings)
    typer.echo(telemetry.check())


def _flush_telemetry() -> None:
    """Bounded: a dead collector costs at most the flush timeout, never the run."""
    if "migrate_wrapper.telemetry" in sys.modules:
        sys.modules["migrate_wrapper.telemetry"].shutdown()


from migrate_wrapper import cli_tools  # noqa: E402,F401 - registers the operator tool commands
from migrate_wrapper import cli_lint  # noqa: E402,F401 - registers the lint command
