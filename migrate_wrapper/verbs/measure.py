"""measure-window: rehearse the pending migrations on a scratch clone (runtime/rehearsal.py), then write the JSON
report and its readable summary."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from migrate_wrapper.config.settings import Settings
from migrate_wrapper.config.target import Target
from migrate_wrapper.errors import PreCheckFailed, UsageError
from migrate_wrapper.events import Listener
from migrate_wrapper.golang_migrate.runner import Binary
from migrate_wrapper.postgres.scratch import ScratchServer
from migrate_wrapper.runtime import session
from migrate_wrapper.runtime.context import RunContext
from migrate_wrapper.runtime.rehearsal import Rehearsal, rehearse

REPORT_DIR = Path(".local") / "measure-window"


def default_report(settings: Settings, target: Target) -> Path:
    return settings.project_root() / REPORT_DIR / f"{target.component.name}.json"


def measure_window(
    settings: Settings,
    target: Target,
    *,
    binary: Binary,
    server: ScratchServer,
    listener: Listener,
    report: Path,
    show: Callable[[Rehearsal, Path], None] = lambda rehearsal, path: None,
) -> Rehearsal:
    """Rehearse, write the JSON report and its readable summary (.md beside it), call `show`, then raise what the
    rehearsal means: WindowExceeded (5) or MigrationFailed (1)."""
    ctx = RunContext.start("measure-window", settings, target, listener, dry_run=True)
    run = ctx.run
    with ctx.tracked():
        st = session.status_once(target, settings)
        if st.state.dirty:
            raise PreCheckFailed("dirty", f"{target.component.name} is at {st.version_label}",
                                 hint="recover it first (runbook: Dirty database), then measure")
        if st.state.version is not None and st.current is None:
            raise PreCheckFailed("files", f"the database's version {st.state.version} is not among the migration files")
        run.from_version = st.current.id if st.current else None
        run.target = st.pending[-1].id if st.pending else run.from_version
        listener.run_started(run, [m.id for m in st.pending])
        rehearsal = rehearse(settings, binary, target, st, server=server, listener=listener, run=run)
        write_report(rehearsal, report)
        show(rehearsal, report)
        error = rehearsal.error()
        if error is not None:
            raise error
    return rehearsal


def summary_path(report: Path) -> Path:
    return report.with_suffix(".md") if report.suffix != ".md" else report.with_name(report.name + ".summary.md")


def write_report(rehearsal: Rehearsal, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rehearsal.document(), indent=2) + "\n", encoding="utf-8")
        summary_path(path).write_text(rehearsal.summary(), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the report {path}: {exc.strerror}") from None
