"""What apply, rollback and status share: opening the target, reading its state, tracking a run's outcome."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from migrate_wrapper import db, plan, runner
from migrate_wrapper.checks import pre
from migrate_wrapper.errors import (
    ApprovalMissing,
    PreCheckFailed,
    UsageError,
    WindowExceeded,
    WrapperError,
)
from migrate_wrapper.events import CheckResult, Listener, RunInfo
from migrate_wrapper.settings import Settings
from migrate_wrapper.target import Target

if TYPE_CHECKING:
    import psycopg


def binary(settings: Settings) -> runner.Binary:
    return runner.vet(runner.locate(settings.migrate_bin, settings.project_root()))


def new_run(command: str, target: Target, settings: Settings, direction: str, dry_run: bool) -> RunInfo:
    return RunInfo(
        command=command,
        component=target.component.name,
        direction=direction,
        dry_run=dry_run,
        environment=settings.migration_environment,
        database=target.url.masked(),
        server_address=target.url.host or "localhost",
        db_namespace=target.url.database,
        approved_by=settings.migration_approved_by,
        window_seconds=settings.migration_window_seconds if command != "status" else None,
    )


def connect(target: Target, settings: Settings) -> tuple[psycopg.Connection, CheckResult]:
    conn = db.connect(target.url, timeout=settings.migration_connect_timeout_seconds)
    return conn, pre.connectivity(conn)


def read_status(conn: psycopg.Connection, target: Target) -> plan.Status:
    from migrate_wrapper import ledger

    state = db.read_version(conn, target.url, target.component)
    history = ledger.history(conn, target.component.name)
    return plan.status(target.component.name, target.url.masked(), target.files, state, history=history)


def outcome_of(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, (PreCheckFailed, WindowExceeded)):
        return "guardrail"
    if isinstance(error, (ApprovalMissing, UsageError)):
        return "refused"
    if isinstance(error, WrapperError):
        return "failed"
    return "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"


@contextmanager
def tracked(run: RunInfo, listener: Listener, result: dict[str, str]) -> Iterator[None]:
    """Always report the end of a run with its outcome; `result["outcome"]` may be set to a better word (noop…)."""
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        outcome = outcome_of(error) if error is not None else result.get("outcome", "ok")
        listener.run_finished(run, outcome, error)
