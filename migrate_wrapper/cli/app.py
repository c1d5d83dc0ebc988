"""The Typer edge: parse options, build settings, call one verb, turn its error into one line and an exit code.

Heavy libraries (psycopg, OpenTelemetry, pglast) are imported by the modules that use them, so `--help` stays cheap.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from migrate_wrapper.errors import EXIT_CODE_HELP, UsageError, WrapperError, exit_code_of, outcome_of, printable

app = typer.Typer(
    name="migrate-wrapper",
    help="Safe, auditable PostgreSQL migrations around the real golang-migrate binary.",
    epilog=EXIT_CODE_HELP,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rendering it with rich costs ~100 ms of imports on every --help
)


def _show_version() -> None:
    """--version: this wrapper's version, and the golang-migrate a run would use (MIGRATE_BIN from the environment —
    one set only in an --env file is not seen here —, else `migrate` on PATH, else the project's .tools/bin/migrate)
    with its version beside the pinned one."""
    from migrate_wrapper import __version__
    from migrate_wrapper.golang_migrate import runner
    from migrate_wrapper.versions import GOLANG_MIGRATE_VERSION

    typer.echo(f"migrate-wrapper {__version__}")
    try:
        root = project_root()
    except WrapperError:
        root = Path.cwd()
    try:
        binary = runner.vet(runner.locate(os.environ.get("MIGRATE_BIN") or None, root))
        found = f"{binary.version} at {binary.path}"
    except WrapperError as exc:
        found = f"not usable: {printable(str(exc))}"
    typer.echo(f"golang-migrate {found} (pinned {GOLANG_MIGRATE_VERSION})")


@app.callback(invoke_without_command=True)
def _project(ctx: typer.Context, project_dir: Annotated[Optional[Path], typer.Option(
        "--project-dir", help="The project root: where migrate-wrapper.toml is (default: MIGRATE_WRAPPER_ROOT, else "
                              "the nearest directory upwards that holds one).")] = None,
             version: Annotated[bool, typer.Option(
                 "--version", help="Show this version and the golang-migrate a run would use, then exit.")] = False,
             ) -> None:
    if project_dir is not None:
        if not (project_dir / "migrate-wrapper.toml").is_file():
            raise _fail(UsageError(f"--project-dir {printable(str(project_dir), 200)} holds no migrate-wrapper.toml",
                                   hint="name the directory that holds the project file"))
        os.environ["MIGRATE_WRAPPER_ROOT"] = str(project_dir.resolve())
    if version:  # after --project-dir: the project's .tools/bin/migrate is looked for there
        _show_version()
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)


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
ResultFormatOpt = Annotated[OutputFormat, typer.Option(
    "--format", help="text, or one JSON document on stdout: each component's outcome, exit code, versions, steps "
                     "and checks (with apply --status: the status).")]


def components_for(component: str | None):
    """For the AllComponentsOpt commands: the chosen components, every one by default."""
    from migrate_wrapper.config import components

    return components.resolve(component or components.ALL, project_root())


def project_root() -> Path:
    """The project root as every command finds it (--project-dir sets MIGRATE_WRAPPER_ROOT for the run)."""
    from migrate_wrapper.config import components

    explicit = os.environ.get("MIGRATE_WRAPPER_ROOT")
    return components.project_root(Path(explicit) if explicit else None)


def listeners(log_format: LogFormat | None, log_file: Path | None, settings, *, result=None):
    """The tracer first (it opens the spans whose ids the logs carry), then the log, then the console, which stays
    away when stdout carries a `result` document (--format json) instead."""
    from migrate_wrapper.output import logs, report
    from migrate_wrapper import telemetry
    from migrate_wrapper.events import Listeners

    fmt = log_format_of(log_format)
    logs.configure(fmt, log_file)
    chosen = [telemetry.listener(), logs.LogListener(settings.migration_progress_seconds, telemetry.current_ids)]
    if result is not None:
        chosen.append(result)
        if fmt == "text":  # the readable report moves to stderr: stdout carries the document
            chosen.append(report.ConsoleListener(sys.stderr))
    elif fmt == "text" or sys.stdout.isatty():
        chosen.append(report.ConsoleListener())
    return fmt, Listeners(*chosen)


@contextmanager
def result_document(fmt: OutputFormat):
    """For apply, rollback and repair: with --format json, the ResultListener whose document goes to stdout when
    the command ends, whatever its outcome (the error line or record still ends stderr)."""
    if fmt != OutputFormat.json:
        yield None
        return
    from migrate_wrapper.output.report import dumps
    from migrate_wrapper.output.result import ResultListener

    result = ResultListener()
    try:
        yield result
    finally:
        typer.echo(dumps(result.document()))


def confirmer(yes: bool):
    def confirm(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UsageError("refusing to run without --yes: there is no terminal to confirm on")
        return typer.confirm(question, default=False, err=True)  # stdout may carry a JSON document

    return confirm


def log_format_of(log_format: LogFormat | None) -> str:
    """--log-format, or its default: json when stderr is not a terminal."""
    return (log_format or (LogFormat.text if sys.stderr.isatty() else LogFormat.json)).value


def _fail(error: BaseException, *, as_json: bool = False, document: bool = False) -> typer.Exit:
    """The one line an error ends a command with: `error: …` on stderr, or in --log-format json a JSON record (event
    command_error), so stderr stays one JSON object per line whatever the outcome. With a result `document` on
    stdout, the evidence behind a refusal is in it, not printed before it."""
    from migrate_wrapper.config.dburl import mask_text

    code = exit_code_of(error)
    if isinstance(error, WrapperError):
        if error.diff and not document:  # the evidence behind a refusal, for the operator to read
            typer.echo(mask_text(error.diff))
        prefix, message = "error", printable(mask_text(str(error)))  # one line, whatever the input held
    elif isinstance(error, KeyboardInterrupt):
        prefix, message = "error", "interrupted"
    else:
        prefix, message = "internal error", printable(f"{type(error).__name__}: {mask_text(str(error))}")
    if as_json:
        import json
        from datetime import datetime, timezone

        typer.echo(json.dumps({
            "timestamp": datetime.now(timezone.utc).isoformat(), "level": "ERROR", "event": "command_error",
            "msg": message, "exit_code": code, "outcome": outcome_of(error), "error_type": type(error).__name__,
        }), err=True)
    else:
        typer.echo(f"{prefix}: {message}", err=True)
    return typer.Exit(code)


def edge(command=None, *, traced: bool = False):
    """Every command's boundary: an expected failure becomes one line and its exit code, and telemetry is flushed
    (bounded) whatever happened. `traced` commands (they take --env and log runs) start telemetry's exporter process
    first: see telemetry.start_early. functools.wraps keeps the signature Typer reads the options from."""

    def wrap(command):
        @functools.wraps(command)
        def run(*args, **kwargs):
            if traced:
                from migrate_wrapper import telemetry

                telemetry.start_early(kwargs.get("env"))
            try:
                return command(*args, **kwargs)
            except typer.Exit:
                raise
            except (Exception, KeyboardInterrupt) as exc:
                as_json = traced and log_format_of(kwargs.get("log_format")) == "json"
                document = kwargs.get("fmt") == OutputFormat.json
                raise _fail(exc, as_json=as_json, document=document) from None
            finally:
                _flush_telemetry()

        return run

    return wrap(command) if command is not None else wrap


def scratch_server(settings, scratch_url: str | None, targets=()):
    from migrate_wrapper.postgres import scratch
    from migrate_wrapper.config.dburl import DatabaseUrl

    if scratch_url and DatabaseUrl.parse(scratch_url, setting="--scratch-url").secrets():
        raise UsageError("--scratch-url carries a password, which every local user can read on a command line",
                         hint="put that URL in MIGRATION_SCRATCH_URL (the --env file or the environment) instead")

    return scratch.resolve(
        scratch_url, settings.scratch_url(), project_root=settings.project_root(),
        environment=settings.migration_environment, targets=[t.url for t in targets],
    )


def load_settings(env: Path | None):
    from migrate_wrapper.config import settings

    return settings.load(env)


def load_targets(env: Path | None, component: str | None, *, single: str | None = None):
    """The settings and the chosen components' targets; `single` names a command that takes exactly one."""
    from migrate_wrapper.config import target

    settings = load_settings(env)
    targets = target.resolve(settings, component)
    if single is not None and len(targets) != 1:
        raise UsageError(f"{single} takes one component", hint="pass --component operational or analytics")
    return settings, targets


def _flush_telemetry() -> None:
    """Bounded: a dead collector costs at most the flush timeout, never the run."""
    if "migrate_wrapper.telemetry" in sys.modules:
        sys.modules["migrate_wrapper.telemetry"].shutdown()
